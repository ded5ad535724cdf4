"""Zoo recipes for the tiny LLaVA-style VLM (:mod:`interp.models.vlm`) on synthetic VQA.

The model sees ``[BOS] [64 image patches] [question]`` and is trained with cross-entropy on
the answer token, read at the last question position, with the shared
:func:`interp.models.train.train` loop. Train and test questions come from disjoint scenes
(:mod:`interp.data.vqa`); the recipe records the test accuracy in the saved model's
``train_log``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from interp.models.train import TrainConfig, train
from interp.models.transformer import TransformerSpec
from interp.models.vlm import VLMSpec, build_vlm, image_embeddings, wrap_vlm
from interp.models.zoo import recipe, scratch_dir


class VLMRecipe(BaseModel):
    """A VLM trained on synthetic VQA."""

    model_config = ConfigDict(extra="forbid")

    name: str
    n_layers: int = 4
    d_model: int = 64
    n_heads: int = 4
    d_vision: int = 64
    n_train: int = 20000
    n_test: int = 600
    # Auxiliary loss (weight) on the image positions: predict the shape word of the object
    # covering each patch (background ignored), like LLaVA's image-text alignment stage. It
    # makes a CPU-sized model learn shapes in minutes; 0 turns it off.
    patch_aux_weight: float = 0.0
    train: TrainConfig = Field(default_factory=TrainConfig)
    seed: int = 0


def answer_logits(bridge, batch: dict) -> torch.Tensor:
    """``[B, vocab]`` logits at each sample's last question position (native forward, no hooks)."""
    native = bridge.original_model
    with image_embeddings(bridge, batch["tokens"], batch["pixels"]):
        logits = native(batch["tokens"])
    return logits[torch.arange(len(logits)), batch["last"]]


def vqa_accuracy(bridge, batch: dict, chunk: int = 128) -> float:
    correct = 0
    with torch.no_grad():
        for i in range(0, len(batch["tokens"]), chunk):
            part = {k: v[i : i + chunk] for k, v in batch.items()}
            correct += (answer_logits(bridge, part).argmax(-1) == part["answer"]).sum().item()
    return correct / len(batch["tokens"])


def train_vlm(cfg: VLMRecipe):
    from interp.data.vqa import encode, make_vqa, vqa_tokenizer
    from interp.utils import seed_everything

    seed_everything(cfg.seed)
    tok = vqa_tokenizer()
    data = make_vqa(cfg.n_train, cfg.n_test, seed=cfg.seed)
    train_batch = encode(tok, data.train)
    test_batch = encode(tok, data.test)
    spec = VLMSpec(
        decoder=TransformerSpec(n_layers=cfg.n_layers, d_model=cfg.d_model, n_heads=cfg.n_heads, n_ctx=80,
                                d_vocab=len(tok), init_seed=cfg.seed),
        d_vision=cfg.d_vision, image_token_id=tok.convert_tokens_to_ids("<image>"),
    )
    bridge = build_vlm(spec, tok)
    n = len(data.train)

    def batch_fn(step: int) -> dict:
        g = np.random.default_rng([cfg.seed, step])
        idx = torch.from_numpy(g.integers(0, n, cfg.train.batch_size))
        return {k: v[idx] for k, v in train_batch.items()}

    def loss_fn(native, batch) -> torch.Tensor:
        with image_embeddings(bridge, batch["tokens"], batch["pixels"]):
            logits = native(batch["tokens"])
        loss = F.cross_entropy(logits[torch.arange(len(logits)), batch["last"]], batch["answer"])
        if cfg.patch_aux_weight:
            img = logits[:, 1 : 1 + batch["patch_shape"].shape[1]]
            loss = loss + cfg.patch_aux_weight * F.cross_entropy(img.reshape(-1, img.shape[-1]),
                                                                 batch["patch_shape"].reshape(-1), ignore_index=-100)
        return loss

    def evaluate(native) -> dict:
        return {"test_accuracy": vqa_accuracy(bridge, test_batch)}

    log = train(bridge.original_model, batch_fn, loss_fn, cfg.train, checkpoint_dir=scratch_dir(cfg.name, cfg),
                eval_fn=evaluate, eval_every=max(cfg.train.steps // 4, 1), desc=f"zoo:{cfg.name}")
    model = wrap_vlm(bridge, tok, model_id=f"zoo:{cfg.name}")
    model.train_log = log
    return model


VLM_TINY = VLMRecipe(
    name="vlm-tiny",
    n_layers=4, d_model=64, n_heads=4,
    patch_aux_weight=1.0,
    train=TrainConfig(steps=8000, batch_size=32, lr=3e-3, warmup=60, log_every=50),
)
VLM_6L = VLMRecipe(
    name="vlm-6l",
    n_layers=6, d_model=128, n_heads=4, d_vision=128, n_train=40000, patch_aux_weight=1.0,
    train=TrainConfig(steps=3000, batch_size=64, lr=1e-3, warmup=100, log_every=50),
)


@recipe("vlm-tiny", VLM_TINY, "4-layer d64 LLaVA-style VLM on synthetic VQA (32x32 shapes; 8000 steps, ~11 min on 2 idle CPU cores)")
def _vlm_tiny(cfg: VLMRecipe):
    return train_vlm(cfg)


@recipe("vlm-6l", VLM_6L, "6-layer d128 LLaVA-style VLM on synthetic VQA (the paper-sized toy; ~2 h on CPU, never trained here)")
def _vlm_6l(cfg: VLMRecipe):
    return train_vlm(cfg)
