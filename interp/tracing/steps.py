"""How :func:`interp.generate` runs one step of a model: its key/value cache.

- Hugging Face models under a TransformerLens bridge (:class:`HFStep`): the model's own
  ``DynamicCache``, with explicit ``attention_mask`` and ``position_ids``, through the HF module
  tree whose components the bridge has replaced in place (so every bridge hook fires).
  :func:`hf_cache_kwargs` hands the cache to the bridge's attention whatever HF calls it; the
  knockout fast path (:mod:`interp.methods.knockout`) shares it.
- Zoo transformers (``boot_native``): TransformerLens's ``NativeAttention`` keeps no cache, so
  :class:`NativeKV` stands in for each layer's attention forward while generating.
- Anything else (:class:`TraceStep`): no cache, one :func:`interp.trace` of the whole sequence.

Each step object has ``kind``, ``context()`` (entered around the loop) and
``__call__(ids, mask, pos) -> logits [batch, vocab]`` of the last position.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

import torch
from torch import nn

from interp.tracing.hooks import EditFn
from interp.tracing.model import Model


# ---------------------------------------------------------------- Hugging Face plumbing
def hf_model(m: Model) -> Any:
    """The Hugging Face model under ``m``'s bridge, or None (zoo models, RNNs, nnsight)."""
    native = getattr(m.module, "original_model", None)
    try:
        from transformers import PreTrainedModel
    except ImportError:  # pragma: no cover - transformers is a dependency
        return None
    return native if isinstance(native, PreTrainedModel) else None


def cache_arg(hf: Any) -> str:
    """The name ``hf.forward`` takes its key/value cache by (``cache`` in newer transformers,
    where ``past_key_values`` is deprecated on some models)."""
    return "cache" if "cache" in inspect.signature(hf.forward).parameters else "past_key_values"


def attention_bridges(m: Model) -> list[nn.Module]:
    """Each layer's attention bridge (the module that owns ``hook_pattern``)."""
    return [
        m.module.get_submodule(m.hook("pattern", layer).rsplit(".", 1)[0])
        for layer in range(m.n_layers)
    ]


