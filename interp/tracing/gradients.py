"""The gradient of a metric at named hooks: the one place attribution methods get it.

Attribution patching (``methods/patching.py``), the SAE circuit scorers
(``methods/sae_scores.py``) and edge attribution all need ``d metric / d activation`` at a
few hook points, from one forward and one backward. A *metric* is
``fn(output [b, ...], idx [b]) -> [b]`` (``idx``: the prompts' indices in the whole set, so
the metric can look up each prompt's answer); the gradient is of ``metric(...).sum()``, so
each prompt's row holds the gradient of that prompt's own metric.

    grads, acts, values = metric_grads_batch(m, tokens, metric, ["blocks.0.attn.hook_z"])
    grads = metric_grads(m, tokens, metric, names, batch_size=32)   # {name: [n, ...]} on CPU
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from interp.tracing.hooks import EditFn
from interp.tracing.model import Model
from interp.tracing.trace import trace

Metric = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _as_leaf(act: torch.Tensor) -> torch.Tensor:
    # A hook's activation must be in the graph even when the weights are frozen (no grad from
    # the tokens); it must NOT be detached when it already is, which would cut the paths from
    # earlier hooks through later ones.
    return act if act.requires_grad else act.detach().requires_grad_(True)


def metric_grads_batch(
    m: Model,
    tokens: torch.Tensor,
    metric: Metric,
    hooks: Sequence[str],
    *,
    idx: torch.Tensor | None = None,
    edits: dict[str, EditFn] | None = None,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], torch.Tensor]:
    """One forward and one backward of one batch: ``(grads, acts, values)``.

    ``grads[name]`` is ``d metric(...).sum() / d activation`` at each hook in ``hooks``,
    ``acts[name]`` the activation itself (both detached, on the model's device and dtype),
    ``values`` the metric per prompt ``[b]`` (detached). ``idx`` (default ``arange(b)``) is
    handed to the metric. ``edits`` apply before the gradient is taken (an edit at one of
    ``hooks`` runs first, then the result is made a leaf of the graph)."""
    hooks = list(dict.fromkeys(hooks))
    if not hooks:
        raise ValueError("metric_grads: name at least one hook (see m.hook_names)")
    x = m.prepare(tokens)
    idx = torch.arange(len(x)) if idx is None else idx
    edits = dict(edits or {})
    leafs: dict[str, EditFn] = {}
    for name in hooks:
        inner = edits.pop(name, None)
        leafs[name] = (lambda a, f=inner: _as_leaf(f(a))) if inner is not None else _as_leaf
    out, acts = trace(m, x, capture=hooks, edits={**edits, **leafs}, grad=True)
    if out is None:
        raise ValueError(f"metric_grads: {m.model_id} returned no output to take the metric of")
    values = metric(out, idx)
    # allow_unused: a hook the metric does not depend on (e.g. cut off by an edit) has gradient 0
    raw = torch.autograd.grad(values.sum(), [acts[k] for k in hooks], allow_unused=True)
    grads = {
        k: torch.zeros_like(acts[k]) if g is None else g.detach()
        for k, g in zip(hooks, raw, strict=True)
    }
    return grads, {k: acts[k].detach() for k in hooks}, values.detach()


def metric_grads(
    m: Model,
    tokens: torch.Tensor,
    metric: Metric,
    hooks: Sequence[str],
    *,
    batch_size: int = 64,
) -> dict[str, torch.Tensor]:
    """:func:`metric_grads_batch` over all prompts in batches of ``batch_size``: the gradient
    at each hook, ``{name: [n, ...]}`` (float32, on the CPU). Prompt ``i`` is metric index
    ``i`` whichever batch it falls in."""
    tokens = m.prepare(tokens)
    rows: dict[str, list[torch.Tensor]] = {}
    for i in range(0, len(tokens), batch_size):
        x = tokens[i : i + batch_size]
        grads, _, _ = metric_grads_batch(m, x, metric, hooks, idx=torch.arange(i, i + len(x)))
        for k, g in grads.items():
            rows.setdefault(k, []).append(g.float().cpu())
    return {k: torch.cat(v) for k, v in rows.items()}
