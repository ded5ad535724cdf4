"""Which plain module computes each TransformerLens hook name.

``collect`` runs a model's own module tree with the bridge wrappers peeled off (same
parameters) and reads each requested name off the module that computes it:

- zoo transformers (``NativeModel``) and our RNNs: the plain-data table :data:`ADAPTERS`
  (one registration point, docs/architecture.md; tests/tracing/test_collect.py checks every
  entry against the bridge's own hooks);
- Hugging Face models: no table per architecture. :func:`hf_routes` reads the map off the
  bridge itself (each bridge component's ``hook_in``/``hook_out`` sits where the component
  sits in the Hugging Face module tree), then checks every route once, on a probe batch,
  against the bridge's own hooks; a route whose value differs is dropped, and a name
  without a checked route takes the bridge-hook path.
"""

from __future__ import annotations

import copy
import functools
import logging
import re
import weakref
from typing import Any, NamedTuple

import torch
from torch import nn

from interp.tracing.model import Model


class Point(NamedTuple):
    """Where a named activation flows in a plain module tree."""

    path: str  # submodule path, "" for the root
    where: str = "out"  # "out": the module's output; "in": its first positional input
    # this element of a tuple output/input (the field shadows tuple.index, hence the ignore)
    index: int | None = None  # type: ignore[assignment]
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
        "blocks.{l}.attn.hook_pattern": Point(
            "layers.{l}.attn", "out", 1
        ),  # [batch, head, query, key]
        "blocks.{l}.attn.hook_z": Point(
            "layers.{l}.attn.o", "in", 0, heads=True
        ),  # [batch, pos, head, d_head]
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


log = logging.getLogger("interp.tracing")


def plain_module(m: Model) -> nn.Module | None:
    """The plain module ``collect`` runs for ``m``: a zoo transformer's native tree or a
    Hugging Face model's own tree, with the bridge wrappers peeled off (shares every
    parameter); ``m.module`` for our RNNs; None where only the bridge's own hooks (or
    nnsight) apply."""
    if m.backend != "tl":
        return None
    native = getattr(m.module, "original_model", None)
    if native is None:
        return m.module
    if type(native).__name__ not in ADAPTERS and not is_hf(native):
        return None
    # One unwrapped tree per bridge, rebuilt if a block or a block's component was replaced.
    signature = (
        tuple(id(mod) for mod in native.modules())
        if is_hf(native)
        else tuple(id(mod) for top in native.children() for mod in (top, *top.children()))
    )
    hit = _PLAIN.get(native)
    if hit is None or hit[0] != signature:
        hit = _PLAIN[native] = (signature, unwrap(native))
    return hit[1]


# native module -> (the ids of the modules it was built from, its unwrapped tree)
_PLAIN: weakref.WeakKeyDictionary[nn.Module, tuple[tuple[int, ...], nn.Module]] = (
    weakref.WeakKeyDictionary()
)


# ------------------------------------------------------------- hooks and runners
def unwrap(mod: nn.Module) -> nn.Module:
    """A copy of ``mod``'s tree with every bridge component replaced by its original.

    Modules are shallow copies (parameters and buffers shared, hook tables fresh);
    leaves without bridge wrappers inside are shared as they are.
    """
    inner = mod._modules.get("_original_component")
    mod = inner if inner is not None else mod
    kids = {k: (unwrap(c) if c is not None else None) for k, c in mod._modules.items()}
    if (
        all(kids[k] is c for k, c in mod._modules.items())
        and "_original_component" not in mod._modules
    ):
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
            return (
                point._replace(path=point.path.replace("{l}", hit.group(1)))
                if hit.groups()
                else point
            )
    return None


