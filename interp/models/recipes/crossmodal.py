"""Zoo recipes for the tiny LLaVA-style VLM (:mod:`interp.models.vlm`) on synthetic VQA.

The model sees ``[BOS] [64 image patches] [question]`` and is trained with cross-entropy on
the answer token, read at the last question position (plus, with ``question_lm_weight``, a
next-token loss on the question tokens), with the shared
:func:`interp.models.train.train` loop. Train and test questions come from disjoint scenes
(:mod:`interp.data.crossmodal`); the recipe records the test accuracy in the saved model's
``train_log``.

Two things make the relation questions (choose_rel: "is the circle left or right of the
square ?") learnable at this size; without them they stayed at chance in every configuration
tried, because the model never read *where* an object is:

- a LayerNorm after the projector (``image_norm_gain``), which keeps image embeddings near the
  scale of the decoder's position embeddings (without it they grew ~20x larger, and a
  linear probe found no trace of an object's column anywhere in the question);
- training-only ``choose_side`` questions ("is the circle left or right ?"), trained alone in
  a first stage (``side_stage``, like LLaVA's separate alignment stage) and then mixed into the
  main stage, which build the "where is it" readout that choose_rel compares across objects.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from interp.data.crossmodal import N_PATCHES, encode, make_vqa, vqa_tokenizer
from interp.models.train import TrainConfig, load_checkpoint, train
from interp.models.transformer import TransformerSpec
from interp.models.vlm import VLMSpec, build_vlm, image_embeddings, wrap_vlm
from interp.models.zoo import recipe, scratch_dir
from interp.tracing.model import Model
from interp.utils import atomic_path, seed_everything


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
    # Language-model loss (weight) on the question tokens: each question token predicted from
    # the positions before it. Predicting "the circle" after "what color is the" needs the image,
    # so the question positions must read the image; with the answer loss alone a shallow model
    # routed everything through layer 0 of the last position. 0 turns it off.
    question_lm_weight: float = 0.0
    # LayerNorm after the projector with this starting gain (VLMSpec.image_norm_gain); None: none.
    image_norm_gain: float | None = None
    # Training-only choose_side questions ("is the circle left or right ?") in the mixture, and
    # an optional first stage that trains on them alone (its own optimiser and schedule).
    # Reading where one object is must exist before choose_rel (which of two is further left)
    # gets any signal.
    side_questions: bool = False
    side_stage: TrainConfig | None = None
    train: TrainConfig = Field(default_factory=TrainConfig)
    seed: int = 0


def answer_logits(bridge: Any, batch: dict) -> torch.Tensor:
    """``[B, vocab]`` logits at each sample's last question position (native forward, no
    hooks)."""
    native = bridge.original_model
    with image_embeddings(bridge, batch["tokens"], batch["pixels"]):
        logits = native(batch["tokens"])
    return logits[torch.arange(len(logits)), batch["last"]]


def vqa_accuracy(bridge: Any, batch: dict, chunk: int = 128) -> float:
    """Share of ``batch``'s questions whose answer is the argmax at the last position."""
    correct = 0
    with torch.no_grad():
        for i in range(0, len(batch["tokens"]), chunk):
            part = {k: v[i : i + chunk] for k, v in batch.items()}
            correct += (answer_logits(bridge, part).argmax(-1) == part["answer"]).sum().item()
    return correct / len(batch["tokens"])


def question_lm_loss(logits: torch.Tensor, batch: dict) -> torch.Tensor:
    """Mean next-token cross-entropy over the question tokens: the logits at question position
    ``t`` (the first question token up to the one before the last) predict token ``t + 1``; the
    last position's prediction is the answer loss, padding is ignored."""
    first = 1 + N_PATCHES  # the first question token
    T = logits.shape[1]
    pos = torch.arange(first, T - 1, device=logits.device)  # query positions t
    target = batch["tokens"][:, first + 1 :].clone()  # [B, T - first - 1]: the token after each t
    target[pos[None] >= batch["last"][:, None]] = -100  # at and past each row's last question token
    return F.cross_entropy(
        logits[:, first : T - 1].reshape(-1, logits.shape[-1]),
        target.reshape(-1),
        ignore_index=-100,
    )


def training_extra_types(cfg: dict) -> tuple[str, ...]:
    """Training-only question types a recipe config (``VLMRecipe.model_dump()``) mixes in;
    with ``n_train`` and ``seed`` they fix the training scenes (``vqa.train_scene_keys``)."""
    return ("choose_side",) if cfg.get("side_questions") else ()


