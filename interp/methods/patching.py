"""Activation patching and attribution patching per attention head (and position).

Works on any TransformerLens-backed :class:`interp.Model` with a per-layer ``hook_z``
(``m.hook("z", l)``: zoo transformers, ``hf:`` models, save_pretrained directories). A
*metric* is ``fn(logits [b, pos, vocab], idx [b]) -> [b]``, where ``idx`` are the indices of
the prompts in the batch (so it can look up each prompt's answer); effects are
``metric(patched) - metric(clean)`` per prompt.

Sources (what a head's output is replaced by):

- ``"counterfactual"``: the same head on the paired ``corrupt`` prompt (same shape);
- ``"zero"``: zeros; ``"mean"``: the mean over the clean prompts at each position.

``alpha`` interpolates: the patched value is ``clean + alpha * (source - clean)``; small
``alpha`` is the regime where attribution patching (a first-order Taylor expansion, Nanda
2023; EAP, Syed et al. 2023) must agree with activation patching (``alpha`` times).

Activation patching is batched over heads: each forward carries one copy of the prompts per
head of a layer, each copy with a different head patched.

    eff = activation_patching(m, clean, metric, corrupt=corrupt)   # [n, layers, heads]
    att = attribution_patching(m, clean, metric, corrupt=corrupt)  # [n, layers, heads]
    out = head_outputs(m, clean)                                   # [n, pos, layers*heads, d_model]
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Literal

import torch
from jaxtyping import Float, Int

from interp.tracing.gradients import metric_grads_batch
from interp.tracing.hooks import EditFn
from interp.tracing.model import Model
from interp.tracing.trace import trace

Metric = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Source = Literal["counterfactual", "zero", "mean"]
Tokens = Int[torch.Tensor, "n pos"] | Sequence[str]  # token ids, or text Model.prepare tokenizes
HookZ = Float[torch.Tensor, "n pos head d_head"]  # one layer's hook_z over n prompts
HeadEffects = Float[torch.Tensor, "n layers heads"] | Float[torch.Tensor, "n layers heads pos"]


def z_names(m: Model) -> list[str]:
    """Every layer's ``hook_z`` (``m.hook("z", l)``: ``[batch, pos, head, d_head]``)."""
    return [m.hook("z", layer) for layer in range(m.n_layers)]


def _z(m: Model, tokens: torch.Tensor, batch_size: int) -> dict[str, torch.Tensor]:
    out: dict[str, list[torch.Tensor]] = {}
    names = z_names(m)
    for i in range(0, len(tokens), batch_size):
        _, acts = trace(m, tokens[i : i + batch_size], capture=names)
        for k, v in acts.items():
            out.setdefault(k, []).append(v)
    return {k: torch.cat(v) for k, v in out.items()}  # each [n, pos, head, d_head]


def sources(
    m: Model,
    clean: Int[torch.Tensor, "n pos"],
    source: Source = "counterfactual",
    corrupt: Int[torch.Tensor, "n pos"] | None = None,
    batch_size: int = 64,
) -> tuple[dict[str, HookZ], dict[str, HookZ]]:
    """``(clean_z, source_z)``: per layer ``hook_z`` ``[n, pos, head, d_head]`` on the clean
    prompts and the values that patching puts in their place."""
    clean_z = _z(m, clean, batch_size)
    if source == "counterfactual":
        if corrupt is None or corrupt.shape != clean.shape:
            raise ValueError("counterfactual patching needs `corrupt` prompts shaped like `clean`")
        src = _z(m, corrupt, batch_size)
    elif source == "zero":
        src = {k: torch.zeros_like(v) for k, v in clean_z.items()}
    elif source == "mean":
        src = {k: v.mean(0, keepdim=True).expand_as(v).clone() for k, v in clean_z.items()}
    else:
        raise ValueError(f"unknown patching source {source!r}: counterfactual, zero or mean")
    return clean_z, src


