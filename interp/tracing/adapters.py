"""Plain-data adapters: which native module computes each TransformerLens hook name.

``collect`` runs a zoo transformer's native module tree (bridge wrappers peeled off, same
parameters) and reads each requested name off the module listed here. One registration
point (docs/architecture.md, adapters); tests/tracing/test_collect.py checks every entry against the
bridge's own hooks.
"""

from __future__ import annotations

import copy
import functools
import re
import weakref
from typing import NamedTuple

from torch import nn

from interp.tracing.model import Model


class Point(NamedTuple):
    """Where a named activation flows in a plain module tree."""

    path: str  # submodule path, "" for the root
    where: str = "out"  # "out": the module's output; "in": its first positional input
    index: int | None = None  # take this element when the output/input is a tuple
    heads: bool = False  # reshape [batch, pos, head * d_head] -> [batch, pos, head, d_head]
    per_step: bool = False  # fires once per time step: stack the calls along dim 1


# TransformerLens hook name -> native module, per native model class. "{l}" is a layer.
# The one registration point (docs/architecture.md, adapters); tests/tracing/test_collect.py checks
# every entry against the bridge's own hooks on several architectures.
ADAPTERS: dict[str, dict[str, Point]] = {
    "NativeModel": {  # TransformerBridge.boot_native: the zoo transformers
        "hook_embed": Point("tok_embed"),
        "hook_pos_embed": Point("pos"),
        "blocks.{l}.hook_resid_pre": Point("layers.{l}", "in", 0),
        "blocks.{l}.ln1.hook_normalized": Point("layers.{l}.ln1"),
        "blocks.{l}.attn.hook_q": Point("layers.{l}.attn.q", heads=True),
        "blocks.{l}.attn.hook_k": Point("layers.{l}.attn.k", heads=True),
        "blocks.{l}.attn.hook_v": Point("layers.{l}.attn.v", heads=True),
        "blocks.{l}.attn.hook_pattern": Point("layers.{l}.attn", "out", 1),  # [batch, head, query, key]
        "blocks.{l}.attn.hook_z": Point("layers.{l}.attn.o", "in", 0, heads=True),  # [batch, pos, head, d_head]
        "blocks.{l}.hook_attn_out": Point("layers.{l}.attn", "out", 0),
        "blocks.{l}.hook_resid_mid": Point("layers.{l}.ln2", "in", 0),
        "blocks.{l}.ln2.hook_normalized": Point("layers.{l}.ln2"),
        "blocks.{l}.mlp.hook_pre": Point("layers.{l}.mlp.fc_in"),
        "blocks.{l}.mlp.hook_post": Point("layers.{l}.mlp.fc_out", "in", 0),
        "blocks.{l}.hook_mlp_out": Point("layers.{l}.mlp"),
        "blocks.{l}.hook_resid_post": Point("layers.{l}", "out", 0),
        "ln_final.hook_normalized": Point("ln_out"),
        "unembed.hook_out": Point("head"),
    },
    "HookedRNN": {  # interp.models.rnn: the stacked hidden states are the cell's output
        "rnn.hook_h": Point("rnn"),
    },
}


def plain_module(m: Model) -> nn.Module | None:
    """The plain module ``collect`` runs for ``m``: a zoo transformer's native tree with the
    bridge wrappers peeled off (shares every parameter), ``m.module`` for our RNNs, or
    None where only the bridge's own hooks (or nnsight) apply."""
    if m.backend != "tl":
        return None
    native = getattr(m.module, "original_model", None)
    if native is None:
        return m.module
    if type(native).__name__ not in ADAPTERS:
        return None
    # One unwrapped tree per bridge, rebuilt if a block or a block's component was replaced.
    signature = tuple(id(mod) for top in native.children() for mod in (top, *top.children()))
    hit = _PLAIN.get(native)
    if hit is None or hit[0] != signature:
        hit = _PLAIN[native] = (signature, unwrap(native))
    return hit[1]


_PLAIN: "weakref.WeakKeyDictionary[nn.Module, tuple]" = weakref.WeakKeyDictionary()


# ------------------------------------------------------------- hooks and runners
def unwrap(mod: nn.Module) -> nn.Module:
    """A copy of ``mod``'s tree with every bridge component replaced by its original.

    Modules are shallow copies (parameters and buffers shared, hook tables fresh);
    leaves without bridge wrappers inside are shared as they are.
    """
    inner = mod._modules.get("_original_component")
    mod = inner if inner is not None else mod
    kids = {k: (unwrap(c) if c is not None else None) for k, c in mod._modules.items()}
    if all(kids[k] is c for k, c in mod._modules.items()) and "_original_component" not in mod._modules:
        return mod
    new = copy.copy(mod)
    new.__dict__ = dict(mod.__dict__)
    for key, value in mod.__dict__.items():
        if key.startswith(("_forward", "_backward")) and isinstance(value, dict):
            new.__dict__[key] = type(value)()
    new._modules = kids
    return new


def adapter_point(table: dict[str, Point], name: str) -> Point | None:
    for regex, point in _compiled(table):
        hit = regex.match(name)
        if hit:
            return point._replace(path=point.path.replace("{l}", hit.group(1))) if hit.groups() else point
    return None


@functools.lru_cache(maxsize=None)
def _compiled_patterns(patterns: tuple[str, ...]) -> tuple[re.Pattern, ...]:
    return tuple(re.compile("^" + re.escape(p).replace(re.escape("{l}"), r"(\d+)") + "$") for p in patterns)


def _compiled(table: dict[str, Point]) -> list[tuple[re.Pattern, Point]]:
    return list(zip(_compiled_patterns(tuple(table)), table.values()))


def plan(m: Model, root: nn.Module, hooks: tuple[str, ...]) -> tuple[dict[str, Point], str | None] | None:
    """``({hook: Point}, stop hook)`` on ``root``, or None if a hook has no plain route (cached)."""
    cache = _PLANS.setdefault(root, {})
    if hooks in cache:
        return cache[hooks]
    table = ADAPTERS.get(type(getattr(m.module, "original_model", m.module)).__name__, {})
    bridged = root is not m.module
    points: dict[str, Point] | None = {}
    for h in hooks:
        p = adapter_point(table, h)
        if p is None and not bridged:  # a HookedRootModule: hook names are module paths
            hp = m.module.hook_dict.get(h)
            p = Point(h, per_step=bool(getattr(hp, "per_step", False))) if hp is not None else None
        if p is None or not _has_module(root, p.path):
            points = None
            break
        points[h] = p
    plan = None
    if points is not None:
        order = {name: i for i, name in enumerate(m.hook_names)}
        last = max(hooks, key=order.__getitem__)
        plan = (points, None if points[last].per_step else last)
    cache[hooks] = plan
    return plan


_PLANS: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()


def _has_module(root: nn.Module, path: str) -> bool:
    try:
        root.get_submodule(path)
        return True
    except AttributeError:
        return False
