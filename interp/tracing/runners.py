"""Runners used by ``collect``: run one batch and hand each requested activation, reduced
(positions, dtype) on the model's device, to a sink. Plain-module runner (adapters),
bridge-hook runner, nnsight runner.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import torch
from torch import nn

from interp.tracing import adapters
from interp.tracing.adapters import Point, hf_call_kwargs, inputs, is_hf, plain_module
from interp.tracing.hooks import EditFn, StopForward
from interp.tracing.model import Model
from interp.tracing.sinks import MemorySink


def make_runner(
    m: Model, hooks: list[str], reduce: Reducer, edits: dict[str, EditFn] | None = None
) -> Runner:
    """The fastest runner for ``m`` and these hooks (see the module docstring). While an SAE
    is spliced in, only the bridge's hooks see it (the plain tree has no HookPoints), so a
    spliced model always takes the bridge-hook path; so does a collection with ``edits``."""
    if m.backend != "tl":
        return NnsightRunner(m, hooks, reduce, edits)
    if m._splices or edits:
        return BridgeRunner(m, hooks, reduce, edits)
    root = plain_module(m)
    found = None if root is None else adapters.plan(m, root, tuple(hooks))
    if root is None or found is None:
        return BridgeRunner(m, hooks, reduce)
    points, stop = found
    runner = PlainRunner(root, points, stop, int(getattr(m.cfg, "d_head", 0) or 0), reduce)
    if is_hf(root):
        runner.call_kwargs = hf_call_kwargs(root)
    return runner


class Reducer:
    """Position selection and dtype cast for the current batch (items ``i:i+k``)."""

    def __init__(self, positions: Any, dtype: torch.dtype | None, lens: torch.Tensor | None):
        self.positions, self.dtype, self.all_lens = positions, dtype, lens
        self.lens: torch.Tensor | None = None  # the current batch's lengths (set by select)
        self.identity = positions == "all" and dtype is None

    def select(self, i: int, k: int) -> None:
        self.lens = None if self.all_lens is None else self.all_lens[i : i + k]

    def __call__(self, name: str, a: torch.Tensor) -> torch.Tensor:
        if self.identity:
            return a  # the sinks copy it (keeping a reference is free)
        return reduce_activation(a, name, self.positions, self.lens, self.dtype)


class PlainRunner:
    """Captures on plain modules. A module without hooks of its own gets its ``forward``
    wrapped for the duration (cheaper than torch's hook dispatch, which matters at small
    batches); a module that has hooks (a user's edit on a HookPoint) gets plain torch
    hooks registered after them, so the capture sees the edited value."""

    def __init__(
        self,
        root: nn.Module,
        points: dict[str, Point],
        stop: str | None,
        d_head: int,
        reduce: Reducer,
    ):
        self.root, self.points, self.stop, self.d_head, self.reduce = (
            root,
            points,
            stop,
            d_head,
            reduce,
        )
        self.hooks = list(points)
        self.acts: dict[str, Any] = {}
        self.sink: MemorySink | None = None  # set: copy each activation into it at once
        self.flat: set[str] = set()  # head-split names stored flat (see attach)
        self.at = 0  # index of the batch's first item
        self.undo: list[Callable[[], None]] = []
        self.call_kwargs: dict[
            str, Any
        ] = {}  # for the root's forward (a Hugging Face model: use_cache=False)

    def __enter__(self) -> PlainRunner:
        groups: dict[str, tuple[list[str], list[str]]] = {}
        for name, p in self.points.items():
            groups.setdefault(p.path, ([], []))[p.where == "out"].append(name)
        try:
            for path, (ins, outs) in groups.items():
                self._attach(self.root.get_submodule(path), ins, outs)
        except BaseException:
            self.__exit__()
            raise
        return self

    def _attach(self, mod: nn.Module, ins: list[str], outs: list[str]) -> None:
        take_in, take_out = self._capture(ins), self._capture(outs)
        stop_in, stop_out = self.stop in ins, self.stop in outs
        if mod._forward_hooks or mod._forward_pre_hooks:
            if ins:
                self.undo.append(
                    mod.register_forward_pre_hook(
                        lambda _, args, kwargs: take_in(inputs(args, kwargs), stop_in),
                        with_kwargs=True,
                    ).remove
                )
            if outs:
                self.undo.append(
                    mod.register_forward_hook(lambda _, args, out: take_out(out, stop_out)).remove
                )
            return
        had = mod.__dict__.get("forward")
        inner = mod.forward

        def forward(*args: Any, **kwargs: Any) -> Any:
            if ins:
                take_in(inputs(args, kwargs), stop_in)
            out = inner(*args, **kwargs)
            if outs:
                take_out(out, stop_out)
            return out

        mod.forward = forward
        self.undo.append(
            lambda: setattr(mod, "forward", had) if had is not None else delattr(mod, "forward")
        )

    def _capture(self, names: list[str]) -> Callable[[Any, bool], None]:
        points, acts, reduce, d_head = self.points, self.acts, self.reduce, self.d_head

        def take(value: Any, stop: bool) -> None:
            for name in names:
                p = points[name]
                a = value[p.index] if p.index is not None else value
                if p.heads and name not in self.flat:
                    a = a.view(
                        *a.shape[:-1], -1, d_head
                    )  # [batch, pos, head * d_head] -> [batch, pos, head, d_head]
                if p.per_step:
                    acts.setdefault(name, []).append(a)
                else:
                    acts[name] = self._keep(name, reduce(name, a))
            if stop:
                raise StopForward(names[-1])

        return take

    def __exit__(self, *exc: object) -> None:
        while self.undo:
            self.undo.pop()()

    def __call__(self, xb: torch.Tensor) -> dict[str, Any]:
        self.acts.clear()
        try:
            self.root(xb, **self.call_kwargs)
        except StopForward:
            pass
        got = dict(self.acts)
        self.acts.clear()
        for name, p in self.points.items():
            if p.per_step and name in got:  # [batch, ...] x T -> [batch, T, ...]
                got[name] = self._keep(name, self.reduce(name, torch.stack(got[name], dim=1)))
        return got

    def _keep(self, name: str, a: torch.Tensor) -> torch.Tensor:
        return a if self.sink is None else self.sink.put_one(self.at, name, a)

    def attach(self, sink: MemorySink) -> None:
        """Copy into ``sink`` from inside the hooks. Head-split activations kept whole go
        in flat (``[.., head * d_head]``, one op fewer per batch) and are viewed per head
        when the store is made."""
        self.sink = sink
        if self.reduce.identity:
            self.flat = {n for n, p in self.points.items() if p.heads and not p.per_step}
            sink.heads = {n: self.d_head for n in self.flat}


class BridgeRunner:
    """The bridge's own hooks (``Model.hooked``), for names or models no adapter covers."""

    def __init__(
        self, m: Model, hooks: list[str], reduce: Reducer, edits: dict[str, EditFn] | None = None
    ):
        self.m, self.hooks, self.reduce, self.edits = m, hooks, reduce, dict(edits or {})
        self.at = 0  # index of the batch's first item (unused here; collect sets it)
        order = {name: i for i, name in enumerate(m.hook_names)}
        ordered = sorted(hooks, key=order.__getitem__)  # the stop hook is registered last
        self.per_step = [h for h in hooks if m.per_step(h)]
        self.ordered, self.stop = ordered, (ordered[-1] if not self.per_step else None)
        self.acts: dict[str, Any] = {}
        self.ctx: AbstractContextManager[dict[str, Any]] | None = None

    def __enter__(self) -> BridgeRunner:
        self.ctx = self.m.hooked(self.ordered, self.edits, store=self.acts, stop_after=self.stop)
        self.ctx.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.ctx is not None:
            self.ctx.__exit__(*exc)

    def __call__(self, xb: torch.Tensor) -> dict[str, Any]:
        self.acts.clear()
        try:
            self.m.module(xb)
        except StopForward:
            pass
        got = dict(self.acts)
        self.acts.clear()
        for h in self.per_step:  # per-step hook: [batch, ...] x T -> [batch, T, ...]
            if h in got:
                got[h] = torch.stack(got[h], dim=1)
        return {h: self.reduce(h, a) if isinstance(a, torch.Tensor) else a for h, a in got.items()}


class NnsightRunner:
    """Any ``nn.Module``, through :func:`interp.trace` (nnsight)."""

    def __init__(
        self, m: Model, hooks: list[str], reduce: Reducer, edits: dict[str, EditFn] | None = None
    ):
        self.m, self.hooks, self.reduce, self.edits = m, hooks, reduce, dict(edits or {})
        self.at = 0  # index of the batch's first item (unused here; collect sets it)

    def __enter__(self) -> NnsightRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def __call__(self, xb: torch.Tensor) -> dict[str, Any]:
        from interp.tracing.trace import trace

        _, got = trace(self.m, xb, capture=self.hooks, edits=self.edits)
        return {h: self.reduce(h, a) if isinstance(a, torch.Tensor) else a for h, a in got.items()}


Runner = PlainRunner | BridgeRunner | NnsightRunner


def run_batch(m: Model, xb: torch.Tensor, runner: Runner) -> dict[str, torch.Tensor]:
    """One batch through ``runner``: ``{hook: reduced activation [batch, ...]}``."""
    got: dict[str, torch.Tensor] = runner(xb)
    for h in runner.hooks:
        if h not in got:
            raise RuntimeError(f"hook {h!r} did not fire during the forward pass")
        if not isinstance(got[h], torch.Tensor):
            raise TypeError(
                f"hook {h!r} gave a {type(got[h]).__name__}, not a tensor; capture a "
                "tensor-valued hook"
            )
    return got


def pos_dim(name: str) -> int:
    return 2 if name.endswith(("hook_pattern", "hook_attn_scores")) else 1


def reduce_activation(
    a: torch.Tensor, name: str, positions: Any, lens: torch.Tensor | None, dtype: torch.dtype | None
) -> torch.Tensor:
    """Select positions of ``a`` ``[B, T, ...]`` (on its device) and cast to ``dtype``."""
    if positions != "all":
        pd = pos_dim(name)
        if a.ndim <= pd:
            raise ValueError(
                f"{name} has shape {tuple(a.shape)}: no position dim {pd} for "
                f"positions={positions!r}"
            )
        a = a.movedim(pd, 1)
        B, T = a.shape[:2]
        if isinstance(positions, slice):
            a = a[:, positions].movedim(1, pd)
        elif isinstance(positions, int):
            a = a[:, positions]
        elif positions == "last":
            idx = (
                torch.full((B,), T - 1, device=a.device)
                if lens is None
                else (lens - 1).clamp(0, T - 1)
            )
            a = a[torch.arange(B, device=a.device), idx]
        else:  # mean, over valid positions; accumulate low precision in float32
            src = a.float() if a.dtype in (torch.float16, torch.bfloat16) else a
            if lens is None:
                red = src.mean(1)
            else:
                mask = (torch.arange(T, device=a.device)[None] < lens[:, None]).to(src.dtype)
                mask = mask.view(B, T, *([1] * (a.ndim - 2)))
                red = (src * mask).sum(1) / lens.clamp(min=1).to(src.dtype).view(
                    B, *([1] * (a.ndim - 2))
                )
            a = red.to(a.dtype)
    if dtype is not None:
        a = a.to(dtype)
    return a.contiguous()


def positions_key(p: Any) -> str:
    if isinstance(p, str) and p in ("all", "last", "mean"):
        return p
    if isinstance(p, int) and not isinstance(p, bool):
        return str(p)
    if isinstance(p, slice):
        return f"slice({p.start}, {p.stop}, {p.step})"
    raise ValueError(f"positions must be 'all', 'last', 'mean', an int or a slice; got {p!r}")


def is_oom(e: BaseException) -> bool:
    oom = getattr(torch.cuda, "OutOfMemoryError", ())
    return (bool(oom) and isinstance(e, oom)) or (
        isinstance(e, RuntimeError) and "out of memory" in str(e)
    )