@functools.cache
def _compiled_patterns(patterns: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
    return tuple(
        re.compile("^" + re.escape(p).replace(re.escape("{l}"), r"(\d+)") + "$") for p in patterns
    )


def _compiled(table: dict[str, Point]) -> list[tuple[re.Pattern[str], Point]]:
    return list(zip(_compiled_patterns(tuple(table)), table.values(), strict=True))


def plan(
    m: Model, root: nn.Module, hooks: tuple[str, ...]
) -> tuple[dict[str, Point], str | None] | None:
    """``({hook: Point}, stop hook)`` on ``root``, or None if a hook has no plain route (cached)."""
    cache = _PLANS.setdefault(root, {})
    if hooks in cache:
        return cache[hooks]
    native = getattr(m.module, "original_model", m.module)
    hf = hf_routes(m, root) if is_hf(native) else None
    table = ADAPTERS.get(type(native).__name__, {})
    bridged = root is not m.module
    module: Any = m.module  # a HookedRootModule or a bridge: duck-typed
    points: dict[str, Point] = {}
    routed = True
    for h in hooks:
        p = hf.get(h) if hf is not None else adapter_point(table, h)
        if p is None and not bridged:  # a HookedRootModule: hook names are module paths
            hp = module.hook_dict.get(h)
            p = Point(h, per_step=bool(getattr(hp, "per_step", False))) if hp is not None else None
        if p is None or not _has_module(root, p.path):
            routed = False
            break
        points[h] = p
    plan = None
    if routed:
        # the stop hook is the one that fires last: in the probe's firing order (HF), else in
        # hook order
        order = {name: i for i, name in enumerate(hf if hf is not None else m.hook_names)}
        last = max(hooks, key=order.__getitem__)
        plan = (points, None if points[last].per_step else last)
    cache[hooks] = plan
    return plan


Plan = tuple[dict[str, Point], str | None]
# plain root -> {hooks: their plan, or None where a hook has no plain route}
_PLANS: weakref.WeakKeyDictionary[nn.Module, dict[tuple[str, ...], Plan | None]] = (
    weakref.WeakKeyDictionary()
)


def _has_module(root: nn.Module, path: str) -> bool:
    try:
        root.get_submodule(path)
        return True
    except AttributeError:
        return False


# ------------------------------------------------------------- Hugging Face models
def is_hf(module: Any) -> bool:
    try:
        from transformers import PreTrainedModel
    except ImportError:  # pragma: no cover - transformers is a dependency
        return False
    return isinstance(module, PreTrainedModel)


def inputs(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """A module's positional inputs; if it was called by keyword only (Hugging Face layers
    often are), its ``hidden_states`` (else its first keyword argument) as element 0."""
    if args or not kwargs:
        return args
    return (kwargs["hidden_states"] if "hidden_states" in kwargs else next(iter(kwargs.values())),)


def hf_call_kwargs(root: nn.Module) -> dict[str, Any]:
    """Keyword arguments for a plain forward of a Hugging Face model: no key/value cache
    (collect reads activations; building a cache is work the bridge's forward skips too)."""
    import inspect

    try:
        params = inspect.signature(root.forward).parameters
    except (TypeError, ValueError):
        return {}
    return {"use_cache": False} if "use_cache" in params else {}


def hf_routes(m: Model, root: nn.Module) -> dict[str, Point]:
    """``{hook: Point}`` on ``root`` (the unwrapped Hugging Face tree) for every hook name
    with a checked plain route, in the order they fire. Cached per bridge; rebuilt if a
    module of the tree was replaced.

    Candidates come from the bridge: a component's ``hook_in`` is the first input of the
    Hugging Face module it wraps, its ``hook_out`` that module's output (aliases such as
    ``hook_resid_post`` share the HookPoint, so they share the route). Each candidate is then
    run once on a probe batch beside the bridge's own hooks; it is kept only if its value,
    taken whole or as element 0 of a tuple, optionally split per head, equals the bridge's
    to 1e-5. Names computed inside a bridge component (``hook_pattern``, a fused QKV's
    ``hook_q``, ...) have no plain module and keep the bridge path.
    """
    bridge: Any = m.module
    signature = tuple(id(mod) for mod in bridge.original_model.modules())
    hit = _HF_ROUTES.get(bridge)
    if hit is not None and hit[0] == signature and hit[1] is root:
        return hit[2]
    try:
        routes = _check_routes(m, root, _hf_candidates(m, root))
    except Exception as e:  # noqa: BLE001 - a model the probe cannot run (say, one that needs pixels)
        log.warning(
            "%s: no plain routes (the probe forward failed: %s: %s); collect uses the bridge's "
            "hooks",
            m.model_id,
            type(e).__name__,
            str(e)[:200],
        )
        routes = {}
    _HF_ROUTES[bridge] = (signature, root, routes)
    log.debug(
        "%s: %d of %d hook names have a checked plain route",
        m.model_id,
        len(routes),
        len(m.hook_names),
    )
    return routes


# bridge -> (ids of its Hugging Face modules, the plain root, {hook: checked route})
_HF_ROUTES: weakref.WeakKeyDictionary[
    nn.Module, tuple[tuple[int, ...], nn.Module, dict[str, Point]]
] = weakref.WeakKeyDictionary()


def _hf_candidates(m: Model, root: nn.Module) -> dict[str, Point]:
    """Hook name -> (module path in ``root``, "in"/"out"), read off where each bridge
    component sits in the Hugging Face tree: where its wrapped module sits in ``root`` (a
    leaf, shared by both trees), else its own path less the ``._original_component``
    segments that :func:`unwrap` removes."""
    bridge: Any = m.module
    owner: dict[int, tuple[str, str]] = {}
    in_root = {id(mod): path for path, mod in root.named_modules(remove_duplicate=False)}
    for path, mod in bridge.original_model.named_modules(remove_duplicate=False):
        inner = mod._modules.get("_original_component")
        if (
            inner is not None and id(inner) in in_root
        ):  # a wrapped leaf (Linear, Conv1D, ...): shared as it is
            plain = in_root[id(inner)]
        else:
            plain = re.sub(r"(^|\.)_original_component(?=\.|$)", "", path).strip(".")
        if not _has_module(root, plain):
            continue
        for where in ("in", "out"):
            hp = mod._modules.get(f"hook_{where}")
            if hp is not None:
                owner.setdefault(id(hp), (plain, where))
    points = bridge.hook_dict
    found = {}
    for name in m.hook_names:
        o = owner.get(id(points.get(name)))
        if o is not None:
            found[name] = Point(*o)
    return found


def _check_routes(m: Model, root: nn.Module, cands: dict[str, Point]) -> dict[str, Point]:
    """The candidates whose plain value equals the bridge's on a probe batch, in firing order."""
    if not cands:
        return {}
    n_ctx = int(getattr(m.cfg, "n_ctx", 0) or 0) or 8
    vocab = int(m.d_vocab or getattr(m.cfg, "d_vocab", 2) or 2)
    x = torch.randint(0, vocab, (2, min(6, n_ctx)), generator=torch.Generator().manual_seed(0)).to(
        m.device
    )
    want: dict[str, Any] = {}
    with torch.no_grad():
        with m.hooked(list(cands), store=want):
            m.module(x)
        got: dict[tuple[str, str], Any] = {}
        fired: list[tuple[str, str]] = []
        handles = []

        def keep(key: tuple[str, str], value: Any) -> None:
            if key not in got:
                got[key] = value
                fired.append(key)

        for path in {p.path for p in cands.values()}:
            mod = root.get_submodule(path)
            handles.append(
                mod.register_forward_pre_hook(
                    lambda _, a, k, path=path: keep((path, "in"), inputs(a, k)), with_kwargs=True
                )
            )
            handles.append(
                mod.register_forward_hook(lambda _, a, out, path=path: keep((path, "out"), out))
            )
        try:
            root(x, **hf_call_kwargs(root))
        finally:
            for h in handles:
                h.remove()
    d_head = int(getattr(m.cfg, "d_head", 0) or 0)
    checked = {}
    for name, p in cands.items():
        route = _match(p, got.get((p.path, p.where)), want.get(name), d_head, len(x))
        if route is not None:
            checked[name] = route
    rank = {key: i for i, key in enumerate(fired)}
    return dict(sorted(checked.items(), key=lambda kv: rank[(kv[1].path, kv[1].where)]))


def _match(p: Point, value: Any, want: Any, d_head: int, batch: int) -> Point | None:
    """``p`` with the tuple index and head split that make ``value`` equal ``want``, or None.
    Only per-item activations (leading dim = the batch) are routed: collect stores ``[N, ...]``."""
    if not isinstance(want, torch.Tensor) or want.ndim < 2 or want.shape[0] != batch:
        return None
    options: list[tuple[int | None, Any]] = [(None, value)]
    if isinstance(value, (tuple, list)):
        options = [(0, value[0])] if value else []
    for index, v in options:
        if not isinstance(v, torch.Tensor) or v.dtype != want.dtype:
            continue
        heads = False
        if v.shape != want.shape:
            split = (
                d_head
                and want.ndim == v.ndim + 1
                and want.shape[-1] == d_head
                and tuple(want.shape[:-2]) == tuple(v.shape[:-1])
                and want.shape[-2] * d_head == v.shape[-1]
            )
            if not split:
                continue
            v, heads = v.view(*v.shape[:-1], -1, d_head), True
        scale = max(1.0, float(want.abs().max())) if want.numel() else 1.0
        if float((v - want).abs().max()) <= 1e-5 * scale:
            return p._replace(index=index, heads=heads)
    return None
