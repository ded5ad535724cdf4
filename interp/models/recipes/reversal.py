"""Zoo recipes of the reversal-curse probes: one transformer per (fact variant, objective,
size, seed), all trained with the shared loop on the same synthetic facts.

Objectives:

- ``clm``: causal LM, next-token cross-entropy on every real token;
- ``mlm15``: masked LM (bidirectional attention), each word masked with probability 0.15
  (at least one per sentence), loss on the masked tokens (BERT-style, always ``<|mask|>``);
- ``mlmu``: masked LM with a masking rate drawn uniformly from (0, 1) per sentence
  (MLM-U, Kitouni et al. 2024), so whole multi-token entities are sometimes masked. Its loss
  weighs every sentence equally, as the paper's objective (the mean over sentences of each
  sentence's mean over its masked tokens): a token mean over the batch would give sentences
  with many masks (high rates) most of the gradient, and the low-rate sentences reverse
  queries resemble about 3x less.

MLM-U trains a **fixed budget** of ``train.steps`` (:class:`BudgetRecipe`: 6,000 steps quick,
24,000 full), evaluated every ``eval_every`` steps: the model answers every training sentence
(the asked entity at the end, filled left to right: the "same direction" accuracy), and the
reverse questions in place and order swapped. The train log keeps each evaluation, so the
analysis reports reverse accuracy against steps. Until 2026-12-07 it stopped when the forward
accuracy plateaued (:class:`PlateauStop`, :class:`ConvergedRecipe`, kept for other uses): both
variants stopped at the 1,500-step floor, while the paper reports backward accuracy still
rising long after forward saturates (a probe here: 0.32 -> 0.82 order-swapped by 6,000 steps).
The causal and 15% models train a fixed number of steps (their forward accuracy is 1.0 well
before the end).

Recipe names: ``reversal-{variant}-{objective}-{size}-s{seed}``; seeds 0..2 are registered
at import, :func:`ensure_recipe` registers any other seed on demand. The recipe's config
holds the :class:`~interp.data.reversal.FactsConfig`, so an analysis regenerates exactly the
facts a model was trained on from ``zoo.get(name).config.facts``.
"""

from __future__ import annotations

import functools
import time
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict

from interp.data.reversal import DIRECTIONS, GROUPS, TRAINED, FactsConfig, FactSet, make_facts
from interp.methods.completion import is_masked, slot_accuracy
from interp.models.train import TrainConfig, lr_at, train
from interp.models.transformer import TransformerSpec, build_transformer
from interp.models.zoo import _RECIPES, recipe, scratch_dir
from interp.tracing.model import Model
from interp.utils import seed_everything

OBJECTIVES = ("clm", "mlm15", "mlmu")
VARIANTS = ("token", "text")
SIZES = ("quick", "full")


class ReversalRecipe(BaseModel):
    """A transformer trained on a synthetic fact set with one objective."""

    model_config = ConfigDict(extra="forbid")

    name: str
    facts: FactsConfig
    objective: Literal["clm", "mlm15", "mlmu"]
    mask_rate: float = 0.15  # used by mlm15 only
    spec: TransformerSpec
    train: TrainConfig
    seed: int = 0


