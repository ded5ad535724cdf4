"""A tiny LLaVA-style vision-language model on top of a zoo ``TransformerBridge``.

Layout (as in LLaVA): ``[BOS] [64 image tokens] [question tokens]``. Each image token is a
4x4x3 pixel patch, embedded linearly and mapped into the decoder's residual width by a
2-layer MLP projector (LLaVA-1.5's projector), optionally followed by a LayerNorm that keeps
image embeddings near the scale of text embeddings (``VLMSpec.image_norm_gain``). The decoder
is an ordinary zoo transformer (:func:`interp.models.transformer.build_transformer`), so every
TransformerLens hook name works unchanged (``hook_embed``, ``blocks.{l}.attn.hook_pattern``, ...).

How the image gets in: the token ids carry an ``<image>`` placeholder at each image
position; while the bridge runs on a ``{"tokens", "pixels"}`` batch, a forward hook on the
native token embedding replaces the placeholder embeddings by the projected patches, so
``hook_embed`` already shows the image embeddings and everything downstream is the real
multimodal forward. A plain token tensor runs the text-only decoder (the placeholder's own
embedding stands in for the image).

    m = interp.load_model("zoo:vlm-tiny")
    batch = encode(m.tokenizer, samples)                 # interp.data.crossmodal.encode
    logits = m({"tokens": batch["tokens"], "pixels": batch["pixels"]})
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from interp.models.transformer import TransformerSpec, build_transformer
from interp.tracing.model import Model


class VLMSpec(BaseModel):
    """Architecture: a decoder spec plus the patch embedding and projector sizes."""

    model_config = ConfigDict(extra="forbid")

    decoder: TransformerSpec
    patch_dim: int = 48  # 4 x 4 x 3
    d_vision: int = 64
    image_token_id: int = 5
    n_image_tokens: int = 64
    # If set, the projector ends in a LayerNorm whose gain starts at this value, so image
    # embeddings stay near the scale of text embeddings. Without it the projected patches grew
    # to ~20x the norm of the decoder's position embeddings in training (vlm-tiny: 24 vs 1.2),
    # and where a patch sits, the only cue to an object's location, was drowned out.
    image_norm_gain: float | None = None


class PatchProjector(nn.Module):
    """Linear patch embedding followed by LLaVA-1.5's 2-layer MLP projector."""

    def __init__(
        self,
        patch_dim: int,
        d_vision: int,
        d_model: int,
        n_patches: int,
        norm_gain: float | None = None,
    ):
        super().__init__()
        self.patch_embed = nn.Linear(patch_dim, d_vision)
        self.patch_pos = nn.Parameter(torch.zeros(n_patches, d_vision))
        self.proj_in = nn.Linear(d_vision, d_model)
        self.proj_out = nn.Linear(d_model, d_model)
        self.out_norm = None
        if norm_gain is not None:
            self.out_norm = nn.LayerNorm(d_model)
            with torch.no_grad():
                self.out_norm.weight.fill_(norm_gain)

    def forward(
        self, patches: torch.Tensor
    ) -> torch.Tensor:  # [B, P, patch_dim] -> [B, P, d_model]
        x = self.patch_embed(patches) + self.patch_pos
        x = self.proj_out(torch.nn.functional.gelu(self.proj_in(x)))
        return x if self.out_norm is None else self.out_norm(x)


def _vlm_forward(self, input: Any = None, *args, **kwargs):
    """Bridge forward that also takes ``{"tokens": LongTensor, "pixels": FloatTensor}``."""
    if isinstance(input, dict):
        tokens = input["tokens"]
        pixels = input.get("pixels")
        with image_embeddings(self, tokens, pixels):
            return super(type(self), self).forward(tokens, *args, **kwargs)
    return super(type(self), self).forward(input, *args, **kwargs)


_VLM_CLASSES: dict[type, type] = {}


def _vlm_class(base: type) -> type:
    if base not in _VLM_CLASSES:
        _VLM_CLASSES[base] = type(
            "VLMBridge", (base,), {"forward": _vlm_forward, "__module__": __name__}
        )
    return _VLM_CLASSES[base]


@contextmanager
def image_embeddings(bridge: Any, tokens: torch.Tensor, pixels: torch.Tensor | None):
    """While active, the native token embedding returns projected patches at ``<image>``
    positions."""
    native = bridge.original_model
    if pixels is None:
        yield
        return
    spec = bridge.vlm_spec
    mask = tokens == spec.image_token_id  # [B, T]
    counts = mask.sum(1)
    if not bool((counts == pixels.shape[1]).all()):
        raise ValueError(
            f"each row needs {pixels.shape[1]} <image> tokens (id {spec.image_token_id}); "
            f"got {counts.tolist()}"
        )
    device = next(native.parameters()).device

    def hook(module, args, out):
        img = native.vision(pixels.to(device, out.dtype))  # [B, P, d]
        out = out.clone()
        out[mask.to(out.device)] = img.reshape(-1, img.shape[-1])
        return out

    # The bridge wraps the native embedding; hook the raw nn.Embedding so hook_embed sees the
    # patches.
    raw = getattr(native.tok_embed, "original_component", native.tok_embed)
    handle = raw.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def build_vlm(spec: VLMSpec | dict, tokenizer: Any = None):
    """An untrained VLM bridge (decoder seeded by ``decoder.init_seed``)."""
    spec = spec if isinstance(spec, VLMSpec) else VLMSpec(**spec)
    bridge = build_transformer(spec.decoder, tokenizer=tokenizer)
    native = bridge.original_model
    g = torch.random.fork_rng()
    with g:
        torch.manual_seed(spec.decoder.init_seed + 1)
        native.vision = PatchProjector(
            spec.patch_dim,
            spec.d_vision,
            spec.decoder.d_model,
            spec.n_image_tokens,
            spec.image_norm_gain,
        )
    bridge.__class__ = _vlm_class(type(bridge))
    bridge.vlm_spec = spec
    bridge.eval()
    return bridge


def wrap_vlm(bridge: Any, tokenizer: Any = None, model_id: str = "vlm"):
    """An ``interp.Model`` around a VLM bridge (saveable with ``save_model``)."""
    return Model(
        bridge,
        backend="tl",
        tokenizer=tokenizer,
        model_id=model_id,
        kind="vlm",
        spec={"builder": "vlm", "spec": bridge.vlm_spec.model_dump(mode="json")},
        example_input=torch.zeros(1, 4, dtype=torch.long),
    )
