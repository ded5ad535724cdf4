"""``trace``: run one batch, capture named activations, optionally edit them.

An edit replaces an activation with ``fn(activation)``; zero/mean ablation and
patching are one-liners built from the helpers below::

    out, acts = interp.trace(m, tokens, capture=["blocks.1.hook_resid_post"],
                             edits={"blocks.0.attn.hook_z": zero_heads([1])})
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import torch

from interp.tracing.hooks import EditFn, checked_edit
from interp.tracing.model import Model


def trace(
    m: Model,
    inputs: Any,
    capture: Sequence[str] | str = (),
    edits: dict[str, EditFn] | None = None,
    *,
    grad: bool = False,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Run ``m`` on ``inputs``; return ``(output, {name: activation})``: the module's output is
    the logits ``[batch, pos, vocab]`` of a language model (whatever the module returns for a
    wrapped module of another kind).

    Args:
        m: a :class:`Model` (from ``interp.load_model`` or ``interp.wrap``).
        inputs: text, a list of texts, token ids ``[batch, pos]`` or any tensor the
            module takes.
        capture: hook names to return (see ``m.hook_names``).
        edits: ``{hook name: fn}``; the activation is replaced by ``fn(activation)``
            (same shape) before the rest of the forward uses it.
        grad: keep the autograd graph (for attribution patching); default no grad.
    """
    if isinstance(capture, str):
        capture = [capture]
    edits = dict(edits or {})
    x = m.prepare(inputs)
    ctx = torch.enable_grad() if grad else torch.no_grad()
    with ctx:
        if m.backend == "tl":
            with m.hooked(capture, edits, detach=not grad) as acts:
                out: torch.Tensor = m.module(x)  # no stop_after: the forward runs to its end
            return out, acts
        return _trace_nnsight(m, x, list(capture), edits, grad)


def _resolve(root: Any, path: str) -> Any:
    return functools.reduce(getattr, path.split("."), root) if path else root


def _trace_nnsight(
    m: Model, x: Any, capture: list[str], edits: dict[str, EditFn], grad: bool
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    m.check_names([*capture, *edits])
    nn_model = m.nnsight_model()
    # nnsight's tracing needs each module's accesses in execution order.
    order = {n: i for i, n in enumerate(m.hook_names)}
    names = sorted(dict.fromkeys([*edits, *capture]), key=order.__getitem__)
    saved: dict[str, Any] = {}
    with nn_model.trace(x):
        for name in names:
            path, _, which = name.rpartition(".")
            mod = _resolve(nn_model, path)
            if which == "hook_in":
                if name in edits:  # checked as on the TransformerLens path: same shape and dtype
                    mod.input = checked_edit(name, mod.input, edits[name](mod.input))
                if name in capture:
                    saved[name] = mod.input.save()
            else:
                if name in edits:
                    mod.output = checked_edit(name, mod.output, edits[name](mod.output))
                if name in capture:
                    saved[name] = mod.output.save()
        out = nn_model.output.save()
    acts = {k: (v if grad else _detach(v)) for k, v in saved.items()}
    return out, acts


def _detach(v: Any) -> Any:
    return v.detach() if isinstance(v, torch.Tensor) else v


# ---------------------------------------------------------------- edit helpers
def zero_ablate() -> EditFn:
    """Replace the whole activation by zeros."""
    return torch.zeros_like


def mean_ablate(mean: torch.Tensor) -> EditFn:
    """Replace the activation by ``mean`` (broadcast; e.g. a dataset mean ``[d]``)."""
    return lambda act: mean.to(act.device, act.dtype).expand_as(act).clone()


def patch(source: torch.Tensor) -> EditFn:
    """Replace the activation by ``source`` (e.g. the same hook on a counterfactual run)."""
    return lambda act: source.to(act.device, act.dtype).expand_as(act).clone()


def edit_heads(
    heads: Sequence[int], fn: Callable[[torch.Tensor], torch.Tensor], head_dim: int = 2
) -> EditFn:
    """Apply ``fn`` to the chosen heads only (``hook_z``: ``[batch, pos, head, d_head]``)."""
    heads = list(heads)

    def edit(act: torch.Tensor) -> torch.Tensor:
        out = act.clone()
        idx: list[Any] = [slice(None)] * act.ndim
        idx[head_dim] = heads
        out[tuple(idx)] = fn(act[tuple(idx)])
        return out

    return edit


def zero_heads(heads: Sequence[int], head_dim: int = 2) -> EditFn:
    """Zero-ablate heads of a ``hook_z``-shaped activation."""
    return edit_heads(heads, torch.zeros_like, head_dim)


def patch_heads(heads: Sequence[int], source: torch.Tensor, head_dim: int = 2) -> EditFn:
    """Patch chosen heads from ``source`` (same shape as the activation)."""
    heads = list(heads)

    def edit(act: torch.Tensor) -> torch.Tensor:
        out = act.clone()
        idx: list[Any] = [slice(None)] * act.ndim
        idx[head_dim] = heads
        out[tuple(idx)] = source.to(act.device, act.dtype)[tuple(idx)]
        return out

    return edit
