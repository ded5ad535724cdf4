"""Weight sites of a native module: which matrices a transformer block holds, and a
parametrization that multiplies them while a context is open.

A *site* is one maskable weight matrix inside a numbered block (``W_Q``, ``W_K``, ``W_V``,
``W_O``, ``W_in``, ``W_gate``, ``W_out`` and fused ``W_QKV``); embeddings, unembedding, norms
and biases never are. Finding them is architecture knowledge (module names of the zoo
transformer and of Hugging Face models, GPT-2's transposed ``Conv1D``, the bridge's wrapped
``_original_component`` and its unused fused query/key/value weight), so it lives here in the
tracing layer; :mod:`interp.methods.masks` trains and combines masks over these sites.
:func:`masked` multiplies each site's weight through ``torch.nn.utils.parametrize``: the base
weights are never written and every hook of the model (``interp.trace``) sees the edit.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

# Module-name -> canonical matrix name (TransformerLens names). The native zoo transformer
# uses q/k/v/o and fc_in/fc_out; the rest are common Hugging Face names.
MATRIX_ALIASES = {
    "q": "W_Q",
    "q_proj": "W_Q",
    "query": "W_Q",
    "k": "W_K",
    "k_proj": "W_K",
    "key": "W_K",
    "v": "W_V",
    "v_proj": "W_V",
    "value": "W_V",
    "o": "W_O",
    "o_proj": "W_O",
    "out_proj": "W_O",
    "fc_in": "W_in",
    "fc1": "W_in",
    "up_proj": "W_in",
    "c_fc": "W_in",
    "in": "W_in",
    "fc_out": "W_out",
    "fc2": "W_out",
    "down_proj": "W_out",
    "out": "W_out",
    "gate": "W_gate",
    "gate_proj": "W_gate",
    # fused query/key/value (GPT-2 Conv1D c_attn, GPT-NeoX query_key_value): one site, no head
    # axis yet
    "c_attn": "W_QKV",
    "query_key_value": "W_QKV",
    "qkv_proj": "W_QKV",
    "Wqkv": "W_QKV",
    "dense_h_to_4h": "W_in",
    "dense_4h_to_h": "W_out",
}
# Names that mean different matrices under attention and under the MLP (GPT-2 c_proj, NeoX dense).
PARENT_ALIASES = {
    ("attn", "c_proj"): "W_O",
    ("mlp", "c_proj"): "W_out",
    ("attention", "dense"): "W_O",
}
MATRICES = ("W_Q", "W_K", "W_V", "W_QKV", "W_O", "W_in", "W_gate", "W_out")
# nn.Linear weights are [out, in]: the heads of Q/K/V lie along rows, of O along columns.
# GPT-2's Conv1D stores [in, out], so there the axes swap.
HEAD_AXIS = {"W_Q": 0, "W_K": 0, "W_V": 0, "W_O": 1}
_LAYER_RE = re.compile(r"(?:^|\.)(?:layers|blocks|h|layer)\.(\d+)\.")


@dataclass(frozen=True)
class Site:
    """One maskable matrix: ``key`` ("blocks.0.W_in"), its module ``path`` in the native
    model, weight ``shape`` and, for attention matrices, the head axis and ``d_head``."""

    key: str
    layer: int
    matrix: str
    path: str
    shape: tuple[int, int]
    head_axis: int | None = None
    d_head: int | None = None

    @property
    def n_heads(self) -> int | None:
        if self.head_axis is None or not self.d_head:
            return None
        return self.shape[self.head_axis] // self.d_head

    @property
    def size(self) -> int:
        return self.shape[0] * self.shape[1]


def logits_of(out: Any) -> torch.Tensor:
    """The logits a native forward returned: a tensor, a Hugging Face ``ModelOutput`` or a tuple."""
    if isinstance(out, torch.Tensor):
        return out
    if getattr(out, "logits", None) is not None:
        logits: torch.Tensor = out.logits
        return logits
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    raise TypeError(f"cannot find logits in a {type(out).__name__} returned by the model's forward")


def native(model: Any) -> nn.Module:
    """The ``nn.Module`` holding the weights: ``Model.module.original_model`` or the module
    itself."""
    module = getattr(model, "module", model)
    root: nn.Module = getattr(module, "original_model", module)
    return root


def find_sites(
    model: Any, matrices: Sequence[str] | None = None, layers: Sequence[int] | None = None
) -> list[Site]:
    """Maskable matrices of ``model`` (an ``interp.Model``, a bridge or an ``nn.Module``),
    in layer order; keep only ``matrices`` / ``layers`` when given. Any 2-D weight of an
    ``nn.Linear`` inside a numbered block counts; unknown module names keep their path."""
    root = native(model)
    cfg = getattr(getattr(model, "module", model), "cfg", None) or getattr(root, "cfg", None)
    d_head = getattr(cfg, "d_head", None)
    sites = []
    for path, mod in root.named_modules():
        conv1d = (
            type(mod).__name__ == "Conv1D" and getattr(mod, "weight", None) is not None
        )  # GPT-2: [in, out]
        if not (isinstance(mod, nn.Linear) or conv1d):
            continue
        clean = ".".join(p for p in path.split(".") if p != "_original_component")
        hit = _LAYER_RE.search(clean)
        if hit is None:
            continue
        layer = int(hit.group(1))
        parts = clean.split(".")
        leaf, parent = parts[-1], parts[-2] if len(parts) > 1 else ""
        matrix = PARENT_ALIASES.get((parent, leaf)) or MATRIX_ALIASES.get(leaf, clean[hit.end() :])
        if matrices is not None and matrix not in matrices:
            continue
        if layers is not None and layer not in layers:
            continue
        axis = HEAD_AXIS.get(matrix) if d_head else None
        if axis is not None and conv1d:
            axis = 1 - axis
        if axis is not None and mod.weight.shape[axis] % d_head:
            axis = None
        sites.append(
            Site(
                f"blocks.{layer}.{matrix}",
                layer,
                matrix,
                path,
                tuple(mod.weight.shape),
                axis,
                int(d_head) if axis is not None and d_head else None,
            )
        )
    sites = _without_unused_fused_qkv(sites)
    order = {m: i for i, m in enumerate(MATRICES)}
    sites.sort(key=lambda s: (s.layer, order.get(s.matrix, len(order)), s.key))
    keys = [s.key for s in sites]
    if len(set(keys)) != len(keys):
        raise ValueError(f"two maskable matrices share a key: {keys}")
    if not sites:
        raise ValueError("no maskable nn.Linear or Conv1D weights found inside numbered blocks")
    return sites


def _without_unused_fused_qkv(sites: list[Site]) -> list[Site]:
    """Drop a fused query/key/value weight that sits beside separate Q, K and V weights.

    A TransformerLens bridge over a Hugging Face model splits GPT-2's ``c_attn`` and GPT-NeoX's
    ``query_key_value`` into per-head ``q``/``k``/``v`` linears, which the forward uses; the
    fused original stays in the tree as ``qkv`` but computes nothing. Masking it would change
    nothing and would count its weights as kept or removed."""

    def parent(s: Site) -> str:
        return ".".join(p for p in s.path.split(".") if p != "_original_component").rsplit(".", 1)[
            0
        ]

    split = {(s.layer, parent(s)) for s in sites if s.matrix in ("W_Q", "W_K", "W_V")}
    return [
        s
        for s in sites
        if not (s.key.endswith(".qkv") or s.matrix == "W_QKV") or (s.layer, parent(s)) not in split
    ]


def _weight(mod: nn.Module) -> torch.Tensor:
    """``mod.weight`` (torch types a module attribute as ``Tensor | Module``)."""
    weight = mod.weight
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"{type(mod).__name__}.weight is a {type(weight).__name__}, not a tensor")
    return weight


class _MaskParam(nn.Module):
    """Parametrization ``W -> W * mask(key)``; the mask source is a plain callable."""

    def __init__(self, fn: Callable[[], torch.Tensor | None]):
        super().__init__()
        self._fn = fn

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        m = self._fn()
        return weight if m is None else weight * m.to(weight.dtype)


@contextlib.contextmanager
def masked(
    model: Any, sites: Sequence[Site], mask_fn: Callable[[Site], torch.Tensor | None]
) -> Iterator[Any]:
    """While open, every site's weight reads as ``weight * mask_fn(site)`` (``None``: unmasked).
    Base weights are untouched; the parametrizations are removed on exit."""
    root = native(model)
    done = []
    try:
        for site in sites:
            mod = root.get_submodule(site.path)
            shape = tuple(_weight(mod).shape)
            if shape != tuple(site.shape):
                raise ValueError(f"{site.key}: weight shape {shape} != mask shape {site.shape}")
            if parametrize.is_parametrized(mod, "weight"):
                raise RuntimeError(
                    f"{site.key} is already masked: masks do not nest (combine them with & or |)"
                )
            parametrize.register_parametrization(
                mod, "weight", _MaskParam(functools.partial(mask_fn, site)), unsafe=True
            )
            done.append(mod)
        yield model
    finally:
        for mod in done:
            parametrize.remove_parametrizations(mod, "weight", leave_parametrized=False)
