"""Small GPT-style transformers built natively by TransformerLens 4 (``boot_native``).

A :class:`TransformerSpec` is the whole architecture; ``build_transformer`` turns it into
a ``TransformerBridge`` whose hook names are TransformerLens's
(``blocks.{l}.hook_resid_post``, ``blocks.{l}.attn.hook_z`` ...).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator

# TransformerLens is imported inside build_transformer: a spec is validated on light paths (a
# recipe's config, the builder table) that never build a model.


class TransformerSpec(BaseModel):
    """Architecture of a zoo transformer (decoder-only unless ``attention_dir='bidirectional'``)."""

    model_config = ConfigDict(extra="forbid")

    n_layers: int = 2
    d_model: int = 64
    n_heads: int = 4
    d_head: int | None = None  # default d_model // n_heads
    d_mlp: int | None = None  # default 4 * d_model
    n_ctx: int = 256
    d_vocab: int = 512
    act_fn: str = "gelu"
    normalization_type: Literal["LN", "RMS", "LNPre", "RMSPre"] | None = "LN"
    attn_only: bool = False
    positional_embedding_type: Literal["standard", "rotary"] = "standard"
    attention_dir: Literal["causal", "bidirectional"] = "causal"
    init_seed: int = 0

    @model_validator(mode="after")
    def _defaults(self) -> TransformerSpec:
        if self.d_head is None:
            if self.d_model % self.n_heads:
                raise ValueError(
                    f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}; set d_head"
                )
            self.d_head = self.d_model // self.n_heads
        if self.d_mlp is None:
            self.d_mlp = 4 * self.d_model
        return self


def build_transformer(spec: TransformerSpec | dict, tokenizer: Any = None, device: Any = None):
    """A randomly initialised ``TransformerBridge`` for ``spec`` (seeded by ``init_seed``)."""
    spec = spec if isinstance(spec, TransformerSpec) else TransformerSpec(**spec)
    import transformer_lens.model_bridge.sources.native  # noqa: F401  (attaches boot_native)
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge

    cfg = TransformerBridgeConfig(
        n_layers=spec.n_layers,
        d_model=spec.d_model,
        n_heads=spec.n_heads,
        d_head=spec.d_head,
        d_mlp=spec.d_mlp,
        n_ctx=spec.n_ctx,
        d_vocab=spec.d_vocab,
        d_vocab_out=spec.d_vocab,
        act_fn=spec.act_fn,
        normalization_type=spec.normalization_type,
        attn_only=spec.attn_only,
        positional_embedding_type=spec.positional_embedding_type,
        attention_dir=spec.attention_dir,
        tokenizer_prepends_bos=True,
        seed=spec.init_seed,
    )
    bridge = TransformerBridge.boot_native(cfg, tokenizer=tokenizer, device=device)
    bridge.eval()
    return bridge


def native_module(bridge: Any):
    """The plain ``nn.Module`` under a bridge (holds the weights we save and train)."""
    return getattr(bridge, "original_model", bridge)