def build_for(cfg: VLMRecipe, tok: Any) -> Any:
    """The untrained VLM bridge of ``cfg`` for the VQA tokenizer ``tok``."""
    spec = VLMSpec(
        decoder=TransformerSpec(
            n_layers=cfg.n_layers,
            d_model=cfg.d_model,
            n_heads=cfg.n_heads,
            n_ctx=80,
            d_vocab=len(tok),
            init_seed=cfg.seed,
        ),
        d_vision=cfg.d_vision,
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        image_norm_gain=cfg.image_norm_gain,
    )
    return build_vlm(spec, tok)


def seeded_batches(
    train_batch: dict[str, torch.Tensor], pool: torch.Tensor, batch_size: int, seed: int, salt: int
) -> Callable[[int], dict[str, torch.Tensor]]:
    """``batch_fn(step)``: seeded batches drawn from the training samples in ``pool``."""

    def batch_fn(step: int) -> dict[str, torch.Tensor]:
        g = np.random.default_rng([seed, salt, step])
        idx = pool[torch.from_numpy(g.integers(0, len(pool), batch_size))]
        return {k: v[idx] for k, v in train_batch.items()}

    return batch_fn


def vqa_loss(bridge: Any, cfg: VLMRecipe) -> Callable[[Any, dict], torch.Tensor]:
    """``loss_fn(native, batch)``: cross-entropy on the answer at the last question position,
    plus the question LM loss and the patch-shape loss at their weights."""

    def loss_fn(native: Any, batch: dict) -> torch.Tensor:
        with image_embeddings(bridge, batch["tokens"], batch["pixels"]):
            logits = native(batch["tokens"])
        loss = F.cross_entropy(logits[torch.arange(len(logits)), batch["last"]], batch["answer"])
        if cfg.question_lm_weight:
            loss = loss + cfg.question_lm_weight * question_lm_loss(logits, batch)
        if cfg.patch_aux_weight:
            img = logits[:, 1 : 1 + batch["patch_shape"].shape[1]]
            loss = loss + cfg.patch_aux_weight * F.cross_entropy(
                img.reshape(-1, img.shape[-1]), batch["patch_shape"].reshape(-1), ignore_index=-100
            )
        return loss

    return loss_fn


def side_stage(
    bridge: Any,
    cfg: VLMRecipe,
    batch_fn: Callable[[int], dict],
    loss_fn: Callable[[Any, dict], torch.Tensor],
    work: Path,
) -> list[dict]:
    """The first stage (``choose_side`` questions alone), or its saved result: a build
    interrupted in the second stage resumes from ``work / "side_stage.pt"``."""
    if cfg.side_stage is None:
        raise ValueError(f"{cfg.name} has no side_stage to train")
    done = work / "side_stage.pt"
    if done.exists():
        state = load_checkpoint(done)
        bridge.original_model.load_state_dict(state["model"])
        return state["log"]
    log = [
        dict(e, stage="side")
        for e in train(
            bridge.original_model,
            batch_fn,
            loss_fn,
            cfg.side_stage,
            checkpoint_dir=work / "side",
            desc=f"zoo:{cfg.name} (choose_side stage)",
        )
    ]
    with atomic_path(done) as tmp:
        torch.save({"model": bridge.original_model.state_dict(), "log": log}, tmp)
    return log


