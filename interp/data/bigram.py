"""Bigram statistics of a token stream: exact sparse counts with backoff.

``P(next | prev)`` is the maximum-likelihood bigram estimate when ``prev`` was seen as a
context; an unseen context backs off to the unigram distribution of the stream, and an
empty stream backs off to uniform. Nothing is smoothed, so a pair never seen after a seen
context has probability 0 (infinite surprisal; callers drop those).

    bg = Bigram.from_tokens(stream, vocab_size=len(tokenizer))   # 1-D array or list of arrays
    bg.probs(prev_ids)          # [n, vocab] next-token distributions (torch, float32)
    bg.surprisal(tokens)        # [batch, pos-1] -log P(tokens[:, 1:] | tokens[:, :-1]) in nats
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import torch
from scipy import sparse


@dataclass
class Bigram:
    """Sparse bigram counts ``counts[prev, next]`` (CSR) plus the unigram counts of the stream."""

    counts: sparse.csr_matrix  # [vocab, vocab] int64
    unigram: np.ndarray  # [vocab] int64: occurrences of each token in the stream

    @classmethod
    def from_tokens(cls, tokens: np.ndarray | torch.Tensor | Sequence[Iterable[int]], vocab_size: int) -> "Bigram":
        """Count adjacent pairs. ``tokens`` is one stream (1-D) or a list of sequences counted
        separately (no pair crosses two sequences); a 2-D array counts each row separately."""
        seqs = _as_sequences(tokens)
        prev, nxt, uni = [], [], np.zeros(vocab_size, dtype=np.int64)
        for s in seqs:
            if s.size and (s.min() < 0 or s.max() >= vocab_size):
                raise ValueError(f"token ids must lie in [0, {vocab_size}); got [{s.min()}, {s.max()}]")
            uni += np.bincount(s, minlength=vocab_size)
            prev.append(s[:-1])
            nxt.append(s[1:])
        p = np.concatenate(prev) if prev else np.zeros(0, np.int64)
        n = np.concatenate(nxt) if nxt else np.zeros(0, np.int64)
        # coo -> csr sums duplicate (prev, next) entries: exact counts
        counts = sparse.coo_matrix((np.ones(len(p), dtype=np.int64), (p, n)), shape=(vocab_size, vocab_size)).tocsr()
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
        """``[vocab, vocab]`` the full conditional table (float32); fine up to a few thousand tokens."""
        return self.probs(torch.arange(self.vocab_size))

    def probs(self, prev: torch.Tensor | np.ndarray) -> torch.Tensor:
        """``[*prev.shape, vocab]`` ``P(. | prev)`` (float32), with backoff for unseen contexts."""
        prev_t = torch.as_tensor(prev, dtype=torch.long)
        flat = prev_t.reshape(-1).cpu().numpy()
        uniq, inverse = np.unique(flat, return_inverse=True)
        rows = np.asarray(self.counts[uniq].todense(), dtype=np.float64)  # [n_uniq, vocab]
        tot = rows.sum(axis=1, keepdims=True)
        rows = np.where(tot > 0, rows / np.maximum(tot, 1), self.backoff()[None, :])
        out = torch.from_numpy(rows.astype(np.float32))[torch.from_numpy(inverse.reshape(-1))]
        return out.reshape(*prev_t.shape, self.vocab_size)

    def log_prob(self, prev: torch.Tensor | np.ndarray, nxt: torch.Tensor | np.ndarray) -> np.ndarray:
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
        """``[batch, pos-1]`` bigram surprisal (nats) of each next token in ``tokens`` ``[batch, pos]``."""
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
    return [np.asarray(list(s) if not isinstance(s, np.ndarray) else s, dtype=np.int64) for s in tokens]


__all__ = ["Bigram"]
