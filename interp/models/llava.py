"""Hugging Face LLaVA for the cross-modal knockout: loading, inputs and the masked forward.

``load_llava("llava-hf/llava-1.5-7b-hf")`` loads a real checkpoint (eager attention, so the
additive attention mask is what the softmax sees); ``load_llava("tiny-random")`` builds a
tiny randomly initialised ``LlavaForConditionalGeneration`` locally (CLIP vision tower on
32x32 images with 4x4 patches -> 64 image tokens, 3-layer Llama decoder over the synthetic
VQA vocabulary), which exercises the same path offline.

Knockout on an HF decoder (:func:`hf_knockout_logits`): a forward pre-hook on each
attention module of the window's layers replaces its ``attention_mask`` keyword by the
causal mask with the blocked (query, key) entries set to the dtype minimum, exactly the
paper's edit (the decoder layers pass the mask to attention as a keyword, which the
``hook_in`` of interp's nnsight adapter does not expose, so plain PyTorch hooks do it). The
model is also wrapped with :func:`interp.wrap` (nnsight) for tracing (``m.hook_names``).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch


def tiny_llava(vocab_size: int, image_token_id: int, seed: int = 0):
    """A tiny random LLaVA (vision tower on 32x32 images, 4x4 patches, 3-layer Llama decoder)."""
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
    )

    vc = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=32,
        patch_size=4,
        num_channels=3,
        projection_dim=32,
    )
    tc = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=128,
    )
    cfg = LlavaConfig(
        vision_config=vc,
        text_config=tc,
        image_token_index=image_token_id,
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
    )
    cfg._attn_implementation = "eager"
    cfg.text_config._attn_implementation = "eager"
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = LlavaForConditionalGeneration(cfg)
    return model.eval()


def load_llava(name: str, device: str = "cpu", seed: int = 0):
    """``(hf_model, processor_or_None, tokenizer)`` for ``tiny-random`` or a hub name /
    directory."""
    if name == "tiny-random":
        from interp.data.crossmodal import IMAGE_TOKEN, vqa_tokenizer

        tok = vqa_tokenizer()
        return (
            tiny_llava(len(tok), tok.convert_tokens_to_ids(IMAGE_TOKEN), seed).to(device),
            None,
            tok,
        )
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    dtype = torch.float16 if str(device).startswith("cuda") else torch.float32
    # trust_remote_code=False: a checkpoint's own Python files (auto_map) are never run
    model = LlavaForConditionalGeneration.from_pretrained(
        name, torch_dtype=dtype, attn_implementation="eager", trust_remote_code=False
    )
    processor = AutoProcessor.from_pretrained(name, trust_remote_code=False)
    return model.to(device).eval(), processor, processor.tokenizer


def decoder_layers(model: Any) -> Sequence[torch.nn.Module]:
    """The language model's decoder layers of an HF (multimodal) causal LM."""
    for path in ("model.language_model.layers", "language_model.model.layers", "model.layers"):
        obj = model
        try:
            for part in path.split("."):
                obj = getattr(obj, part)
            return obj
        except AttributeError:
            continue
    raise ValueError(f"cannot find the decoder layers of {type(model).__name__}")


def image_token_id(model: Any) -> int:
    cfg = model.config
    return int(getattr(cfg, "image_token_index", getattr(cfg, "image_token_id", -1)))


def knockout_mask(
    T: int, block: torch.Tensor, dtype: torch.dtype, existing: Any = None
) -> torch.Tensor:
    """Additive ``[B, 1, T, T]`` mask: the causal mask (or ``existing``) plus ``block`` set to the
    dtype min."""
    lo = torch.finfo(dtype).min
    B = block.shape[0]
    if isinstance(existing, torch.Tensor) and existing.dim() == 4:
        base = (
            existing
            if existing.dtype != torch.bool
            else torch.zeros(existing.shape, dtype=dtype, device=existing.device).masked_fill(
                ~existing, lo
            )
        )
        base = base[..., -T:, -T:].to(dtype).expand(B, 1, T, T)
    else:
        causal = torch.ones(T, T, dtype=torch.bool, device=block.device).triu(1)
        base = torch.zeros(B, 1, T, T, dtype=dtype, device=block.device).masked_fill(causal, lo)
    return base.masked_fill(block[:, None].to(base.device), lo)


@contextmanager
def blocked_attention(model: Any, block: torch.Tensor, layers: Sequence[int]):
    """While active, the decoder's attention in ``layers`` cannot use the ``block`` [B, T, T]
    entries."""
    handles = []
    mods = decoder_layers(model)

    def pre(module, args, kwargs):
        hidden = kwargs.get("hidden_states", args[0] if args else None)
        T = hidden.shape[1]
        kwargs = dict(kwargs)
        kwargs["attention_mask"] = knockout_mask(
            T, block.to(hidden.device), hidden.dtype, kwargs.get("attention_mask")
        )
        return args, kwargs

    try:
        if bool(block.any()):
            for layer in layers:
                handles.append(
                    mods[layer].self_attn.register_forward_pre_hook(pre, with_kwargs=True)
                )
        yield
    finally:
        for h in handles:
            h.remove()


def hf_knockout_logits(
    model: Any, inputs: dict, block: torch.Tensor, layers: Sequence[int]
) -> torch.Tensor:
    """Last-position logits ``[B, V]`` of an HF LLaVA with ``block`` applied in ``layers``."""
    with torch.no_grad(), blocked_attention(model, block, layers):
        return model(**inputs).logits[:, -1].float()


def synthetic_inputs(
    model: Any, processor: Any, tokenizer: Any, samples: Sequence[Any], device: str = "cpu"
):
    """``(inputs, groups)`` for a batch of synthetic VQA samples of one question length.

    tiny-random: ``[BOS] <image>x64 question`` with the VQA tokenizer. A real LLaVA: its chat
    prompt through its processor (images upscaled), one sample per batch recommended."""
    from interp.data.crossmodal import GRID, encode

    if processor is None:
        b = encode(tokenizer, samples)
        images = torch.from_numpy(np.stack([s.image for s in samples])).permute(0, 3, 1, 2)
        inputs = {"input_ids": b["tokens"].to(device), "pixel_values": images.to(device)}
    else:
        from PIL import Image

        prompts = [f"USER: <image>\n{s.question} Answer with one word. ASSISTANT:" for s in samples]
        pil = [Image.fromarray((s.image * 255).astype(np.uint8)) for s in samples]
        enc = processor(images=pil, text=prompts, return_tensors="pt", padding=True)
        inputs = {k: v.to(device) for k, v in enc.items() if k in ("input_ids", "pixel_values")}
    ids = inputs["input_ids"].cpu()
    B, T = ids.shape
    image = ids == image_token_id(model)
    pos = torch.arange(T)[None].expand(B, T)
    first_after = image.long().cumsum(1).eq(image.sum(1, keepdim=True)) & ~image
    last = pos == T - 1
    question = first_after & ~last & (pos > image.float().argmax(1, keepdim=True))
    obj = torch.zeros_like(image)
    n_img = int(image[0].sum())
    side = int(round(n_img**0.5))
    for i, s in enumerate(samples):
        cells = np.arange(n_img)
        r, c = cells // side, cells % side
        ours = (r * GRID // side) * GRID + (c * GRID // side)
        obj[i, image[i].nonzero()[:, 0]] = torch.from_numpy(s.object_patches[ours])
    groups = {
        "image": image,
        "question": question,
        "last": last,
        "all": pos <= T - 1,
        "object": obj,
        "nonobject": image & ~obj,
    }
    return inputs, groups
