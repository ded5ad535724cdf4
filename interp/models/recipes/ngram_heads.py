"""Zoo recipes for in-context language learning on random DFAs (Akyurek et al. 2024).

Three architectures trained on the same prompts with the shared loop: a transformer (TL
native, 4 layers, d 64, 2 heads), an LSTM (hidden 128) and the same LSTM followed by
hard-wired n-gram layers (m = 1, 2). The loss is next-token cross-entropy on symbol
targets only: targets that are the separator (when a string ends is random) or padding
are masked. Batches are packed by prompt length (:func:`interp.data.ngram_heads.packed_batch_fn`).

Sizes follow the scale-down in docs/analyses/ngram_heads.md: 2,400 steps of batch 32 (the
transformer's n-gram heads formed at steps ~900-1,300 in a probe), 2,500 training DFAs; ``-tiny``
recipes exist for tests. The ``-full`` recipes are the paper's regime (:data:`PAPER_PROMPTS`,
:func:`_full_recipes`): a transformer of 8 layers, d 128, 2 heads; prompts of 10-19 strings of
length 1-49; 2,500 training DFAs; 31,250 steps of batch 32 (the official code's 400 epochs over
2,500 examples), AdamW 2.5e-4, weight decay 0.1, cosine with a warmup of a tenth of training to 0.1
x lr. On this project's 2-core CPU that is an estimated ~2 days for the three models (never trained
here); about an hour each on one GPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator

from interp.data.ngram_heads import (
    VOCAB_SIZE,
    DFADataConfig,
    DFATables,
    PromptConfig,
    pad_batch,
    sample_prompts,
    scored_positions,
)
from interp.models.ngram_layer import NgramLSTM, NgramLSTMSpec
from interp.models.train import TrainConfig, train
from interp.models.transformer import TransformerSpec, build_transformer
from interp.models.zoo import recipe, scratch_dir


class ICLLRecipe(BaseModel):
    """A model trained on prompts from random DFAs. Exactly one of ``transformer`` / ``lstm``."""

    model_config = ConfigDict(extra="forbid")

    name: str
    transformer: TransformerSpec | None = None
    lstm: NgramLSTMSpec | None = None
    data: DFADataConfig = Field(default_factory=DFADataConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    seed: int = 0

    @model_validator(mode="after")
    def _one_arch(self) -> ICLLRecipe:
        if (self.transformer is None) == (self.lstm is None):
            raise ValueError("give exactly one of transformer or lstm")
        return self


def icll_loss(module: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """Cross-entropy on next tokens that are symbols (separator and pad targets masked)."""
    logits = module(tokens)  # [batch, pos, vocab]
    mask = scored_positions(tokens)[:, :-1]  # [batch, pos - 1]
    losses = F.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1), reduction="none"
    ).view_as(mask)
    return (losses * mask).sum() / mask.sum().clamp_min(1)


def train_icll(cfg: ICLLRecipe):
    """Train one recipe; return an ``interp.Model`` (spec saved for ``load_model``)."""
    import numpy as np

    from interp.data.ngram_heads import packed_batch_fn
    from interp.tracing.model import Model
    from interp.utils import seed_everything

    seed_everything(cfg.seed)
    dfas = cfg.data.dfas()
    if cfg.transformer is not None:
        spec = cfg.transformer.model_copy(update={"d_vocab": VOCAB_SIZE, "init_seed": cfg.seed})
        if spec.n_ctx < cfg.data.prompt.max_tokens:
            raise ValueError(
                f"n_ctx={spec.n_ctx} is shorter than the longest prompt "
                f"({cfg.data.prompt.max_tokens})"
            )
        wrapper = build_transformer(spec)
        module = wrapper.original_model
        meta = {"builder": "transformer", "spec": spec.model_dump(mode="json")}
        kind = "transformer"
    else:
        spec = cfg.lstm.model_copy(update={"d_vocab": VOCAB_SIZE, "init_seed": cfg.seed})
        wrapper = module = NgramLSTM(spec)
        meta = {"builder": "ngram_lstm", "spec": spec.model_dump(mode="json")}
        kind = "rnn"
    rng = np.random.default_rng([cfg.seed, 7])
    held = pad_batch(
        sample_prompts(DFATables(dfas), rng.integers(0, len(dfas), 64), rng, cfg.data.prompt)
    )

    def evaluate(mod):
        return {"heldout_loss": icll_loss(mod, held).item()}

    log = train(
        module,
        packed_batch_fn(dfas, cfg.train.batch_size, cfg.seed, cfg.data.prompt),
        icll_loss,
        cfg.train,
        checkpoint_dir=scratch_dir(cfg.name, cfg),
        eval_fn=evaluate,
        eval_every=500,
        desc=f"zoo:{cfg.name}",
    )
    model = Model(
        wrapper,
        backend="tl",
        model_id=f"zoo:{cfg.name}",
        kind=kind,
        spec=meta,
        example_input=torch.zeros(1, 4, dtype=torch.long),
    )
    model.train_log = log
    return model


def _recipes(
    suffix: str, steps: int, n_dfas: int, lstm_layers: int, tiny: bool = False
) -> dict[str, ICLLRecipe]:
    data = DFADataConfig(n_dfas=n_dfas, seed=0)
    if tiny:
        tf = TransformerSpec(n_layers=2, d_model=32, n_heads=2, n_ctx=256, d_vocab=VOCAB_SIZE)
        lstm = dict(d_vocab=VOCAB_SIZE, d_hidden=32, n_layers=1)
        tr = dict(steps=steps, batch_size=8, warmup=5, log_every=5, checkpoint_every=0)
    else:
        tf = TransformerSpec(n_layers=4, d_model=64, n_heads=2, n_ctx=256, d_vocab=VOCAB_SIZE)
        lstm = dict(d_vocab=VOCAB_SIZE, d_hidden=128, n_layers=lstm_layers)
        tr = dict(steps=steps, batch_size=32, warmup=100, log_every=50, checkpoint_every=500)
    return {
        f"icll-transformer{suffix}": ICLLRecipe(
            name=f"icll-transformer{suffix}",
            transformer=tf,
            data=data,
            train=TrainConfig(lr=1e-3, **tr),
        ),
        f"icll-lstm{suffix}": ICLLRecipe(
            name=f"icll-lstm{suffix}",
            lstm=NgramLSTMSpec(**lstm),
            data=data,
            train=TrainConfig(lr=3e-3, **tr),
        ),
        f"icll-lstm-ngram{suffix}": ICLLRecipe(
            name=f"icll-lstm-ngram{suffix}",
            lstm=NgramLSTMSpec(**lstm, ngram_orders=[1, 2]),
            data=data,
            train=TrainConfig(lr=3e-3, **tr),
        ),
    }


# the paper's prompts (berlino/seq_icl, the icl_dfa dataset): 10-19 strings of length 1-49
PAPER_PROMPTS = PromptConfig(min_strings=10, max_strings=19, min_len=1, max_len=49)


def _full_recipes() -> dict[str, ICLLRecipe]:
    """The paper's regime: see the module docstring. The LSTMs keep our hidden size (128)."""
    data = DFADataConfig(n_dfas=2500, seed=0, prompt=PAPER_PROMPTS)
    steps = 31_250
    tr = dict(
        steps=steps,
        batch_size=32,
        warmup=steps // 10,
        weight_decay=0.1,
        schedule="cosine",
        min_lr_frac=0.1,
        log_every=100,
        checkpoint_every=1000,
    )
    tf = TransformerSpec(n_layers=8, d_model=128, n_heads=2, n_ctx=1024, d_vocab=VOCAB_SIZE)
    lstm = dict(d_vocab=VOCAB_SIZE, d_hidden=128, n_layers=1)
    return {
        "icll-transformer-full": ICLLRecipe(
            name="icll-transformer-full",
            transformer=tf,
            data=data,
            train=TrainConfig(lr=2.5e-4, **tr),
        ),
        "icll-lstm-full": ICLLRecipe(
            name="icll-lstm-full",
            lstm=NgramLSTMSpec(**lstm),
            data=data,
            train=TrainConfig(lr=3e-3, **tr),
        ),
        "icll-lstm-ngram-full": ICLLRecipe(
            name="icll-lstm-ngram-full",
            lstm=NgramLSTMSpec(**lstm, ngram_orders=[1, 2]),
            data=data,
            train=TrainConfig(lr=3e-3, **tr),
        ),
    }


