"""Attention internals that a last-row recompute needs: which attention bridge runs where, why a
model's last row cannot be recomputed alone, the key/value caches that share a clean prefix, and
the zoo transformer's attention blocks rerun for one query row.

This is architecture knowledge (TransformerLens's ``AttentionBridge``, transformers' causal-LM
classes and ``DynamicCache``, the native zoo module under the bridge), so it lives in the
tracing layer; :mod:`interp.methods.knockout` asks for it and keeps only the knockout itself
(which entries are blocked and how a pattern row is renormalised).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from interp.tracing.model import Model

# (layer, pattern [B, H, 1, T]) -> the pattern the rerun uses for that layer
PatternEdit = Callable[[int, torch.Tensor], torch.Tensor]


def attention_module(m: Model, layer: int) -> nn.Module:
    """Layer ``layer``'s attention bridge (the module that owns ``hook_pattern``)."""
    return m.module.get_submodule(m.hook("pattern", layer).rsplit(".", 1)[0])


def attention_delegated(m: Model, layer: int) -> bool:
    """True when layer ``layer``'s attention is computed inside the wrapped HF module, so an edit
    of ``hook_pattern`` is discarded (TransformerLens fires that hook after the fact there)."""
    try:
        from transformer_lens.model_bridge.generalized_components.attention import AttentionBridge

        attn = attention_module(m, layer)
    except (ImportError, AttributeError, KeyError):
        return False
    inside = bool(getattr(getattr(attn, "original_component", None), "accepts_pattern_fn", False))
    return (
        isinstance(attn, AttentionBridge)
        and type(attn).forward is AttentionBridge.forward
        and not inside
    )


def _causal_lm_refusal(hf: Any) -> str | None:
    """Why the Hugging Face model ``hf`` is no causal decoder whose last row depends on nothing
    after it (None if it is one)."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    cfg = hf.config
    name, kind = type(hf).__name__, getattr(cfg, "model_type", "?")
    if getattr(cfg, "is_encoder_decoder", False):
        return f"{name} is an encoder-decoder model; the fast path needs a causal decoder"
    if kind in MODEL_FOR_MASKED_LM_MAPPING_NAMES and not getattr(cfg, "is_decoder", False):
        return (
            f"bidirectional attention ({name}, model_type {kind!r}): blocking into the last "
            "position changes every other row too"
        )
    causal = {
        n
        for v in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values()
        for n in ((v,) if isinstance(v, str) else v)
    }
    if name not in causal:
        return (
            f"{name} is not a causal language model (transformers' causal-LM classes), so no "
            "last-row path"
        )
    return None


def hf_last_row_refusal(m: Model, hf: Any) -> str | None:
    """Why the last row of the Hugging Face model ``hf`` under ``m``'s bridge cannot be rerun
    alone against its own key/value cache with the bridge's pattern edit (None if it can)."""
    refusal = _causal_lm_refusal(hf)
    if refusal:
        return refusal
    cfg, name = hf.config, type(hf).__name__
    if getattr(m.cfg, "attention_dir", "causal") != "causal":
        return "bidirectional attention: blocking into the last position changes other rows"
    for cap in ("attn_logit_softcapping", "final_logit_softcapping"):
        if float(getattr(cfg, cap, None) or 0) > 0:
            return (
                f"soft-capped attention or logits ({cap}={getattr(cfg, cap)}) are not "
                "implemented in the fast path"
            )
    if "sliding_attention" in (getattr(cfg, "layer_types", None) or []):
        return "sliding-window layers are not implemented in the fast path"
    if any(m.hook("pattern", layer) not in m.hook_names for layer in range(m.n_layers)):
        return f"{name}: the bridge has no hook_pattern in every layer"
    if any(attention_delegated(m, layer) for layer in range(m.n_layers)):
        return (
            f"{name}: its attention runs inside the Hugging Face module, so the bridge cannot "
            "edit the last row's pattern"
        )
    return None


def native_last_row_refusal(m: Model) -> str | None:
    """Why :func:`rerun_last_row` cannot run on ``m`` (None if it can): it needs a zoo
    transformer under a TransformerLens bridge with standard positions, one key/value head per
    query head, no soft caps and causal attention."""
    native = getattr(m.module, "original_model", None)
    if m.backend != "tl" or native is None or not hasattr(native, "layers"):
        return "neither a zoo transformer nor a Hugging Face model under a TransformerLens bridge"
    cfg = m.cfg
    if (getattr(cfg, "positional_embedding_type", "standard") or "standard") != "standard":
        return "rotary positions are not implemented in the zoo fast path"
    if (getattr(cfg, "n_key_value_heads", None) or cfg.n_heads) != cfg.n_heads:
        return "grouped-query attention is not implemented in the zoo fast path"
    if (
        float(getattr(cfg, "attn_scores_soft_cap", -1) or -1) > 0
        or float(getattr(cfg, "output_logits_soft_cap", -1) or -1) > 0
    ):
        return "soft caps are not implemented in the fast path"
    if getattr(cfg, "attention_dir", "causal") != "causal":
        return "bidirectional attention: blocking into the last position changes other rows"
    return None


