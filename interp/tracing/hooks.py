"""The hooks a traced forward runs: an edit checked against the activation it replaces, a
capture kept (per time step or once), and an early stop after the last needed hook.

Both backends share :func:`checked_edit` (TransformerLens hooks through :func:`make_hook`,
nnsight in :func:`interp.trace`); :class:`StopForward` ends a forward early and ``trace`` and
``collect`` catch it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

EditFn = Callable[..., torch.Tensor]  # fn(act) -> act; generate also passes positions=
HookFn = Callable[[torch.Tensor, Any], torch.Tensor]  # TransformerLens: hook(act, hook) -> act


class StopForward(Exception):
    """Raised inside a hook to end a forward pass early (after the last needed layer)."""


def checked_edit(name: str, act: Any, new: Any) -> Any:
    """What an edit of ``act`` at hook ``name`` hands on: ``new`` when it is a tensor of
    ``act``'s shape and dtype, ``act`` when the edit returned None (keep the activation).
    Anything else is an error that names the hook and what was expected. Both backends call
    this (TransformerLens hooks through :func:`make_hook`, nnsight in :func:`interp.trace`). A
    non-tensor activation (a module's tuple output under nnsight) is the edit's to rebuild."""
    if new is None:
        return act
    if not isinstance(act, torch.Tensor):
        return new
    if not isinstance(new, torch.Tensor):
        raise TypeError(
            f"edit for {name!r} returned {type(new).__name__}; an edit returns a "
            "tensor shaped like its input (or None to keep the activation)"
        )
    if new.dtype != act.dtype:
        got, want = (str(d).replace("torch.", "") for d in (new.dtype, act.dtype))
        raise TypeError(
            f"edit for {name!r} returned dtype {got}, expected {want} (cast with .to(act.dtype))"
        )
    if new.shape != act.shape:
        raise ValueError(
            f"edit for {name!r} returned shape {tuple(new.shape)}, expected {tuple(act.shape)}"
        )
    return new


def make_hook(
    name: str,
    edit: EditFn | None,
    keep: bool,
    store: dict[str, Any],
    per_step: bool,
    stop: bool,
    detach: bool,
) -> HookFn:
    """A TransformerLens-style hook ``hook(act, hook) -> act`` that applies ``edit`` (checked:
    a tensor of the input's shape and dtype, or None to keep it), keeps the result in ``store``
    when ``keep``, and raises :class:`StopForward` when ``stop``."""

    def hook(act: torch.Tensor, hook: Any) -> torch.Tensor:
        if edit is not None:
            act = checked_edit(name, act, edit(act))
        if keep:
            value = act.detach() if detach else act
            if per_step:
                store.setdefault(name, []).append(value)
            else:
                store[name] = value
        if stop:
            raise StopForward(name)
        return act

    return hook