def train_vlm(cfg: VLMRecipe) -> Model:
    """Train the VLM of ``cfg`` (the optional ``choose_side`` stage, then the mixture) and
    return it wrapped, its test accuracy in ``train_log``."""
    seed_everything(cfg.seed)
    tok = vqa_tokenizer()
    extra = training_extra_types(cfg.model_dump())
    data = make_vqa(cfg.n_train, cfg.n_test, seed=cfg.seed, train_extra=extra)
    train_batch = encode(tok, data.train)
    test_batch = encode(tok, data.test)
    bridge = build_for(cfg, tok)
    every = torch.arange(len(data.train))
    side = torch.tensor(
        [i for i, s in enumerate(data.train) if s.qtype == "choose_side"], dtype=torch.long
    )
    if cfg.side_stage is not None and not len(side):
        raise ValueError("side_stage needs side_questions=True")
    loss_fn = vqa_loss(bridge, cfg)

    def evaluate(native: Any) -> dict:
        return {"test_accuracy": vqa_accuracy(bridge, test_batch)}

    work = scratch_dir(cfg.name, cfg)
    log: list[dict] = []
    if cfg.side_stage is not None:
        side_batches = seeded_batches(train_batch, side, cfg.side_stage.batch_size, cfg.seed, 1)
        log = side_stage(bridge, cfg, side_batches, loss_fn, work)
    log += train(
        bridge.original_model,
        seeded_batches(train_batch, every, cfg.train.batch_size, cfg.seed, 0),
        loss_fn,
        cfg.train,
        checkpoint_dir=work,
        eval_fn=evaluate,
        eval_every=max(cfg.train.steps // 4, 1),
        desc=f"zoo:{cfg.name}",
    )
    (work / "side_stage.pt").unlink(missing_ok=True)
    model = wrap_vlm(bridge, tok, model_id=f"zoo:{cfg.name}")
    model.train_log = log
    return model


VLM_TINY = VLMRecipe(
    name="vlm-tiny",
    n_layers=6,
    d_model=64,
    n_heads=4,
    n_train=28000,
    patch_aux_weight=1.0,
    question_lm_weight=1.0,
    image_norm_gain=0.2,
    side_questions=True,
    side_stage=TrainConfig(steps=500, batch_size=32, lr=3e-3, warmup=60, log_every=50),
    train=TrainConfig(steps=3500, batch_size=32, lr=3e-3, warmup=60, log_every=50),
)
VLM_6L = VLMRecipe(
    name="vlm-6l",
    n_layers=6,
    d_model=128,
    n_heads=4,
    d_vision=128,
    n_train=40000,
    patch_aux_weight=1.0,
    image_norm_gain=0.2,
    side_questions=True,
    side_stage=TrainConfig(steps=1500, batch_size=64, lr=1e-3, warmup=100, log_every=50),
    train=TrainConfig(steps=3000, batch_size=64, lr=1e-3, warmup=100, log_every=50),
)

# The full preset's model: deep enough for a window of ~0.28 x depth (the paper's 9 of 32 layers
# on LLaVA-7B: 3 of 12) to leave room for lower, middle and higher layers, and trained with the
# question LM loss that makes the question positions read the image (the 6-layer models gathered
# the question in layer 0 without it). Never trained here: an estimated ~4 h on an idle 2-core CPU
# (12 layers x d128 x batch 64, 6,000 steps), minutes on a GPU.
VLM_12L = VLMRecipe(
    name="vlm-12l",
    n_layers=12,
    d_model=128,
    n_heads=4,
    d_vision=128,
    n_train=40000,
    patch_aux_weight=1.0,
    question_lm_weight=1.0,
    image_norm_gain=0.2,
    side_questions=True,
    side_stage=TrainConfig(steps=1500, batch_size=64, lr=1e-3, warmup=100, log_every=50),
    train=TrainConfig(steps=4500, batch_size=64, lr=1e-3, warmup=100, log_every=50),
)

# Example questions (the model also needs an image, so the text-only explorer can only tokenize
# them).
VQA_PROMPTS = (
    "what color is the circle ?",
    "is the square left or right of the triangle ?",
    "are there both a circle and a square ?",
)


@recipe(
    "vlm-tiny",
    VLM_TINY,
    "6-layer d64 LLaVA-style VLM on synthetic VQA (32x32 shapes; answer + question LM loss; "
    "500 choose_side + 3500 mixed steps, ~12 min on an idle CPU)",
    prompts=VQA_PROMPTS,
)
def _vlm_tiny(cfg: VLMRecipe):
    return train_vlm(cfg)


@recipe(
    "vlm-6l",
    VLM_6L,
    "6-layer d128 LLaVA-style VLM on synthetic VQA (the paper-sized toy; ~2 h on CPU, never "
    "trained here)",
    prompts=VQA_PROMPTS,
)
def _vlm_6l(cfg: VLMRecipe):
    return train_vlm(cfg)


@recipe(
    "vlm-12l",
    VLM_12L,
    "12-layer d128 LLaVA-style VLM on synthetic VQA with the question LM loss (the full "
    "preset's model; an estimated ~4 h on CPU, never trained here)",
    prompts=VQA_PROMPTS,
)
def _vlm_12l(cfg: VLMRecipe):
    return train_vlm(cfg)
