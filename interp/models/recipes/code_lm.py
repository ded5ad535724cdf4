"""Code LMs: small transformers trained on the Python standard library's source with a
locally trained BPE tokenizer (``model_report``, ``bigram`` and the explorer use them).

``code-lm-6l`` is the second size of the bigram analysis's full preset: same corpus,
tokenizer size and training loop as ``code-lm`` (4 layers), with more layers and steps, so
"the bigram subnetwork lives in the first MLP" is tested at more than one depth."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from interp.data.corpus import load_corpus
from interp.data.tokenizer import train_bpe
from interp.models.train import TrainConfig, train
from interp.models.transformer import TransformerSpec, build_transformer
from interp.models.zoo import recipe, scratch_dir
from interp.tracing.model import Model
from interp.utils import seed_everything


class LMRecipe(BaseModel):
    """A transformer LM trained on a text corpus with a locally trained BPE tokenizer."""

    model_config = ConfigDict(extra="forbid")

    name: str
    corpus: str = "stdlib"
    max_chars: int | None = 2_000_000
    vocab_size: int = 1024
    spec: TransformerSpec
    train: TrainConfig = Field(default_factory=TrainConfig)
    seed: int = 0


def tokenize_corpus(corpus_docs: list[str], tokenizer, bos_id: int) -> np.ndarray:
    """One flat token stream, each document preceded by BOS."""
    ids = tokenizer(corpus_docs, add_special_tokens=False)["input_ids"]
    out = []
    for doc in ids:
        out.append(bos_id)
        out.extend(doc)
    return np.asarray(out, dtype=np.int32)


def lm_batches(stream: np.ndarray, n_ctx: int, batch_size: int, seed: int):
    """``batch_fn(step)``: random windows of ``n_ctx`` tokens, seeded by (seed, step)."""
    hi = len(stream) - n_ctx - 1
    if hi <= 0:
        raise ValueError(f"corpus has {len(stream)} tokens, fewer than n_ctx+1={n_ctx + 1}")
    data = torch.from_numpy(stream.astype(np.int64))

    def batch_fn(step: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed * 1_000_003 + step)
        starts = torch.randint(0, hi, (batch_size,), generator=g)
        return torch.stack([data[s : s + n_ctx] for s in starts.tolist()])  # [batch, n_ctx]

    return batch_fn


def lm_loss(module: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    logits = module(tokens)  # [batch, pos, vocab]
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))


def train_lm(cfg: LMRecipe):
    """Train the tokenizer and the transformer of an :class:`LMRecipe`; return an
    ``interp.Model``."""
    seed_everything(cfg.seed)
    corpus = load_corpus(cfg.corpus, max_chars=cfg.max_chars, seed=cfg.seed)
    tokenizer = train_bpe(corpus.train, vocab_size=cfg.vocab_size)
    spec = cfg.spec.model_copy(update={"d_vocab": len(tokenizer)})
    bridge = build_transformer(spec, tokenizer=tokenizer)
    native = bridge.original_model
    stream = tokenize_corpus(corpus.train, tokenizer, tokenizer.bos_token_id)
    held = tokenize_corpus(corpus.heldout, tokenizer, tokenizer.bos_token_id)
    held_batch = lm_batches(held, spec.n_ctx, 16, seed=cfg.seed + 1)(0)

    def evaluate(module):
        return {"heldout_loss": lm_loss(module, held_batch).item()}

    log = train(
        native,
        lm_batches(stream, spec.n_ctx, cfg.train.batch_size, cfg.seed),
        lm_loss,
        cfg.train,
        checkpoint_dir=scratch_dir(cfg.name, cfg),
        eval_fn=evaluate,
        desc=f"zoo:{cfg.name}",
    )
    model = Model(
        bridge,
        backend="tl",
        tokenizer=tokenizer,
        model_id=f"zoo:{cfg.name}",
        kind="transformer",
        spec={"builder": "transformer", "spec": spec.model_dump(mode="json")},
    )
    model.train_log = log
    return model


CODE_LM_TINY = LMRecipe(
    name="code-lm-tiny",
    max_chars=400_000,
    vocab_size=512,
    spec=TransformerSpec(n_layers=2, d_model=64, n_heads=4, n_ctx=64, d_vocab=512),
    train=TrainConfig(steps=300, batch_size=16, lr=3e-3, warmup=30),
)
CODE_LM = LMRecipe(
    name="code-lm",
    max_chars=None,
    vocab_size=2048,
    spec=TransformerSpec(n_layers=4, d_model=128, n_heads=4, n_ctx=128, d_vocab=2048),
    train=TrainConfig(steps=3000, batch_size=16, lr=1e-3, warmup=100),
)
ATTN_ONLY_2L = LMRecipe(
    name="attn-only-2l",
    max_chars=400_000,
    vocab_size=512,
    spec=TransformerSpec(n_layers=2, d_model=64, n_heads=4, n_ctx=64, d_vocab=512, attn_only=True),
    train=TrainConfig(steps=300, batch_size=16, lr=3e-3, warmup=30),
)


# Example prompts: short Python (the models read 64-128 tokens) whose next token is predictable.
CODE_PROMPTS = (
    "def add(a, b):\n    return a + b\n\nx = add(1, 2)\nprint(x)\n",
    "import os\n\nfor name in os.listdir(path):\n    if name.endswith('.py'):\n        print(",
    "class Stack:\n    def __init__(self):\n        self.items = []\n\n"
    "    def push(self, item):\n        self.",
    "try:\n    value = int(text)\nexcept ValueError:\n    raise",
)


@recipe(
    "code-lm-tiny",
    CODE_LM_TINY,
    "2-layer d64 code LM on 400k chars of stdlib (trains in ~1 min on CPU)",
    prompts=CODE_PROMPTS,
)
def _code_lm_tiny(cfg: LMRecipe):
    return train_lm(cfg)


@recipe(
    "code-lm",
    CODE_LM,
    "4-layer d128 code LM on the whole stdlib, BPE 2048 (~5-8 min on CPU)",
    prompts=CODE_PROMPTS,
)
def _code_lm(cfg: LMRecipe):
    return train_lm(cfg)


@recipe(
    "attn-only-2l",
    ATTN_ONLY_2L,
    "2-layer attention-only code LM (induction heads form here)",
    prompts=CODE_PROMPTS,
)
def _attn_only(cfg: LMRecipe):
    return train_lm(cfg)


CODE_LM_6L = LMRecipe(
    name="code-lm-6l",
    max_chars=None,
    vocab_size=2048,
    spec=TransformerSpec(n_layers=6, d_model=128, n_heads=4, n_ctx=128, d_vocab=2048),
    train=TrainConfig(steps=5000, batch_size=16, lr=1e-3, warmup=100),
)


@recipe(
    "code-lm-6l",
    CODE_LM_6L,
    "6-layer d128 code LM on the whole stdlib, BPE 2048, 5000 steps (~15-25 min on CPU)",
    prompts=CODE_PROMPTS,
)
def _code_lm_6l(cfg: LMRecipe):
    return train_lm(cfg)
