"""Attention knockout: block attention edges between groups of positions in chosen layers.

An *edge* ``src -> dst`` blocks every query position of group ``dst`` from attending to
every key position of group ``src``, in all heads of the chosen layers; the causal mask is
kept (blocked entries are only ever removed, never added). A knockout is given as a
boolean ``block`` tensor ``[batch, query, key]`` (True = blocked).

How the edge is cut. The paper sets the blocked entries of the attention mask to the
dtype minimum before the softmax. Here the edit is on ``m.hook("pattern", l)``
(after the softmax): blocked entries are zeroed and each edited row is renormalised over
its remaining keys. For every row with at least one key left this is *exactly* the same
distribution as masking the scores with -inf (``softmax`` restricted to the kept keys), so
the two are the same knockout. We edit the pattern because in the TransformerLens 4
bridge ``hook_pattern`` is applied before the value matmul (edits re-weight the output for
real) while ``hook_attn_scores`` of the native model is computed for inspection after the
attention output. A row with every key blocked is set to zero (the position receives no
attention output at all); the paper's dtype-min trick would instead spread it uniformly
over all keys, future ones included, which is not a knockout. Rows with no blocked entry
are left bit-identical, so blocking nothing changes nothing exactly.

Fast path. Blocking edges *into the last position* changes only the last position's
residual stream (causal attention: no other query reads it... except the last itself).
:func:`last_row_knockout` therefore starts from the clean run's residual at the last
position at the window's first layer and recomputes just that row through the remaining
layers, reusing the clean run's keys and values of every earlier position
(:class:`CleanCache`). It is checked against the full recompute
(:func:`knockout_logits`) in the tests and in every ``crossmodal`` run.

Windows: the window of ``k`` layers "around" layer ``l`` is
``[l - (k - 1) // 2, l - (k - 1) // 2 + k)`` clipped to the model (:func:`window`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import torch

from interp.tracing.model import Model


# ---------------------------------------------------------------- masks
def window(layer: int, k: int, n_layers: int) -> list[int]:
    """The ``k`` layers around ``layer`` (clipped to ``[0, n_layers)``)."""
    start = layer - (k - 1) // 2
    return [l for l in range(start, start + k) if 0 <= l < n_layers]


def edge_block(dst: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
    """``[B, T, T]`` block mask from per-sample position groups ``dst`` (queries) and ``src``
    (keys), both ``[B, T]`` bool. Entries above the diagonal (already causally masked) are
    left False: the causal mask is kept as is."""
    block = dst[:, :, None] & src[:, None, :]
    T = block.shape[-1]
    return block & torch.ones(T, T, dtype=torch.bool, device=block.device).tril()


def block_pattern(pattern: torch.Tensor, block: torch.Tensor) -> torch.Tensor:
    """Zero the blocked entries of ``pattern`` ``[B, H, Q, K]`` and renormalise the edited rows
    (= -inf on the scores before the softmax); rows with no blocked entry are untouched, rows
    with every key blocked become zero. ``block`` is ``[B, Q, K]`` (or ``[B, 1, K]`` for one row)."""
    block = block.to(pattern.device)[:, None]
    kept = pattern.masked_fill(block, 0.0)
    total = kept.sum(-1, keepdim=True)
    renorm = torch.where(total > 0, kept / total.clamp_min(torch.finfo(pattern.dtype).tiny), torch.zeros_like(kept))
    edited = block.any(-1, keepdim=True)
    return torch.where(edited, renorm, pattern)


def pattern_edits(m: Model, block: torch.Tensor, layers: Sequence[int]) -> dict:
    """``trace`` edits that apply ``block`` to ``m``'s attention pattern in ``layers``."""
    return {m.hook("pattern", l): (lambda p, b=block: block_pattern(p, b)) for l in layers}


def knockout_edits(m: Model, block: torch.Tensor, layers: Sequence[int]) -> dict:
    """:func:`pattern_edits`, but no edit at all when nothing is blocked."""
    return pattern_edits(m, block, layers) if bool(block.any()) else {}


def knockout_logits(m: Model, inputs: Any, block: torch.Tensor, layers: Sequence[int]) -> torch.Tensor:
    """Full recompute: logits ``[B, T, V]`` of ``m`` with ``block`` applied in ``layers``."""
    from interp.tracing.trace import trace

    out, _ = trace(m, inputs, edits=knockout_edits(m, block, layers))
    return out