def _metric_on(
    m: Model,
    tokens: torch.Tensor,
    metric: Metric,
    idx: torch.Tensor,
    edits: dict[str, EditFn] | None = None,
) -> torch.Tensor:
    out, _ = trace(m, tokens, edits=edits)
    return metric(out, idx).detach().float().cpu()


def activation_patching(
    m: Model,
    clean: Tokens,
    metric: Metric,
    *,
    corrupt: Tokens | None = None,
    source: Source = "counterfactual",
    per_position: bool = False,
    alpha: float = 1.0,
    batch_size: int = 64,
) -> HeadEffects:
    """Effect of patching each head (or head x position) on ``metric``, per prompt.

    Returns ``[n, layers, heads]`` (or ``[n, layers, heads, pos]`` with ``per_position``)."""
    x_clean: torch.Tensor = m.prepare(clean)
    x_corrupt: torch.Tensor | None = None if corrupt is None else m.prepare(corrupt)
    n, T = x_clean.shape[:2]
    L, H = m.n_layers, m.cfg.n_heads
    clean_z, src_z = sources(m, x_clean, source, x_corrupt, batch_size)
    idx_all = torch.arange(n)
    base = torch.cat(
        [
            _metric_on(m, x_clean[i : i + batch_size], metric, idx_all[i : i + batch_size])
            for i in range(0, n, batch_size)
        ]
    )  # [n]
    positions: list[int | None] = list(range(T)) if per_position else [None]
    out = torch.zeros(n, L, H, len(positions))
    per_chunk = max(1, batch_size // H)
    eye = torch.eye(H, device=x_clean.device)  # copy c patches head c
    for layer, name in enumerate(z_names(m)):
        for j, p in enumerate(positions):
            for i in range(0, n, per_chunk):
                sl = slice(i, i + per_chunk)
                b = len(idx_all[sl])
                x = x_clean[sl].repeat(H, 1)  # [H*b, pos]: copy c of the prompts patches head c
                src = clean_z[name][sl] + alpha * (
                    src_z[name][sl] - clean_z[name][sl]
                )  # [b, pos, head, d]
                mask = (
                    eye[:, None, None, :, None].expand(H, 1, T, H, 1).clone()
                )  # [copy, 1, pos, head, 1]
                if p is not None:
                    keep = torch.zeros(T, device=x_clean.device)
                    keep[p] = 1
                    mask = mask * keep[None, None, :, None, None]

                edit = functools.partial(_patch_heads, src=src, mask=mask, copies=H, b=b)
                vals = _metric_on(m, x, metric, idx_all[sl].repeat(H), edits={name: edit})  # [H*b]
                out[sl, layer, :, j] = vals.view(H, b).T - base[sl, None]
    return out if per_position else out[..., 0]


def _patch_heads(
    act: torch.Tensor, *, src: torch.Tensor, mask: torch.Tensor, copies: int, b: int
) -> torch.Tensor:
    """``act`` ``[copies * b, pos, head, d_head]`` with ``src`` ``[b, pos, head, d_head]`` written
    where ``mask`` ``[copies, 1, pos, head, 1]`` is 1 (copy ``c`` of the batch patches head
    ``c``)."""
    a = act.view(copies, b, *act.shape[1:])  # [copy, b, pos, head, d_head]
    m_ = mask.to(act.dtype)
    return (a * (1 - m_) + src.to(act.dtype)[None] * m_).view_as(act)


def attribution_patching(
    m: Model,
    clean: Tokens,
    metric: Metric,
    *,
    corrupt: Tokens | None = None,
    source: Source = "counterfactual",
    per_position: bool = False,
    batch_size: int = 64,
) -> HeadEffects:
    """First-order estimate of :func:`activation_patching` from one forward and backward:
    ``(source_z - clean_z) . d metric / d clean_z`` per head (and position).

    Returns ``[n, layers, heads]`` (or ``[n, layers, heads, pos]``)."""
    x_clean: torch.Tensor = m.prepare(clean)
    x_corrupt: torch.Tensor | None = None if corrupt is None else m.prepare(corrupt)
    n = len(x_clean)
    names = z_names(m)
    src_z = None if source == "zero" else sources(m, x_clean, source, x_corrupt, batch_size)[1]
    rows = []
    for i in range(0, n, batch_size):
        x = x_clean[i : i + batch_size]
        grads, acts, _ = metric_grads_batch(m, x, metric, names, idx=torch.arange(i, i + len(x)))
        per_layer = []
        for name in names:
            z, g = acts[name], grads[name]
            delta = -z if src_z is None else src_z[name][i : i + len(x)].to(z.dtype) - z
            eff = (delta * g).sum(-1)  # [b, pos, head]
            per_layer.append(eff.transpose(1, 2) if per_position else eff.sum(1))
        rows.append(torch.stack(per_layer, 1).float().cpu())  # [b, layers, heads(, pos)]
    return torch.cat(rows)


def head_results(
    m: Model, tokens: Tokens, batch_size: int = 64, upto: Int[torch.Tensor, " n"] | None = None
) -> Float[torch.Tensor, "n layers_x_heads d_model"]:
    """What each head writes to the residual stream (``hook_z @ W_O``, no bias), averaged over
    positions: ``[n, layers * heads, d_model]`` (layer-major). ``upto`` ``[n]``: average only
    positions ``<= upto[i]`` (e.g. the answer position of right-padded prompts)."""
    x: torch.Tensor = m.prepare(tokens)
    W_O = _w_o(m)  # [layers, heads, d_head, d_model]
    zs = _z(m, x, batch_size)
    T = x.shape[1]
    if upto is None:
        w = torch.full((len(x), T), 1.0 / T)
    else:
        keep = (torch.arange(T)[None] <= upto.cpu()[:, None]).float()
        w = keep / keep.sum(1, keepdim=True)
    w = w.to(W_O.device, W_O.dtype)
    outs = []
    for layer, name in enumerate(z_names(m)):
        zbar = torch.einsum("bphd,bp->bhd", zs[name].to(W_O.dtype), w)  # [n, head, d_head]
        outs.append(torch.einsum("bhd,hdm->bhm", zbar, W_O[layer]))  # [n, head, d_model]
    return torch.cat(outs, 1).detach().float().cpu()


def _w_o(m: Model) -> Float[torch.Tensor, "layers heads d_head d_model"]:
    """Stacked output weights ``[layers, heads, d_head, d_model]``."""
    W = getattr(m.module, "W_O", None)
    if isinstance(W, torch.Tensor) and W.ndim == 4:
        return W.detach()
    per_layer = [m.attn_weights(layer)["W_O"] for layer in range(m.n_layers)]
    missing = [layer for layer, w in enumerate(per_layer) if w is None]
    if missing:
        raise ValueError(f"{m.model_id} has no W_O in layers {missing}")
    return torch.stack([w for w in per_layer if w is not None])  # detached by attn_weights


def head_outputs(
    m: Model, tokens: Tokens, batch_size: int = 64
) -> Float[torch.Tensor, "n pos layers_x_heads d_model"]:
    """What each head writes to the residual stream at every position (``hook_z @ W_O``, no
    bias): ``[n, pos, layers * heads, d_model]`` (layer-major); :func:`head_results` is its
    mean over positions."""
    x: torch.Tensor = m.prepare(tokens)
    W_O = _w_o(m)  # [layers, heads, d_head, d_model]
    zs = _z(m, x, batch_size)
    outs = [
        torch.einsum("bphd,hdm->bphm", zs[name].to(W_O.dtype), W_O[layer])
        for layer, name in enumerate(z_names(m))
    ]
    return torch.cat(outs, 2).detach().float().cpu()  # [n, pos, layers*heads, d_model]
