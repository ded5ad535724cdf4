"""Zoo recipes for circuit discovery: small transformers trained on the template language.

Each model sees a mixture of induction segments (random symbols repeated), IOI sentences
and plain sentences from a small grammar (:mod:`interp.data.sae_circuits`), so it has circuits
for two tasks with exact counterfactual prompts, and heads outside them still do next-token
work. Several seeds give several trained models (``circuit-lm-s0``, ``-s1``, ``-s2``); the
``circuit-lm-tiny`` recipe is the test-sized one.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field

from interp.data.sae_circuits import template_corpus, template_vocab
from interp.data.tokenizer import word_tokenizer
from interp.models.recipes.code_lm import lm_loss
from interp.models.train import TrainConfig, train
from interp.models.transformer import TransformerSpec, build_transformer
from interp.models.zoo import recipe, scratch_dir
from interp.tracing.model import Model
from interp.utils import seed_everything


def _default_mix() -> dict[str, float]:
    return {"ioi": 0.4, "induction": 0.3, "sentence": 0.3}


class CircuitLMRecipe(BaseModel):
    """A transformer LM on the template language (word tokenizer)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    spec: TransformerSpec
    train: TrainConfig = Field(default_factory=TrainConfig)
    mix: dict[str, float] = Field(default_factory=_default_mix)
    pool_size: int = 8192
    seed: int = 0


def train_circuit_lm(cfg: CircuitLMRecipe):
    """Train ``cfg`` on freshly sampled template-language batches; return an ``interp.Model``."""
    seed_everything(cfg.seed)
    tok = word_tokenizer(template_vocab())
    spec = cfg.spec.model_copy(update={"d_vocab": len(tok)})
    bridge = build_transformer(spec, tokenizer=tok)
    n_ctx, bs = spec.n_ctx, cfg.train.batch_size
    # A fixed pool of sequences (sampling words in Python each step would cost as much as the step).
    pool = template_corpus(tok, cfg.pool_size, n_ctx, seed=cfg.seed, mix=cfg.mix)  # [pool, n_ctx]

    def batch_fn(step: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        return pool[torch.randint(0, len(pool), (bs,), generator=g)]  # [batch, n_ctx]

    held = template_corpus(
        tok, 64, n_ctx, seed=cfg.seed + 7_777_777, mix=cfg.mix
    )  # held-out stream

    def evaluate(module):
        return {"heldout_loss": lm_loss(module, held).item()}

    log = train(
        bridge.original_model,
        batch_fn,
        lm_loss,
        cfg.train,
        checkpoint_dir=scratch_dir(cfg.name, cfg),
        eval_fn=evaluate,
        desc=f"zoo:{cfg.name}",
    )
    model = Model(
        bridge,
        backend="tl",
        tokenizer=tok,
        model_id=f"zoo:{cfg.name}",
        kind="transformer",
        spec={"builder": "transformer", "spec": spec.model_dump(mode="json")},
    )
    model.train_log = log
    return model


def _lm(
    name: str,
    seed: int,
    n_layers: int = 4,
    d_model: int = 64,
    steps: int = 2000,
    pool_size: int = 8192,
) -> CircuitLMRecipe:
    return CircuitLMRecipe(
        name=name,
        seed=seed,
        pool_size=pool_size,
        spec=TransformerSpec(
            n_layers=n_layers, d_model=d_model, n_heads=4, n_ctx=32, d_vocab=128, init_seed=seed
        ),
        train=TrainConfig(steps=steps, batch_size=32, lr=3e-3, warmup=100, weight_decay=0.01),
    )


CIRCUIT_LMS = {f"circuit-lm-s{s}": _lm(f"circuit-lm-s{s}", s) for s in range(3)}
CIRCUIT_LM_TINY = _lm("circuit-lm-tiny", 0, n_layers=3, d_model=32, steps=150, pool_size=512)


# Example prompts in the template language (word tokenizer: every word, "," and "." apart):
# an IOI sentence (next: Mary), an induction segment (next: s21) and a plain sentence.
TEMPLATE_PROMPTS = (
    "when Mary and John went to the store , John gave a drink to",
    "s3 s17 s8 s21 s5 s12 s30 s3 s17 s8",
    "the big dog chased a small cat near the",
)


def _register(name: str, cfg: CircuitLMRecipe, description: str) -> None:
    @recipe(name, cfg, description, prompts=TEMPLATE_PROMPTS)
    def _build(c: CircuitLMRecipe):
        return train_circuit_lm(c)


for _name, _cfg in CIRCUIT_LMS.items():
    _register(
        _name,
        _cfg,
        f"4x4-head d64 LM on the template language (induction + IOI + sentences), seed {_cfg.seed}",
    )
_register(
    "circuit-lm-tiny", CIRCUIT_LM_TINY, "3x4-head d32 template-language LM, 150 steps (tests)"
)
