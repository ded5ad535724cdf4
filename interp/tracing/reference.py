"""The model's own forward beside the traced one, and which route ``collect`` takes.

``interp check`` compares a TransformerLens bridge with the module it wraps and reports how
``collect`` will read each hook. Both questions are about the tracing layer's internals (the
adapter table, the plain module with the bridge wrappers peeled off), so the answers live here
and analyses ask for them instead of importing :mod:`interp.tracing.adapters`:

    ref, source = reference_module(m)             # "hf" (transformers tree) or "native" (zoo)
    out = native_forward(m, ref, ids)             # {"logits", "hidden"} at the adapters' modules
    collect_path(m, m.resid_names())              # "plain modules" or "bridge hooks"
    plain_routes(m)                               # {"n_routed", "unrouted_kinds"}
"""

from __future__ import annotations

import functools
import re
from typing import Any

import torch
from torch import nn

from interp.tracing import adapters
from interp.tracing.model import Model


def reference_module(m: Model) -> tuple[torch.nn.Module, str]:
    """``(module, source)``: the model's own forward, sharing the bridge's parameters.
    ``source`` is ``"hf"`` (a transformers model, bridge wrappers peeled off) or ``"native"``
    (a zoo model's plain native module)."""
    from transformers import PreTrainedModel

    original = getattr(m.module, "original_model", None)
    # the bridge wrappers peeled off, built once per bridge (collect runs the same tree)
    plain = adapters.plain_module(m)
    if isinstance(original, PreTrainedModel):
        # the bridge swaps its components into the HF tree; the original HF modules sit under them
        return (plain if plain is not None else adapters.unwrap(original)), "hf"
    if original is not None and plain is not None:
        return plain, "native"
    what = type(original if original is not None else m.module).__name__
    raise ValueError(
        f"{m.model_id}: no plain module to compare the bridge with ({what} has no "
        "adapter and is not a transformers model)"
    )


def native_forward(m: Model, ref: torch.nn.Module, ids: torch.Tensor) -> dict[str, Any]:
    """Run the plain native module with forward hooks at the adapter table's residual modules."""
    names = m.resid_names()
    found = adapters.plan(m, ref, tuple(names))
    if found is None:
        raise ValueError(f"{m.model_id}: the adapter table has no plain route for {names}")
    points, _ = found
    store: dict[str, torch.Tensor] = {}

    def grab(name: str, p: adapters.Point, mod: nn.Module, args: Any, out: Any) -> None:
        value = args if p.where == "in" else out
        store[name] = value[p.index] if p.index is not None else value

    handles = [
        ref.get_submodule(p.path).register_forward_hook(functools.partial(grab, name, p))
        for name, p in points.items()
    ]
    try:
        logits = ref(ids)
    finally:
        for h in handles:
            h.remove()
    return {"logits": logits, "hidden": [store[n] for n in names]}


def collect_path(m: Model, hooks: list[str]) -> str:
    """Which path ``collect`` takes for these hooks: plain modules or the bridge's hooks."""
    root = adapters.plain_module(m)
    if root is not None and adapters.plan(m, root, tuple(hooks)) is not None:
        return "plain modules"
    return "bridge hooks"


def plain_routes(m: Model) -> dict[str, Any]:
    """How many hook names ``collect`` reads off plain modules (the fast path), and the hook
    kinds (names less their ``blocks.<l>.`` prefix) that only the bridge's hooks compute."""
    root = adapters.plain_module(m)
    routed = (
        []
        if root is None
        else [n for n in m.hook_names if adapters.plan(m, root, (n,)) is not None]
    )
    kinds = sorted({re.sub(r"^blocks\.\d+\.", "", n) for n in set(m.hook_names) - set(routed)})
    return {"n_routed": len(routed), "unrouted_kinds": kinds}
