"""Bigram statistics of a token stream: exact sparse counts with backoff.

``P(next | prev)`` is the maximum-likelihood bigram estimate when ``prev`` was seen as a
context; an unseen context backs off to the unigram distribution of the stream, and an
empty stream backs off to uniform. Nothing is smoothed, so a pair never seen after a seen
context has probability 0 (infinite surprisal; callers drop those).

    bg = Bigram.from_tokens(stream, vocab_size=len(tokenizer))   # 1-D array or list of arrays
    bg.probs(prev_ids)          # [n, vocab] next-token distributions (torch, float32)
    bg.target_fn(device)        # tokens [batch, pos] -> [batch, pos, vocab], built per batch
    bg.surprisal(tokens)        # [batch, pos-1] -log P(tokens[:, 1:] | tokens[:, :-1]) in nats

Nothing here builds the ``[vocab, vocab]`` table (about 10 GB in float32 at GPT-2's 50k
vocabulary) except :meth:`Bigram.dense`, which is for small vocabularies: the rows a batch
needs are made from the sparse counts on the fly, so memory is bounded by the batch's
distinct contexts times the vocabulary.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy import sparse


@dataclass
class Bigram:
    """Sparse bigram counts ``counts[prev, next]`` (CSR) plus the unigram counts of the stream."""

    counts: sparse.csr_matrix  # [vocab, vocab] int64
    unigram: np.ndarray  # [vocab] int64: occurrences of each token in the stream

    @classmethod
    def from_tokens(
        cls, tokens: np.ndarray | torch.Tensor | Sequence[Iterable[int]], vocab_size: int
    ) -> Bigram:
        """Count adjacent pairs. ``tokens`` is one stream (1-D) or a list of sequences counted
        separately (no pair crosses two sequences); a 2-D array counts each row separately."""
        seqs = _as_sequences(tokens)
        prev, nxt, uni = [], [], np.zeros(vocab_size, dtype=np.int64)
        for s in seqs:
            if s.size and (s.min() < 0 or s.max() >= vocab_size):
                raise ValueError(
                    f"token ids must lie in [0, {vocab_size}); got [{s.min()}, {s.max()}]"
                )
            uni += np.bincount(s, minlength=vocab_size)
            prev.append(s[:-1])
            nxt.append(s[1:])
        p = np.concatenate(prev) if prev else np.zeros(0, np.int64)
        n = np.concatenate(nxt) if nxt else np.zeros(0, np.int64)
        # coo -> csr sums duplicate (prev, next) entries: exact counts
        counts = sparse.coo_matrix(
            (np.ones(len(p), dtype=np.int64), (p, n)), shape=(vocab_size, vocab_size)
        ).tocsr()
        counts.sum_duplicates()
        return cls(counts=counts, unigram=uni)

    @property
    def vocab_size(self) -> int:
        return self.counts.shape[0]

    @property
    def n_pairs(self) -> int:
        return int(self.counts.sum())

    @property
    def context_counts(self) -> np.ndarray:
        """``[vocab]`` how often each token occurs as a context (has a successor)."""
        return np.asarray(self.counts.sum(axis=1)).ravel()

    def backoff(self) -> np.ndarray:
        """``[vocab]`` the distribution used for unseen contexts: unigram, else uniform."""
        total = self.unigram.sum()
        if total == 0:
            return np.full(self.vocab_size, 1.0 / self.vocab_size)
        return self.unigram / total

    def dense(self) -> torch.Tensor:
        """``[vocab, vocab]`` the full conditional table (float32); small vocabularies only
        (training targets use :meth:`target_fn`, which never builds it)."""
        return self.probs(torch.arange(self.vocab_size))

    def rows(self, contexts: np.ndarray) -> np.ndarray:
        """``[len(contexts), vocab]`` ``P(. | context)`` (float64) of the given context ids, from
        the sparse counts (unseen contexts back off)."""
        rows = np.asarray(self.counts[contexts].todense(), dtype=np.float64)  # [n, vocab]
        tot = rows.sum(axis=1, keepdims=True)
        return np.where(tot > 0, rows / np.maximum(tot, 1), self.backoff()[None, :])

    def probs(
        self, prev: torch.Tensor | np.ndarray, device: torch.device | str | None = None
    ) -> torch.Tensor:
        """``[*prev.shape, vocab]`` ``P(. | prev)`` (float32, on ``device`` or the CPU), with
        backoff for unseen contexts. Only the distinct ids of ``prev`` get a row before it is
        expanded."""
        prev_t = torch.as_tensor(prev, dtype=torch.long)
        flat = prev_t.reshape(-1).cpu().numpy()
        uniq, inverse = np.unique(flat, return_inverse=True)
        if uniq.size and (uniq[0] < 0 or uniq[-1] >= self.vocab_size):
            raise ValueError(
                f"context ids must lie in [0, {self.vocab_size}); got [{uniq[0]}, {uniq[-1]}]"
            )
        rows = torch.from_numpy(self.rows(uniq).astype(np.float32)).to(
            device or "cpu"
        )  # [n_uniq, vocab]
        out = rows[torch.from_numpy(inverse.reshape(-1)).to(rows.device)]
        return out.reshape(*prev_t.shape, self.vocab_size)

    def target_fn(self, device: torch.device | str | None = None):
        """``tokens [batch, pos] -> [batch, pos, vocab]``: the bigram distribution after each token,
        made per batch from the sparse counts (never the ``[vocab, vocab]`` table)."""
        return lambda tokens: self.probs(tokens, device=device)

    def max_row_sum_error(self, rows_per_chunk: int | None = None) -> float:
        """``max |sum_next P(next | prev) - 1|`` over every context as :meth:`probs` makes it
        (float32): the seen contexts a chunk of rows at a time (about 4M entries per chunk unless
        ``rows_per_chunk``), and one unseen context, whose rows are all the backoff."""
        step = rows_per_chunk or max(1, (1 << 22) // max(1, self.vocab_size))
        seen = np.flatnonzero(self.context_counts > 0)
        unseen = np.flatnonzero(self.context_counts == 0)[:1]
        err = 0.0
        for ids in [seen[lo : lo + step] for lo in range(0, len(seen), step)] + [unseen]:
            if ids.size:
                sums = self.rows(ids).astype(np.float32).sum(axis=1, dtype=np.float64)
                err = max(err, float(np.abs(sums - 1).max()))
        return err

    def log_prob(
        self, prev: torch.Tensor | np.ndarray, nxt: torch.Tensor | np.ndarray
    ) -> np.ndarray:
        """``log P(nxt | prev)`` elementwise (float64; ``-inf`` for pairs of probability 0)."""
        p = np.asarray(torch.as_tensor(prev).cpu(), dtype=np.int64).ravel()
        n = np.asarray(torch.as_tensor(nxt).cpu(), dtype=np.int64).ravel()
        pair = np.asarray(self.counts[p, n]).ravel().astype(np.float64)
        ctx = self.context_counts[p].astype(np.float64)
        back = self.backoff()[n]
        prob = np.where(ctx > 0, pair / np.maximum(ctx, 1), back)
        with np.errstate(divide="ignore"):
            return np.log(prob).reshape(np.shape(torch.as_tensor(prev)))

    def surprisal(self, tokens: torch.Tensor | np.ndarray) -> np.ndarray:
        """``[batch, pos-1]`` bigram surprisal (nats) of each next token in ``tokens``
        ``[batch, pos]``."""
        t = np.asarray(torch.as_tensor(tokens).cpu(), dtype=np.int64)
        return -self.log_prob(t[:, :-1], t[:, 1:])


def _as_sequences(tokens) -> list[np.ndarray]:
    if isinstance(tokens, torch.Tensor):
        tokens = tokens.cpu().numpy()
    if isinstance(tokens, np.ndarray):
        if tokens.ndim == 1:
            return [tokens.astype(np.int64)]
        if tokens.ndim == 2:
            return [row.astype(np.int64) for row in tokens]
        raise ValueError(f"tokens must be 1-D or 2-D, got shape {tokens.shape}")
    return [
        np.asarray(list(s) if not isinstance(s, np.ndarray) else s, dtype=np.int64) for s in tokens
    ]


__all__ = ["Bigram"]