# ---------------------------------------------------------------- fast path
def _raw(module: Any) -> Any:
    return getattr(module, "original_component", module)


@dataclass
class CleanCache:
    """What the last-row fast path reuses from one clean run: the residual stream entering
    each layer at the last position, and every layer's keys and values."""

    resid_last: list[torch.Tensor]  # L x [B, d_model]: each layer's resid_pre at the last position
    keys: list[torch.Tensor]  # L x [B, T, H, d_head]
    values: list[torch.Tensor]  # L x [B, T, H, d_head]
    logits: torch.Tensor  # [B, T, V] clean logits


def supports_fast_path(m: Model) -> Optional[str]:
    """None if :func:`last_row_knockout` can run on ``m``; otherwise the reason it cannot."""
    native = getattr(m.module, "original_model", None)
    if m.backend != "tl" or native is None or not hasattr(native, "layers"):
        return "not a TransformerLens-native bridge"
    cfg = m.cfg
    if (getattr(cfg, "positional_embedding_type", "standard") or "standard") != "standard":
        return "rotary positions are not implemented in the fast path"
    if (getattr(cfg, "n_key_value_heads", None) or cfg.n_heads) != cfg.n_heads:
        return "grouped-query attention is not implemented in the fast path"
    if float(getattr(cfg, "attn_scores_soft_cap", -1) or -1) > 0 or float(getattr(cfg, "output_logits_soft_cap", -1) or -1) > 0:
        return "soft caps are not implemented in the fast path"
    if getattr(cfg, "attention_dir", "causal") != "causal":
        return "bidirectional attention: blocking into the last position changes other rows"
    return None


def clean_cache(m: Model, inputs: Any) -> CleanCache:
    """One clean forward capturing what :func:`last_row_knockout` reuses."""
    from interp.tracing.trace import trace

    L = m.n_layers
    names = [m.hook(kind, l) for l in range(L) for kind in ("resid_pre", "k", "v")]
    out, acts = trace(m, inputs, capture=names)
    return CleanCache([acts[m.hook("resid_pre", l)][:, -1] for l in range(L)],
                      [acts[m.hook("k", l)] for l in range(L)],
                      [acts[m.hook("v", l)] for l in range(L)], out)


def last_row_knockout(m: Model, cache: CleanCache, key_block: torch.Tensor, layers: Sequence[int]) -> torch.Tensor:
    """Logits ``[B, V]`` at the last position when the last query may not attend to the keys
    in ``key_block`` (``[B, T]`` bool) in ``layers``; recomputes only the last row from the
    window's first layer, reusing ``cache``'s keys and values of the earlier positions."""
    reason = supports_fast_path(m)
    if reason:
        raise NotImplementedError(f"last-row knockout on {m.model_id}: {reason}")
    layers = sorted(set(layers))
    if not layers or not bool(key_block.any()):
        return cache.logits[:, -1]
    native = m.module.original_model
    cfg = m.cfg
    H, dh = cfg.n_heads, cfg.d_head
    start = layers[0]
    h = cache.resid_last[start]  # [B, d]
    B = h.shape[0]
    block = key_block.to(h.device)[:, None, :]  # [B, 1, T]
    with torch.no_grad():
        for l in range(start, m.n_layers):
            blk = native.layers[l]
            attn = blk.attn
            x = _raw(blk.ln1)(h)
            q = _raw(attn.q)(x).view(B, H, dh)
            k_last = _raw(attn.k)(x).view(B, 1, H, dh)
            v_last = _raw(attn.v)(x).view(B, 1, H, dh)
            K = torch.cat([cache.keys[l][:, :-1], k_last], dim=1)  # [B, T, H, dh]
            V = torch.cat([cache.values[l][:, :-1], v_last], dim=1)
            scores = torch.einsum("bhd,bthd->bht", q, K) / _raw(attn).scale
            pattern = torch.softmax(scores, dim=-1)[:, :, None, :]  # [B, H, 1, T]
            if l in layers:
                pattern = block_pattern(pattern, block)
            z = torch.einsum("bht,bthd->bhd", pattern[:, :, 0], V).reshape(B, H * dh)
            h = h + _raw(attn.o)(z)
            if not cfg.attn_only:
                h = h + _raw(blk.mlp)(_raw(blk.ln2)(h))
        return _raw(native.head)(_raw(native.ln_out)(h))