def _raw(module: Any) -> Any:
    """The bridge component's wrapped module (or ``module`` itself when it wraps nothing)."""
    return getattr(module, "original_component", module)


def rerun_last_row(
    m: Model,
    resid: torch.Tensor,
    start: int,
    keys: Sequence[torch.Tensor],
    values: Sequence[torch.Tensor],
    edit: PatternEdit,
) -> torch.Tensor:
    """Logits ``[B, V]`` of the last position of a zoo transformer, recomputed from its residual
    ``resid`` ``[B, d_model]`` entering layer ``start``: each later layer's attention uses the
    clean ``keys`` / ``values`` (``L x [B, T, H, d_head]``) of the earlier positions and the
    row's own new key and value, and its pattern ``[B, H, 1, T]`` goes through ``edit(layer,
    pattern)``. Only the native module's own blocks run (check :func:`native_last_row_refusal`)."""
    native: Any = m.module.original_model
    cfg = m.cfg
    H, dh = cfg.n_heads, cfg.d_head
    h, B = resid, resid.shape[0]
    with torch.no_grad():
        for layer in range(start, m.n_layers):
            blk = native.layers[layer]
            attn = blk.attn
            x = _raw(blk.ln1)(h)
            q = _raw(attn.q)(x).view(B, H, dh)
            k_last = _raw(attn.k)(x).view(B, 1, H, dh)
            v_last = _raw(attn.v)(x).view(B, 1, H, dh)
            K = torch.cat([keys[layer][:, :-1], k_last], dim=1)  # [B, T, H, dh]
            V = torch.cat([values[layer][:, :-1], v_last], dim=1)
            scores = torch.einsum("bhd,bthd->bht", q, K) / _raw(attn).scale
            pattern = edit(layer, torch.softmax(scores, dim=-1)[:, :, None, :])  # [B, H, 1, T]
            z = torch.einsum("bht,bthd->bhd", pattern[:, :, 0], V).reshape(B, H * dh)
            h = h + _raw(attn.o)(z)
            if not cfg.attn_only:
                h = h + _raw(blk.mlp)(_raw(blk.ln2)(h))
        logits: torch.Tensor = _raw(native.head)(_raw(native.ln_out)(h))
        return logits


# ---------------------------------------------------------------- Hugging Face key/value caches
def recording_cache() -> Any:
    """A ``DynamicCache`` that stores what each layer gives it but hands back that layer's own
    keys and values: the clean run computes exactly what a run without a cache computes (the
    stored copy is contiguous, and GPT-2's scores would otherwise round differently, ~1e-7)."""
    from transformers import DynamicCache

    class Recording(DynamicCache):
        def update(
            self,
            key_states: torch.Tensor,
            value_states: torch.Tensor,
            layer_idx: int,
            *args: Any,
            **kwargs: Any,
        ) -> tuple[torch.Tensor, torch.Tensor]:
            super().update(key_states, value_states, layer_idx, *args, **kwargs)
            return key_states, value_states

    return Recording()


def cached_prefix(cache: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per layer (keys, values) of all positions but the last that ``cache`` (a filled
    ``DynamicCache``) holds, ``[B, kv_heads, T - 1, d_head]`` views."""
    return [(layer.keys[:, :, :-1], layer.values[:, :, :-1]) for layer in cache.layers]


def _join(prefix: torch.Tensor, new: torch.Tensor, W: int) -> torch.Tensor:
    """``[W*B, h, P+1, dh]``: the clean prefix ``[B, h, P, dh]`` for each of ``W`` windows, then
    each row's new key/value ``[W*B, h, 1, dh]``; one copy (the cat), none for the repeat."""
    B, h, P, dh = prefix.shape
    out = torch.cat(
        [prefix[None].expand(W, B, h, P, dh), new.reshape(W, B, h, 1, dh)], dim=-2
    )  # [W, B, h, P+1, dh]
    return out.view(W * B, h, P + 1, dh)


def shared_prefix_cache(past: list[tuple[torch.Tensor, torch.Tensor]], W: int) -> Any:
    """A ``DynamicCache`` whose layers hold the clean prefix once and hand each of ``W`` windows'
    rows (``W * B`` in all) that prefix plus their own last token; nothing is stored, so the same
    clean cache serves every call. Its length is the prefix's, so positions (and rotary phases)
    of the last token are the model's own."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    # transformers leaves DynamicLayer's __init__ and __init_subclass__ unannotated
    class SharedPrefix(DynamicLayer):  # type: ignore[no-untyped-call]
        def __init__(self, keys: torch.Tensor, values: torch.Tensor):
            super().__init__()  # type: ignore[no-untyped-call]
            self.keys, self.values, self.dtype, self.device = keys, values, keys.dtype, keys.device
            self.prefix = (keys, values)  # the same tensors, typed as never None
            self.is_initialized = True

        def update(
            self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
        ) -> tuple[torch.Tensor, torch.Tensor]:
            keys, values = self.prefix
            return _join(keys, key_states, W), _join(values, value_states, W)

    kv = DynamicCache()
    kv.layers = [SharedPrefix(k, v) for k, v in past]
    return kv