RECIPES: dict[str, ICLLRecipe] = {
    **_recipes("", steps=2400, n_dfas=2500, lstm_layers=1),
    **_full_recipes(),
    **_recipes("-tiny", steps=20, n_dfas=200, lstm_layers=1, tiny=True),
}

_WHAT = {
    "transformer": "transformer {L}L d{d} 2 heads",
    "lstm": "LSTM h128",
    "lstm-ngram": "LSTM h128 + n-gram layers m=1,2",
}


def _describe(name: str, cfg: ICLLRecipe) -> str:
    arch = (
        "transformer"
        if cfg.transformer is not None
        else ("lstm-ngram" if cfg.lstm.ngram_orders else "lstm")
    )
    what = _WHAT[arch] if not name.endswith("-tiny") else f"tiny {arch} (tests)"
    if cfg.transformer is not None:
        what = what.format(L=cfg.transformer.n_layers, d=cfg.transformer.d_model)
    p = cfg.data.prompt
    return (
        f"{what} on random-DFA prompts ({p.min_strings}-{p.max_strings} strings of length "
        f"{p.min_len}-{p.max_len}): "
        f"{cfg.train.steps} steps x {cfg.train.batch_size}, {cfg.data.n_dfas} DFAs"
        + (
            "; the paper's regime, ~2 days on CPU (estimate), never trained here"
            if name.endswith("-full")
            else ""
        )
    )


# Example prompts: strings of one language joined by "|" (random walks of random_dfa drawn with
# np.random.default_rng([s, 11]), s = 0, 1, 2). The models read token ids (no tokenizer):
# interp.data.ngram_heads.from_string turns a prompt into them.
DFA_PROMPTS = (
    "ojojeb|oibe|oibeb|erjeb|oirjer|oirj",
    "mimil|mml|mimfm|mmli|mmli|mmlil",
    "rhrhrc|rcecjr|rcr|rhrh|rhrcec|rche",
)

for _name, _cfg in RECIPES.items():
    recipe(_name, _cfg, _describe(_name, _cfg), prompts=DFA_PROMPTS)(train_icll)