# ---------------------------------------------------------------- sweeps
def answer_prob(logits: torch.Tensor, answer: torch.Tensor) -> torch.Tensor:
    """Probability (softmax over the vocabulary, float32) of ``answer`` ``[B]`` from ``[B, V]`` logits."""
    return torch.softmax(logits.float(), -1).gather(-1, answer[:, None].to(logits.device))[:, 0]


def relative_change(p_new: torch.Tensor, p_base: torch.Tensor) -> torch.Tensor:
    """The paper's score: ``(p_new - p_base) / p_base * 100``."""
    return (p_new - p_base) / p_base * 100.0


def sweep(m: Model, inputs: Any, groups: dict[str, torch.Tensor], edges: Sequence[tuple[str, str]],
          answer: torch.Tensor, k: int = 1, fast: bool = True, cache: CleanCache | None = None) -> dict:
    """Knockout sweep over windows of ``k`` layers for each edge ``(src, dst)`` of ``groups``
    (``[B, T]`` bool each; the group ``"last"`` must be the final position).

    Returns ``{"p_base": [B], "p": {edge name: [L, B]}, "score": {edge name: [L, B]}}`` with
    edge names ``"src->dst"``. Edges into ``"last"`` use :func:`last_row_knockout` when
    ``fast`` (and the model supports it), all others a full recompute."""
    L = m.n_layers
    if cache is None:
        cache = clean_cache(m, inputs) if fast else None
    if cache is not None:
        clean_last = cache.logits[:, -1]
    else:
        from interp.tracing.trace import trace

        clean_last = trace(m, inputs)[0][:, -1]
    p_base = answer_prob(clean_last, answer)
    use_fast = fast and supports_fast_path(m) is None
    p_out, s_out = {}, {}
    for src, dst in edges:
        name = f"{src}->{dst}"
        rows = torch.zeros(L, len(p_base))
        for l in range(L):
            layers = window(l, k, L)
            if dst == "last" and use_fast:
                logits = last_row_knockout(m, cache, groups[src], layers)
            else:
                block = edge_block(groups[dst], groups[src])
                logits = knockout_logits(m, inputs, block, layers)[:, -1]
            rows[l] = answer_prob(logits, answer).cpu()
        p_out[name] = rows
        s_out[name] = relative_change(rows, p_base.cpu()[None])
    return {"p_base": p_base.cpu(), "p": p_out, "score": s_out}


# ---------------------------------------------------------------- checks
def nothing_blocked_gap(m: Model, inputs: Any, clean_logits: torch.Tensor) -> float:
    """Largest |logit change| when every layer's pattern goes through the knockout edit with an
    all-False block (must be exactly 0: rows with nothing blocked are untouched)."""
    from interp.tracing.trace import trace

    B, T = inputs["tokens"].shape if isinstance(inputs, dict) else inputs.shape
    empty = torch.zeros(B, T, T, dtype=torch.bool)
    out, _ = trace(m, inputs, edits=pattern_edits(m, empty, range(m.n_layers)))
    return float((out - clean_logits).abs().max())


def fast_vs_full_gap(m: Model, inputs: Any, groups: dict[str, torch.Tensor], cache: CleanCache, k: int,
                     edges: Sequence[tuple[str, str]]) -> tuple[float, dict]:
    """Largest |logit difference| at the last position between :func:`last_row_knockout` and a
    full recompute, over every edge of ``edges`` into ``"last"`` and every window of ``k``
    layers; also the seconds each took and one clean forward's."""
    import time

    from interp.tracing.trace import trace

    gap, t_fast, t_full = 0.0, 0.0, 0.0
    L = m.n_layers
    t0 = time.perf_counter()
    trace(m, inputs)
    t_clean = time.perf_counter() - t0
    for src, dst in edges:
        if dst != "last":
            continue
        for l in range(L):
            layers = window(l, k, L)
            t0 = time.perf_counter()
            fast = last_row_knockout(m, cache, groups[src], layers)
            t1 = time.perf_counter()
            full = knockout_logits(m, inputs, edge_block(groups["last"], groups[src]), layers)[:, -1]
            t_full += time.perf_counter() - t1
            t_fast += t1 - t0
            gap = max(gap, float((fast - full).abs().max()))
    return gap, {"clean_forward_s": t_clean, "fast_sweep_s": t_fast, "full_sweep_s": t_full}