class PlateauStop(BaseModel):
    """Stop when the forward accuracy stops improving (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    eval_every: int = 250
    patience: int = 4  # evaluations looked back on
    min_delta: float = 0.01  # an improvement smaller than this is no improvement
    min_steps: int = 1500


class ConvergedRecipe(ReversalRecipe):
    """A reversal recipe trained until its forward accuracy converges (``train.steps``: the cap).
    A subclass, so that the fixed-step recipes keep their config and their cache key."""

    stop: PlateauStop = PlateauStop()


class BudgetRecipe(ReversalRecipe):
    """A reversal recipe trained exactly ``train.steps`` steps with an evaluation every
    ``eval_every`` steps (forward and reverse accuracies in the train log); ``loss_weighting``
    "sequence" weighs each sentence equally (MLM-U's objective), "token" each masked token."""

    eval_every: int = 250
    loss_weighting: Literal["token", "sequence"] = "sequence"


class Converged(Exception):
    """Raised from the training loop's step hook when the stopping rule says stop."""


def plateaued(history: list[float], stop: PlateauStop) -> bool:
    """Whether the last of ``history`` (forward accuracy per evaluation) is no more than
    ``min_delta`` above the best of the ``patience`` evaluations before it."""
    if len(history) <= stop.patience:
        return False
    return history[-1] - max(history[-1 - stop.patience : -1]) <= stop.min_delta


def fact_accuracies(model, facts: FactSet, tokenizer, batch_size: int = 512) -> dict[str, float]:
    """Exact match of ``model`` (an ``interp.Model``) on the training sentences:
    ``forward_accuracy`` (trained direction, asked entity at the end) and, for a masked
    model, ``reverse_in_place_accuracy`` (one-direction pairs, the other entity masked in its
    trained sentence); ``reverse_order_swapped_accuracy`` (one-direction pairs asked the
    untrained way, asked entity at the end)."""

    def acc(examples) -> float:  # one direction at a time: its targets share one length
        tokens, plen = facts.encode(examples, tokenizer)
        return float(slot_accuracy(model, tokens, plen, len(examples[0].target), batch_size).mean())

    fwd = [
        (acc(ex), len(ex))
        for d in DIRECTIONS
        if (ex := facts.examples(d, "train", [g for g in GROUPS if d in TRAINED[g]]))
    ]
    out = {"forward_accuracy": float(sum(a * n for a, n in fwd) / sum(n for _, n in fwd))}
    for name, ask in (
        ("reverse_in_place_accuracy", facts.examples_in_place),
        ("reverse_order_swapped_accuracy", facts.examples),
    ):
        if name.startswith("reverse_in_place") and not is_masked(model):
            continue  # a causal LM cannot fill a slot before its context
        hits = [
            acc(ask(d, "train", [g])) for d in DIRECTIONS for g in GROUPS if d not in TRAINED[g]
        ]
        out[name] = float(sum(hits) / len(hits))
    return out


def _train_until_converged(
    model, module, batch_fn, loss_fn, cfg: ConvergedRecipe | BudgetRecipe, facts: FactSet, tok
) -> list[dict[str, Any]]:
    """The shared loop with evaluations every ``eval_every`` steps and, for a
    :class:`ConvergedRecipe`, :class:`PlateauStop` (the step hook raises :class:`Converged`);
    the log (loss every ``log_every`` steps, evaluations, the stop) is kept here because the
    loop's own log is lost when it is left early. A :class:`BudgetRecipe` runs to its end."""
    log: list[dict[str, Any]] = []
    history: list[float] = []
    last_loss: dict[str, float] = {}
    stop = getattr(cfg, "stop", None)
    eval_every = stop.eval_every if stop is not None else cfg.eval_every
    t0 = time.time()

    def logged_loss(mod, batch):
        loss = loss_fn(mod, batch)
        last_loss["value"] = loss.item()
        return loss

    def on_step(step: int, mod) -> None:
        last = step == cfg.train.steps - 1
        entry: dict[str, Any] = {
            "step": step,
            "loss": last_loss["value"],
            "lr": lr_at(step, cfg.train),
            "seconds": time.time() - t0,
        }
        evaluate = (step + 1) % eval_every == 0 or last
        if evaluate:
            mod.eval()
            entry.update(fact_accuracies(model, facts, tok))
            mod.train()
            history.append(entry["forward_accuracy"])
        if evaluate or step % cfg.train.log_every == 0:
            log.append(entry)
        if (
            stop is not None
            and evaluate
            and step + 1 >= stop.min_steps
            and plateaued(history, stop)
        ):
            entry["stopped"] = (
                f"forward accuracy plateaued: {history[-1]:.3f}, best of the "
                f"{stop.patience} evaluations before {max(history[-1 - stop.patience : -1]):.3f}"
            )
            raise Converged
        if last:
            what = "cap" if stop is not None else "fixed budget"
            entry["stopped"] = (
                f"{what} of {cfg.train.steps} steps reached (forward accuracy {history[-1]:.3f})"
            )

    ckpt_dir = scratch_dir(cfg.name, cfg)
    try:
        train(
            module,
            batch_fn,
            logged_loss,
            cfg.train,
            checkpoint_dir=ckpt_dir,
            on_step=on_step,
            desc=f"zoo:{cfg.name}",
        )
    except Converged:
        module.eval()
        (ckpt_dir / "train_state.pt").unlink(
            missing_ok=True
        )  # the loop removes it only at its own end
    return log


def training_tensors(facts: FactSet, tokenizer) -> torch.Tensor:
    """All training sentences ``[n, seq_len]`` (BOS first, PAD-padded)."""
    tokens, _ = facts.encode(facts.training_examples(), tokenizer)
    return torch.from_numpy(tokens)


def mask_tokens(
    tokens: torch.Tensor,
    rate: torch.Tensor,
    mask_id: int,
    special_max: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask each word of ``tokens [batch, pos]`` with probability ``rate [batch]``; at least one
    word per row. Returns ``(masked tokens, bool mask [batch, pos])``. Specials (ids <=
    ``special_max``: BOS, PAD, ...) are never masked."""
    words = tokens > special_max  # [batch, pos]
    u = torch.rand(tokens.shape, generator=generator)
    chosen = (u < rate[:, None]) & words
    # guarantee one masked word per row: the word with the smallest draw
    first = torch.where(words, u, torch.full_like(u, 2.0)).argmin(dim=1)  # [batch]
    chosen[torch.arange(len(tokens)), first] = True
    return tokens.masked_fill(chosen, mask_id), chosen


def make_objective(
    objective: str,
    mask_rate: float,
    mask_id: int,
    pad_id: int,
    special_max: int,
    seed: int,
    per_sequence: bool = False,
):
    """``(prepare(tokens, step) -> batch, loss_fn(module, batch))`` for one objective. Masked
    objectives average the loss over masked tokens, or with ``per_sequence`` over sentences
    (each sentence's mean over its own masked tokens; MLM-U's objective)."""

    def prepare(tokens: torch.Tensor, step: int):
        if objective == "clm":
            return tokens, None
        g = torch.Generator().manual_seed(seed * 1_000_003 + step + 17)
        if objective == "mlm15":
            rate = torch.full((len(tokens),), mask_rate)
        else:
            rate = torch.rand(len(tokens), generator=g)
        return mask_tokens(tokens, rate, mask_id, special_max, g) + (tokens,)

    def loss_fn(module: torch.nn.Module, batch) -> torch.Tensor:
        if objective == "clm":
            tokens, _ = batch
            logits = module(tokens)  # [batch, pos, vocab]
            targets = tokens[:, 1:].masked_fill(tokens[:, 1:] == pad_id, -100)
            return F.cross_entropy(
                logits[:, :-1].reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100
            )
        masked, chosen, tokens = batch
        logits = module(masked)  # [batch, pos, vocab]
        targets = tokens.masked_fill(~chosen, -100)
        if not per_sequence:
            return F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100
            )
        ce = F.cross_entropy(
            logits.transpose(1, 2), targets, ignore_index=-100, reduction="none"
        )  # [batch, pos]
        n = chosen.sum(1)  # >= 1: mask_tokens masks at least one word per sentence
        return (ce.sum(1) / n.clamp_min(1)).mean()

    return prepare, loss_fn


def train_reversal(cfg: ReversalRecipe):
    """Build the fact set and the transformer of ``cfg``, train it; return an ``interp.Model``."""
    seed_everything(cfg.seed)
    facts = make_facts(cfg.facts)
    tok = facts.tokenizer()
    attention = "causal" if cfg.objective == "clm" else "bidirectional"
    spec = cfg.spec.model_copy(
        update={
            "d_vocab": len(tok),
            "n_ctx": max(cfg.spec.n_ctx, facts.seq_len),
            "attention_dir": attention,
            "init_seed": cfg.seed,
        }
    )
    bridge = build_transformer(spec, tokenizer=tok)
    data = training_tensors(facts, tok)
    per_sequence = isinstance(cfg, BudgetRecipe) and cfg.loss_weighting == "sequence"
    prepare, loss_fn = make_objective(
        cfg.objective,
        cfg.mask_rate,
        tok.mask_token_id,
        tok.pad_token_id,
        special_max=4,
        seed=cfg.seed,
        per_sequence=per_sequence,
    )

    def batch_fn(step: int):
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        idx = torch.randint(0, len(data), (cfg.train.batch_size,), generator=g)
        return prepare(data[idx], step)

    model = Model(
        bridge,
        backend="tl",
        tokenizer=tok,
        model_id=f"zoo:{cfg.name}",
        kind="transformer",
        spec={"builder": "transformer", "spec": spec.model_dump(mode="json")},
    )
    if isinstance(cfg, (ConvergedRecipe, BudgetRecipe)):
        log = _train_until_converged(
            model, bridge.original_model, batch_fn, loss_fn, cfg, facts, tok
        )
    else:
        log = train(
            bridge.original_model,
            batch_fn,
            loss_fn,
            cfg.train,
            checkpoint_dir=scratch_dir(cfg.name, cfg),
            desc=f"zoo:{cfg.name}",
        )
    model.train_log = log
    return model


# Sizes: "quick" fits the whole quick preset (6 models) in minutes on a CPU; "full" is the
# paper-scale setting (30 training + 10 held-out paraphrases per pair and direction).
_FACTS = {
    "quick": dict(n_pairs=36, n_train_templates=8, n_heldout_templates=3),
    "full": dict(n_pairs=99, n_train_templates=30, n_heldout_templates=10),
}
_SPEC = {
    "quick": TransformerSpec(n_layers=2, d_model=64, n_heads=4, n_ctx=16, d_vocab=512),
    "full": TransformerSpec(n_layers=4, d_model=128, n_heads=4, n_ctx=16, d_vocab=512),
}
_BATCH = {"quick": 32, "full": 64}
_STEPS = {  # (clm steps, masked-LM steps): masked objectives see each fact's slots less often
    "quick": (500, 1500),
    "full": (4000, 8000),
}
_MLMU_BUDGET = {"quick": 6000, "full": 24000}  # MLM-U: fixed steps (4x / 3x the masked-LM steps)


def recipe_name(variant: str, objective: str, size: str, seed: int) -> str:
    return f"reversal-{variant}-{objective}-{size}-s{seed}"


def recipe_config(variant: str, objective: str, size: str, seed: int) -> ReversalRecipe:
    """The recipe config of one reversal model (facts seed 0 always: seeds vary the model only)."""
    if variant not in VARIANTS or objective not in OBJECTIVES or size not in SIZES:
        raise ValueError(
            f"unknown reversal model {variant}/{objective}/{size}: variants {VARIANTS}, "
            f"objectives {OBJECTIVES}, sizes {SIZES}"
        )
    steps = _STEPS[size][0 if objective == "clm" else 1]
    if (
        objective == "mlmu"
    ):  # a fixed budget with evaluations along the way (reverse accuracy vs steps)
        return BudgetRecipe(
            name=recipe_name(variant, objective, size, seed),
            facts=FactsConfig(variant=variant, seed=0, **_FACTS[size]),
            objective=objective,
            spec=_SPEC[size],
            train=TrainConfig(
                steps=_MLMU_BUDGET[size],
                batch_size=_BATCH[size],
                lr=3e-3 if size == "quick" else 2e-3,
                warmup=50 if size == "quick" else 200,
                weight_decay=0.01,
                log_every=100,
                checkpoint_every=500,
            ),
            eval_every=250,
            loss_weighting="sequence",
            seed=seed,
        )
    return ReversalRecipe(
        name=recipe_name(variant, objective, size, seed),
        facts=FactsConfig(variant=variant, seed=0, **_FACTS[size]),
        objective=objective,
        spec=_SPEC[size],
        train=TrainConfig(
            steps=steps,
            batch_size=_BATCH[size],
            lr=3e-3 if size == "quick" else 2e-3,
            warmup=50 if size == "quick" else 200,
            weight_decay=0.01,
            log_every=100,
            checkpoint_every=500,
        ),
        seed=seed,
    )


def _build(cfg: ReversalRecipe):
    return train_reversal(cfg)


@functools.cache
def _questions(facts_json: str) -> tuple[str, ...]:
    return tuple(q for q, _ in example_questions(FactsConfig.model_validate_json(facts_json)))


def example_questions(facts_cfg: FactsConfig) -> list[tuple[str, str]]:
    """``(prompt, what it asks)`` for one fact of each kind: asked in its trained direction
    first, then reversed (never trained), on the first training template."""
    facts = make_facts(facts_cfg)
    out = []
    for group, direction in (
        ("name_first", "d2n"),
        ("name_first", "n2d"),
        ("desc_first", "n2d"),
        ("both", "d2n"),
    ):
        e = facts.example(facts.group_pairs(group)[0], facts.templates_of(direction, "train")[0])
        kind = "trained direction" if direction in TRAINED[group] else "reversed, never trained"
        out.append((" ".join(e.prompt), f"{group} fact, {kind}; answer: {' '.join(e.target)}"))
    return sorted(out, key=lambda qa: "never" in qa[1])  # trained directions first


def ensure_recipe(variant: str, objective: str, size: str, seed: int) -> str:
    """Register the recipe of one reversal model if it is not yet; return its zoo name."""
    name = recipe_name(variant, objective, size, seed)
    if name not in _RECIPES:
        cfg = recipe_config(variant, objective, size, seed)
        recipe(
            name,
            cfg,
            f"reversal-curse {objective} on {variant}-level facts ({size}, seed {seed})",
            prompts=_questions(cfg.facts.model_dump_json()),
        )(_build)
    return name


for _size in SIZES:
    for _variant in VARIANTS:
        for _objective in OBJECTIVES:
            for _seed in range(3):
                ensure_recipe(_variant, _objective, _size, _seed)
