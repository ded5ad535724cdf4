"""Completing a slot of a sentence with a causal or a masked (bidirectional) transformer.

A *slot* is ``length`` token positions starting at ``prompt_len`` in each row of ``tokens``;
whatever follows the slot (the rest of a sentence, or padding) is kept as given. A causal
model can only complete a slot at the end of its context; a masked model fills a slot
anywhere, so the same functions ask a fact "in place" (the name masked inside a trained
sentence) or at the end of a sentence:

- :func:`complete`: greedy. Causal: the next ``length`` tokens (:func:`interp.generate`).
  Masked: every slot position is set to the mask token and the slot is filled **left to
  right**, one token per forward (argmax at the leftmost masked position, which is then
  revealed).
- :func:`target_logprob`: the log-probability of given candidates in the slot by the same
  chain rule (teacher forcing for causal models).
- :func:`query_residuals`: the residual stream at the position the model answers from.
- :func:`top_completions`: beam search over completions of one prompt (the live explorer).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from interp.tracing.model import Model

# (rows of the batch, tokens [b, T], prompt lengths [b], row ids [b])
SlotBatch = tuple[slice, torch.Tensor, torch.Tensor, torch.Tensor]


def is_masked(m: Model) -> bool:
    """Whether ``m`` attends both ways (trained as a masked LM)."""
    return getattr(m.cfg, "attention_dir", "causal") == "bidirectional"


def _forward(m: Model, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        logits: torch.Tensor = m.module(x.to(m.device))
        return logits.float().cpu()  # [batch, pos, vocab]


def _chunks(n: int, size: int) -> Iterator[slice]:
    for i in range(0, n, size):
        yield slice(i, min(n, i + size))


def _slot_batches(
    m: Model,
    tokens: np.ndarray,
    prompt_len: np.ndarray,
    length: int,
    batch_size: int,
    masked: bool,
) -> Iterator[SlotBatch]:
    """Yield ``(slice, tokens [b, T], prompt lengths [b], row ids [b])`` per batch; for a masked
    model the ``length`` slot positions after each prompt are set to the mask token."""
    for sl in _chunks(len(tokens), batch_size):
        x = torch.from_numpy(tokens[sl]).clone()
        pl = torch.from_numpy(prompt_len[sl])
        rows = torch.arange(len(x))
        if masked:
            for k in range(length):
                x[rows, pl + k] = m.tokenizer.mask_token_id
        yield sl, x, pl, rows


def complete(
    m: Model, tokens: np.ndarray, prompt_len: np.ndarray, length: int, batch_size: int = 512
) -> np.ndarray:
    """Greedy completion ``[n, length]`` of each row's slot
    ``tokens[:, prompt_len : prompt_len + length]``.

    Causal: the next ``length`` tokens of each prompt ``tokens[i, :prompt_len[i]]``, from the
    one generation loop (:func:`interp.tracing.generate.generate`: key/value cache, prompts
    left-padded; rows of a model that takes no attention mask are batched by prompt length).
    Masked: the slot is set to the mask token and filled left to right (argmax at the leftmost
    masked position, then reveal it). Tokens after the slot are kept as given."""
    masked = is_masked(m)
    out = np.zeros((len(tokens), length), dtype=np.int64)
    if not masked:
        return _complete_causal(m, tokens, prompt_len, length, batch_size)
    for sl, x, pl, rows in _slot_batches(m, tokens, prompt_len, length, batch_size, masked):
        for k in range(length):
            logits = _forward(m, x)
            pos = pl + k
            x[rows, pos] = logits[rows, pos].argmax(-1)
        out[sl] = torch.stack([x[rows, pl + k] for k in range(length)], dim=1).numpy()
    return out


def _complete_causal(
    m: Model, tokens: np.ndarray, prompt_len: np.ndarray, length: int, batch_size: int
) -> np.ndarray:
    from interp.tracing.generate import cache_kind, generate

    out = np.zeros((len(tokens), length), dtype=np.int64)
    groups = (
        [np.flatnonzero(prompt_len == p) for p in np.unique(prompt_len)]
        if cache_kind(m) == "none"
        else [np.arange(len(tokens))]
    )
    for idx in groups:
        for sl in _chunks(len(idx), batch_size):
            rows = idx[sl]
            prompts = [tokens[i, : prompt_len[i]].tolist() for i in rows]
            out[rows] = generate(m, prompts, length, stop_tokens=()).new_tokens.cpu().numpy()
    return out


def slot_accuracy(
    m: Model, tokens: np.ndarray, prompt_len: np.ndarray, length: int, batch_size: int = 512
) -> np.ndarray:
    """``[n]`` bool: the greedy completion of each row's slot equals the tokens given there."""
    target = np.stack(
        [tokens[i, prompt_len[i] : prompt_len[i] + length] for i in range(len(tokens))]
    )
    same: np.ndarray = (complete(m, tokens, prompt_len, length, batch_size) == target).all(1)
    return same


