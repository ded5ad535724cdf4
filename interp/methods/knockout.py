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

On a causal Hugging Face model (GPT-2, GPT-NeoX, Llama with rotary positions and grouped-query
attention, ...) the same idea goes through the model's own key/value cache: the clean run is
made with ``use_cache=True``, its cache cut to the first ``T - 1`` positions, and each window
reruns only the last token against that cache (so rotary phases and grouped key/value heads are
the model's own), with the bridge's ``hook_pattern`` edit on the one query row of the window's
layers. All windows of an edge go in one batched single-token forward
(:func:`last_row_knockouts`) that shares the clean prefix. Bidirectional encoders (BERT),
soft-capped and sliding-window attention are refused with a reason (:func:`supports_fast_path`)
and ``sweep`` recomputes those in full; where the bridge runs attention inside the HF module
(BERT) the full recompute passes the block as an additive attention mask, since a
``hook_pattern`` edit would be discarded there.

Windows: the window of ``k`` layers "around" layer ``l`` is
``[l - (k - 1) // 2, l - (k - 1) // 2 + k)`` clipped to the model (:func:`window`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from interp.tracing.attention import (
    attention_delegated,
    attention_module,
    cached_prefix,
    hf_last_row_refusal,
    native_last_row_refusal,
    recording_cache,
    rerun_last_row,
    shared_prefix_cache,
)
from interp.tracing.hooks import EditFn
from interp.tracing.model import Model
from interp.tracing.steps import cache_arg as _cache_arg
from interp.tracing.steps import hf_cache_kwargs
from interp.tracing.steps import hf_model as _hf_model
from interp.utils import Registry


# ---------------------------------------------------------------- masks
def window(layer: int, k: int, n_layers: int) -> list[int]:
    """The ``k`` layers around ``layer`` (clipped to ``[0, n_layers)``)."""
    start = layer - (k - 1) // 2
    return [i for i in range(start, start + k) if 0 <= i < n_layers]


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
    with every key blocked become zero. ``block`` is ``[B, Q, K]`` (or ``[B, 1, K]`` for one
    row)."""
    block = block.to(pattern.device)[:, None]
    kept = pattern.masked_fill(block, 0.0)
    total = kept.sum(-1, keepdim=True)
    renorm = torch.where(
        total > 0, kept / total.clamp_min(torch.finfo(pattern.dtype).tiny), torch.zeros_like(kept)
    )
    edited = block.any(-1, keepdim=True)
    return torch.where(edited, renorm, pattern)


def pattern_edits(m: Model, block: torch.Tensor, layers: Sequence[int]) -> dict[str, EditFn]:
    """``trace`` edits that apply ``block`` to ``m``'s attention pattern in ``layers``."""
    edit = functools.partial(_blocked, block)
    return {m.hook("pattern", layer): edit for layer in layers}


def _blocked(block: torch.Tensor, pattern: torch.Tensor) -> torch.Tensor:
    return block_pattern(pattern, block)


def knockout_edits(m: Model, block: torch.Tensor, layers: Sequence[int]) -> dict[str, EditFn]:
    """:func:`pattern_edits`, but no edit at all when nothing is blocked."""
    return pattern_edits(m, block, layers) if bool(block.any()) else {}


def knockout_logits(
    m: Model, inputs: Any, block: torch.Tensor, layers: Sequence[int]
) -> torch.Tensor:
    """Full recompute: logits ``[B, T, V]`` of ``m`` with ``block`` applied in ``layers``.

    Layers whose attention runs inside the Hugging Face module (the bridge only reports the
    pattern afterwards, e.g. BERT) get the block as an additive attention mask instead; there a
    row with every key blocked is spread uniformly, not zeroed (the only difference)."""
    from interp.tracing.trace import trace

    delegated = (
        [layer for layer in layers if attention_delegated(m, layer)] if bool(block.any()) else []
    )
    edited = [layer for layer in layers if layer not in delegated]
    with _masked_attention(m, block, delegated):
        out, _ = trace(m, inputs, edits=knockout_edits(m, block, edited))
    return out


def _additive_mask(existing: Any, block: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``[B, 1, T, T]`` additive mask: ``existing`` (None, a ``[B, T]`` key mask, a 4-D bool or
    additive mask) with the ``block`` ``[B, T, T]`` entries set to the dtype minimum."""
    lo = torch.finfo(dtype).min
    B, T, _ = block.shape
    base = torch.zeros(B, 1, T, T, dtype=dtype, device=block.device)
    if isinstance(existing, torch.Tensor):
        e = existing.to(block.device)
        if e.dim() == 2:  # [B, T] keys: 1 = attend
            e = e[:, None, None, :].bool()
        if e.dtype == torch.bool:
            e = torch.zeros(e.shape, dtype=dtype, device=e.device).masked_fill(~e, lo)
        base = base + e[..., -T:, -T:].to(dtype)
    return base.masked_fill(block[:, None], lo)


@contextmanager
def _masked_attention(m: Model, block: torch.Tensor, layers: Sequence[int]) -> Iterator[None]:
    """While active, the attention modules of ``layers`` get ``block`` in their attention mask."""

    def pre(
        module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        hidden: torch.Tensor = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]
        b = block.to(hidden.device)
        if "attention_mask" in kwargs or len(args) < 2:
            kwargs = dict(kwargs)
            kwargs["attention_mask"] = _additive_mask(kwargs.get("attention_mask"), b, hidden.dtype)
        else:
            args = (args[0], _additive_mask(args[1], b, hidden.dtype), *args[2:])
        return args, kwargs

    handles = [
        attention_module(m, layer).register_forward_pre_hook(pre, with_kwargs=True)
        for layer in layers
    ]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


# ---------------------------------------------------------------- fast path
@dataclass
class CleanCache:
    """What the last-row fast path reuses from one clean run: the residual stream entering
    each layer at the last position, and every layer's keys and values."""

    resid_last: list[torch.Tensor]  # L x [B, d_model]: each layer's resid_pre at the last position
    keys: list[torch.Tensor]  # L x [B, T, H, d_head]
    values: list[torch.Tensor]  # L x [B, T, H, d_head]
    logits: torch.Tensor  # [B, T, V] clean logits
    # Hugging Face models only: per layer (keys, values) of the first T - 1 positions, as the
    # model's cache holds them ([B, kv_heads, T - 1, d_head]), and the last token ids [B, 1]
    past: list[tuple[torch.Tensor, torch.Tensor]] | None = None
    last_tokens: torch.Tensor | None = None


def supports_fast_path(m: Model) -> str | None:
    """None if :func:`last_row_knockout` can run on ``m``; otherwise the reason it cannot."""
    hf = _hf_model(m) if m.backend == "tl" else None
    if hf is not None:
        return hf_last_row_refusal(m, hf)
    return native_last_row_refusal(m)


# ---------------------------------------------------------------- Hugging Face: its own cache
def _tokens_of(inputs: Any) -> torch.Tensor:
    """The token ids ``[B, T]`` of ``inputs`` (a tensor, or a dict of model inputs)."""
    if isinstance(inputs, dict):
        inputs = inputs["tokens"] if "tokens" in inputs else inputs["input_ids"]
    if not isinstance(inputs, torch.Tensor):
        raise TypeError(f"knockout needs token ids [batch, pos], got {type(inputs).__name__}")
    return inputs


@contextmanager
def _hf_hooks(m: Model, blocks: dict[int, torch.Tensor]) -> Iterator[None]:
    """While active: the attention bridges see the key/value cache (the generation loop's
    :func:`~interp.tracing.steps.hf_cache_kwargs`), and the pattern of layer ``l`` goes
    through :func:`block_pattern` with ``blocks[l]`` (``[B, 1, T]``)."""

    def hook(block: torch.Tensor, mod: nn.Module, args: Any, out: torch.Tensor) -> torch.Tensor:
        return block_pattern(out, block)

    handles = [
        m.module.get_submodule(m.hook("pattern", layer)).register_forward_hook(
            functools.partial(hook, blk)
        )
        for layer, blk in blocks.items()
    ]
    try:
        with hf_cache_kwargs(m):
            yield
    finally:
        for h in handles:
            h.remove()


def _hf_clean_cache(m: Model, inputs: Any) -> CleanCache:
    """One clean forward of the HF model that fills a cache; the cache cut to ``T - 1``."""
    hf = _hf_model(m)
    tokens = _tokens_of(inputs).to(hf.device)
    with torch.no_grad(), _hf_hooks(m, {}):
        rec = recording_cache()
        out = hf(tokens, **{_cache_arg(hf): rec}, use_cache=True)
    # [B, kv_heads, T, dh] -> the first T - 1 positions (views: the last token is rerun per window)
    past = cached_prefix(rec)
    return CleanCache([], [], [], out.logits, past=past, last_tokens=tokens[:, -1:])


def _hf_last_rows(
    m: Model, cache: CleanCache, key_block: torch.Tensor, windows: Sequence[Sequence[int]]
) -> torch.Tensor:
    """Logits ``[W, B, V]`` at the last position, window ``w`` blocking ``key_block`` ``[B, T]`` in
    ``windows[w]``: one single-token forward of ``W * B`` rows against the clean cache."""
    hf = _hf_model(m)
    if cache.past is None or cache.last_tokens is None:
        raise ValueError("the clean cache holds no Hugging Face key/value prefix")
    W = len(windows)
    B = cache.last_tokens.shape[0]
    kv = shared_prefix_cache(cache.past, W)
    kb = key_block.to(cache.logits.device)[:, None, :]  # [B, 1, T]
    blocks = {}
    for layer in sorted({layer for w in windows for layer in w}):
        on = torch.tensor([layer in w for w in windows], device=kb.device)  # [W]
        # [W*B, 1, T]; rows off the window stay untouched
        blocks[layer] = (kb[None] & on[:, None, None, None]).reshape(W * B, 1, -1)
    tokens = cache.last_tokens.repeat(W, 1)
    with torch.no_grad(), _hf_hooks(m, blocks):
        logits: torch.Tensor = hf(tokens, **{_cache_arg(hf): kv}, use_cache=True).logits[:, -1]
    return logits.reshape(W, B, -1)


def clean_cache(m: Model, inputs: Any) -> CleanCache:
    """One clean forward capturing what :func:`last_row_knockout` reuses."""
    from interp.tracing.trace import trace

    if m.backend == "tl" and _hf_model(m) is not None and supports_fast_path(m) is None:
        return _hf_clean_cache(m, inputs)

    layers = range(m.n_layers)
    names = [m.hook(kind, layer) for layer in layers for kind in ("resid_pre", "k", "v")]
    out, acts = trace(m, inputs, capture=names)
    return CleanCache(
        [acts[m.hook("resid_pre", layer)][:, -1] for layer in layers],
        [acts[m.hook("k", layer)] for layer in layers],
        [acts[m.hook("v", layer)] for layer in layers],
        out,
    )


def last_row_knockout(
    m: Model, cache: CleanCache, key_block: torch.Tensor, layers: Sequence[int]
) -> torch.Tensor:
    """Logits ``[B, V]`` at the last position when the last query may not attend to the keys
    in ``key_block`` (``[B, T]`` bool) in ``layers``; recomputes only the last row from the
    window's first layer, reusing ``cache``'s keys and values of the earlier positions."""
    reason = supports_fast_path(m)
    if reason:
        raise NotImplementedError(f"last-row knockout on {m.model_id}: {reason}")
    layers = sorted(set(layers))
    if not layers or not bool(key_block.any()):
        return cache.logits[:, -1]
    if cache.past is not None:
        return _hf_last_rows(m, cache, key_block, [layers])[0]
    start = layers[0]
    resid = cache.resid_last[start]  # [B, d]
    block = key_block.to(resid.device)[:, None, :]  # [B, 1, T]

    def edit(layer: int, pattern: torch.Tensor) -> torch.Tensor:
        return block_pattern(pattern, block) if layer in layers else pattern

    return rerun_last_row(m, resid, start, cache.keys, cache.values, edit)


def last_row_knockouts(
    m: Model, cache: CleanCache, key_block: torch.Tensor, windows: Sequence[Sequence[int]]
) -> torch.Tensor:
    """:func:`last_row_knockout` for every window of ``windows``: logits ``[W, B, V]``. On a
    Hugging Face model all windows share one batched single-token forward; on a zoo model each
    window is its own last-row recompute (the numbers of :func:`last_row_knockout`)."""
    reason = supports_fast_path(m)
    if reason:
        raise NotImplementedError(f"last-row knockout on {m.model_id}: {reason}")
    todo = [w for w in range(len(windows)) if windows[w] and bool(key_block.any())]
    if cache.past is None or not todo:
        return torch.stack([last_row_knockout(m, cache, key_block, w) for w in windows])
    out = cache.logits[:, -1][None].repeat(
        len(windows), 1, 1
    )  # windows with nothing blocked: clean
    out[todo] = _hf_last_rows(m, cache, key_block, [sorted(set(windows[w])) for w in todo]).to(
        out.dtype
    )
    return out


# ---------------------------------------------------------------- knockout modes
KnockoutMode = Callable[
    [Model, Any, "CleanCache | None", torch.Tensor, torch.Tensor, Sequence[Sequence[int]]],
    torch.Tensor,
]
"""``mode(m, inputs, cache, dst, src, windows) -> [W, B, V]``: the last position's logits with the
edge ``src -> dst`` (``[B, T]`` bool position groups) blocked in the layers of each window;
``cache`` is the clean run's :class:`CleanCache` (None where the mode needs none). Modes are
interchangeable ways to compute the same knockout, so a test can hold one against another."""
_MODES: Registry[KnockoutMode] = Registry("knockout mode")
# register(name): decorator for a mode with the signature above; a taken name is a ValueError.
# names(): the registered modes. get(name): a mode (KeyError listing close names).
register = _MODES.register
names = _MODES.names
get = _MODES.get


@register("full")
def full_knockout(
    m: Model,
    inputs: Any,
    cache: CleanCache | None,
    dst: torch.Tensor,
    src: torch.Tensor,
    windows: Sequence[Sequence[int]],
) -> torch.Tensor:
    """Every position recomputed (:func:`knockout_logits`), one forward per window; any edge,
    any model. ``cache`` is not used."""
    block = edge_block(dst, src)
    return torch.stack([knockout_logits(m, inputs, block, w)[:, -1] for w in windows])


@register("last_row")
def last_row_mode(
    m: Model,
    inputs: Any,
    cache: CleanCache | None,
    dst: torch.Tensor,
    src: torch.Tensor,
    windows: Sequence[Sequence[int]],
) -> torch.Tensor:
    """Only the last query row recomputed (:func:`last_row_knockouts`) against ``cache``: for
    edges into the last position (``dst`` is that position), on models
    :func:`supports_fast_path` accepts."""
    if cache is None:
        raise ValueError("the 'last_row' knockout mode needs the clean run's cache (clean_cache)")
    return last_row_knockouts(m, cache, src, windows)


# ---------------------------------------------------------------- sweeps
def answer_prob(logits: torch.Tensor, answer: torch.Tensor) -> torch.Tensor:
    """Probability (softmax over the vocabulary, float32) of ``answer`` ``[B]`` from ``[B, V]``
    logits."""
    return torch.softmax(logits.float(), -1).gather(-1, answer[:, None].to(logits.device))[:, 0]


def relative_change(p_new: torch.Tensor, p_base: torch.Tensor) -> torch.Tensor:
    """The paper's score: ``(p_new - p_base) / p_base * 100``."""
    return (p_new - p_base) / p_base * 100.0


def sweep(
    m: Model,
    inputs: Any,
    groups: dict[str, torch.Tensor],
    edges: Sequence[tuple[str, str]],
    answer: torch.Tensor,
    k: int = 1,
    fast: bool = True,
    cache: CleanCache | None = None,
) -> dict[str, Any]:
    """Knockout sweep over windows of ``k`` layers for each edge ``(src, dst)`` of ``groups``
    (``[B, T]`` bool each; the group ``"last"`` must be the final position).

    Returns ``{"p_base": [B], "p": {edge name: [L, B]}, "score": {edge name: [L, B]}}`` with
    edge names ``"src->dst"``. Edges into ``"last"`` use the ``"last_row"`` mode
    (:func:`last_row_knockouts`) when ``fast`` (and the model supports it), all others the
    ``"full"`` recompute."""
    L = m.n_layers
    use_fast = fast and supports_fast_path(m) is None
    if cache is None:
        cache = clean_cache(m, inputs) if use_fast else None
    if cache is not None:
        clean_last = cache.logits[:, -1]
    else:
        from interp.tracing.trace import trace

        clean_last = trace(m, inputs)[0][:, -1]
    p_base = answer_prob(clean_last, answer)
    p_out, s_out = {}, {}
    windows = [window(layer, k, L) for layer in range(L)]
    for src, dst in edges:
        name = f"{src}->{dst}"
        mode = get("last_row" if dst == "last" and use_fast else "full")
        logits = mode(m, inputs, cache, groups[dst], groups[src], windows)  # [L, B, V]
        rows = torch.zeros(L, len(p_base))
        for layer in range(L):
            rows[layer] = answer_prob(logits[layer], answer).cpu()
        p_out[name] = rows
        s_out[name] = relative_change(rows, p_base.cpu()[None])
    return {"p_base": p_base.cpu(), "p": p_out, "score": s_out}


# ---------------------------------------------------------------- checks
def attention_removed_logits(
    m: Model, inputs: Any, layers: Sequence[int] | None = None
) -> torch.Tensor:
    """Oracle for a complete cut into the last position: last-position logits ``[B, V]`` of a
    full forward in which the last position's attention output is removed in ``layers`` (all by
    default). It zeroes the per-head mixed values (``m.hook("z", l)``) of the last query, so only
    the output projection's bias is added there, exactly what a pattern row with every key
    blocked gives; it shares no code with the pattern edit or the fast path."""
    from interp.tracing.trace import trace

    def drop_last(z: torch.Tensor) -> torch.Tensor:  # [B, T, H, d_head]
        z = z.clone()
        z[:, -1] = 0.0
        return z

    layers = range(m.n_layers) if layers is None else layers
    out, _ = trace(m, inputs, edits={m.hook("z", layer): drop_last for layer in layers})
    return out[:, -1]


def nothing_blocked_gap(m: Model, inputs: Any, clean_logits: torch.Tensor) -> float:
    """Largest |logit change| when every layer's pattern goes through the knockout edit with an
    all-False block (must be exactly 0: rows with nothing blocked are untouched)."""
    from interp.tracing.trace import trace

    B, T = inputs["tokens"].shape if isinstance(inputs, dict) else inputs.shape
    empty = torch.zeros(B, T, T, dtype=torch.bool)
    out, _ = trace(m, inputs, edits=pattern_edits(m, empty, range(m.n_layers)))
    return float((out - clean_logits).abs().max())


def fast_vs_full_gap(
    m: Model,
    inputs: Any,
    groups: dict[str, torch.Tensor],
    cache: CleanCache,
    k: int,
    edges: Sequence[tuple[str, str]],
) -> tuple[float, dict[str, float]]:
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
        for layer in range(L):
            layers = window(layer, k, L)
            t0 = time.perf_counter()
            fast = last_row_knockout(m, cache, groups[src], layers)
            t1 = time.perf_counter()
            full = knockout_logits(m, inputs, edge_block(groups["last"], groups[src]), layers)[
                :, -1
            ]
            t_full += time.perf_counter() - t1
            t_fast += t1 - t0
            gap = max(gap, float((fast - full).abs().max()))
    return gap, {"clean_forward_s": t_clean, "fast_sweep_s": t_fast, "full_sweep_s": t_full}