@contextmanager
def hf_cache_kwargs(m: Model) -> Iterator[None]:
    """While active, each attention bridge sees the key/value cache whatever HF calls it: the
    bridge reads ``past_key_values`` or ``layer_past``, but GPT-2 and Llama blocks in
    transformers 5 pass it as ``cache``, which the bridge would ignore (a new token would then
    attend to itself alone)."""

    def pre(
        module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        if (
            kwargs.get("past_key_values") is None
            and kwargs.get("layer_past") is None
            and kwargs.get("cache") is not None
        ):
            kwargs = dict(kwargs)
            kwargs["past_key_values"] = kwargs["cache"]
        return args, kwargs

    handles = [a.register_forward_pre_hook(pre, with_kwargs=True) for a in attention_bridges(m)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


# ---------------------------------------------------------------- steppers
class HFStep:
    """One forward of a Hugging Face model with its own ``DynamicCache``."""

    kind = "hf"

    def __init__(self, m: Model, use_cache: bool):
        from transformers import DynamicCache

        self.m, self.hf, self.use_cache = m, hf_model(m), use_cache
        self.kv = DynamicCache() if use_cache else None
        params = inspect.signature(self.hf.forward).parameters
        self.keep = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
        self.cache_name = cache_arg(self.hf)

    def context(self) -> Any:
        return hf_cache_kwargs(self.m)

    def __call__(self, ids: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        kw = dict(input_ids=ids, attention_mask=mask, position_ids=pos, **self.keep)
        if self.use_cache:
            kw.update({self.cache_name: self.kv, "use_cache": True})
        else:
            kw["use_cache"] = False
        logits: torch.Tensor = self.hf(**kw).logits[:, -1]
        return logits


class NativeKV:
    """A key/value cache for zoo transformers: while :meth:`active`, each layer's
    ``NativeAttention`` runs :meth:`_attend`, its own computation (the module's q/k/v/o
    projections, rotary, grouped heads, soft cap and ``pattern_fn``, the bridge's pattern
    hook) with the keys and values of earlier calls prepended and a mask built from the full
    ``[batch, keys]`` attention mask."""

    def __init__(self, m: Model):
        native: Any = m.module.original_model
        self.attns = [blk.attn.original_component for blk in native.layers]
        self.keys: list[torch.Tensor | None] = [None] * len(self.attns)
        self.values: list[torch.Tensor | None] = [None] * len(self.attns)

    @contextmanager
    def active(self) -> Iterator[None]:
        for i, a in enumerate(self.attns):
            a.forward = lambda *args, _a=a, _i=i, **kw: self._attend(_a, _i, *args, **kw)
        try:
            yield
        finally:
            for a in self.attns:
                del a.forward

    def _attend(
        self,
        a: Any,
        i: int,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        pattern_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        from transformer_lens.utilities.activation_functions import apply_softcap

        B, S, _ = hidden_states.shape
        q = a.q(hidden_states).view(B, S, a.n_heads, a.d_head).transpose(1, 2)
        k = a.k(hidden_states).view(B, S, a.n_kv_heads, a.d_head).transpose(1, 2)
        v = a.v(hidden_states).view(B, S, a.n_kv_heads, a.d_head).transpose(1, 2)
        if a.rotary is not None:
            q, k = a.rotary.apply_rope(q, k, position_ids=position_ids)
        prev_k, prev_v = self.keys[i], self.values[i]
        if prev_k is not None and prev_v is not None:
            k, v = torch.cat([prev_k, k], 2), torch.cat([prev_v, v], 2)
        self.keys[i], self.values[i] = k, v
        if a.kv_repeats > 1:
            k, v = (
                k.repeat_interleave(a.kv_repeats, dim=1),
                v.repeat_interleave(a.kv_repeats, dim=1),
            )
        scores = apply_softcap(
            torch.matmul(q, k.transpose(-2, -1)) / a.scale, a.attn_scores_soft_cap
        )
        T = k.shape[2]
        kpos = torch.arange(T, device=q.device)
        block = torch.zeros(S, T, dtype=torch.bool, device=q.device)
        if a.causal:
            block = kpos[None, :] > (T - S + torch.arange(S, device=q.device))[:, None]
        block = block[None, None]
        if attention_mask is not None:
            block = block | ~attention_mask[:, None, None, -T:].bool()
        scores = scores.masked_fill(block, float("-inf"))
        pattern = torch.softmax(scores, dim=-1).masked_fill(block, 0.0)
        if pattern_fn is not None:
            pattern = pattern_fn(pattern)
        out = torch.matmul(pattern, v).transpose(1, 2).contiguous().view(B, S, -1)
        return a.o(out), pattern


class NativeStep:
    """One forward of a zoo transformer's native module, with :class:`NativeKV` or none."""

    def __init__(self, m: Model, use_cache: bool):
        self.native: Any = m.module.original_model
        self.kv = NativeKV(m) if use_cache else None
        self.kind = "native" if use_cache else "none"

    def context(self) -> Any:
        return self.kv.active() if self.kv is not None else ExitStack()

    def __call__(self, ids: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.native(input_ids=ids, attention_mask=mask, position_ids=pos)
        return logits[:, -1]


class TraceStep:
    """Any model, no cache: one :func:`interp.trace` of the whole sequence per step (the
    module takes no attention mask, so every row of a batch has the same length)."""

    kind = "none"

    def __init__(self, m: Model, capture: Sequence[str], edits: dict[str, EditFn]):
        self.m, self.capture, self.edits = m, list(capture), edits
        self.acts: dict[str, torch.Tensor] = {}

    def context(self) -> Any:
        return ExitStack()

    def __call__(self, ids: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        from interp.tracing.trace import trace

        out, self.acts = trace(self.m, ids, capture=self.capture, edits=self.edits)
        out = getattr(out, "logits", out)
        if not isinstance(out, torch.Tensor) or out.ndim != 3:
            raise TypeError(
                f"generate needs logits [batch, pos, vocab] from {self.m.model_id}; its forward "
                f"returned {type(out).__name__}"
            )
        return out[:, -1]


def cache_kind(m: Model) -> str:
    """How :func:`generate` steps ``m``: ``"hf"``, ``"native"`` (key/value caches) or ``"none"``."""
    if m.backend == "tl" and m.kind == "transformer" and hf_model(m) is not None:
        return "hf"
    native: Any = getattr(m.module, "original_model", None)
    if (
        m.backend == "tl"
        and m.kind == "transformer"
        and hasattr(native, "layers")
        and all(hasattr(getattr(b, "attn", None), "original_component") for b in native.layers)
    ):
        return "native"
    return "none"