def target_logprob(
    m: Model,
    tokens: np.ndarray,
    prompt_len: np.ndarray,
    candidates: np.ndarray,
    batch_size: int = 512,
) -> np.ndarray:
    """``[n, K]`` log-probability of each candidate ``candidates [n, K, T]`` in each row's slot.
    Causal: teacher-forced sum of next-token log-probs. Masked: the same left-to-right chain,
    ``sum_t log p(c_t | context, c_<t, masks at t..T-1)``."""
    n, K, T = candidates.shape
    masked = is_masked(m)
    rep = np.repeat(tokens, K, axis=0)  # [n*K, pos]
    pl = np.repeat(prompt_len, K)
    cand = candidates.reshape(n * K, T)
    rows_all = np.arange(n * K)
    for t in range(T):
        rep[rows_all, pl + t] = cand[:, t]
    total = np.zeros(n * K)
    for sl in _chunks(n * K, batch_size):
        x = torch.from_numpy(rep[sl]).clone()
        p = torch.from_numpy(pl[sl])
        c = torch.from_numpy(cand[sl])
        rows = torch.arange(len(x))
        if not masked:
            lp = _forward(m, x).log_softmax(-1)
            chain = lp[rows, p - 1, c[:, 0]]
            for t in range(1, T):  # in order, as sum() adds them
                chain = chain + lp[rows, p + t - 1, c[:, t]]
            total[sl] = chain.numpy()
            continue
        acc = torch.zeros(len(x))
        for t in range(T):
            xt = x.clone()
            for u in range(t, T):
                xt[rows, p + u] = m.tokenizer.mask_token_id
            lp = _forward(m, xt).log_softmax(-1)
            acc += lp[rows, p + t, c[:, t]]
        total[sl] = acc.numpy()
    return total.reshape(n, K)


def query_residuals(
    m: Model, tokens: np.ndarray, prompt_len: np.ndarray, length: int, batch_size: int = 512
) -> np.ndarray:
    """Residual stream ``[layer+1, n, d_model]`` at the query position, ``m.resid_names()``:
    row 0 is the embedding (``m.hook("resid_pre", 0)``), row ``l+1`` is
    ``m.hook("resid_post", l)``. The query position is the last prompt token (causal) or the
    first slot position (masked; the whole slot masked)."""
    from interp.tracing.trace import trace

    names = m.resid_names()
    masked = is_masked(m)
    out = []
    for _, x, pl, rows in _slot_batches(m, tokens, prompt_len, length, batch_size, masked):
        _, acts = trace(m, x.to(m.device), capture=names)
        pos = pl if masked else pl - 1
        out.append(
            torch.stack([acts[nm][rows, pos].float().cpu() for nm in names])
        )  # [layer+1, batch, d]
    return torch.cat(out, dim=1).numpy()


def top_completions(
    m: Model, prompt_ids: list[int], length: int, k: int = 5, pad_to: int | None = None
) -> list[tuple[list[int], float]]:
    """Beam search (width ``k``) for the ``k`` likeliest ``length``-token completions of
    ``prompt_ids`` (BOS included): causal next tokens, or, for masked models, a slot of
    ``length`` masks filled left to right. ``pad_to``: pad each input with PAD to this
    length, as in training (a bidirectional model sees the padding). Returns ``[(token
    ids, log-prob)]``, best first, never with a special token."""
    masked = is_masked(m)
    mask, pad = m.tokenizer.mask_token_id, m.tokenizer.pad_token_id
    beams: list[tuple[list[int], float]] = [([], 0.0)]
    P = len(prompt_ids)
    width = max(pad_to or 0, P + length)
    for t in range(length):
        seqs = [prompt_ids + ids + ([mask] * (length - t) if masked else []) for ids, _ in beams]
        x = torch.tensor([s + [pad] * (width - len(s)) for s in seqs])
        lp = _forward(m, x).log_softmax(-1)[:, P + t if masked else P + t - 1]  # [beams, vocab]
        lp[:, :5] = -float("inf")  # never complete with a special token
        scores = torch.tensor([s for _, s in beams])[:, None] + lp
        best = scores.flatten().topk(min(k, scores.numel()))
        V = lp.shape[1]
        beams = [
            (beams[i // V][0] + [i % V], float(v))
            for v, i in zip(best.values.tolist(), best.indices.tolist(), strict=True)
        ]
    return beams


__all__ = [
    "is_masked",
    "complete",
    "slot_accuracy",
    "target_logprob",
    "query_residuals",
    "top_completions",
]
