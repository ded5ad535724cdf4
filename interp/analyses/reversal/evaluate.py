"""Load (or train) each model of the run and measure it: exact match in both directions,
correct vs random log-probs, and linear probes on the residual stream."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

import interp
from interp.analyses.reversal.config import PROBE_KINDS, Config
from interp.analyses.reversal.types import (
    Evaluations,
    FactModel,
    ModelEval,
    ModelRow,
    TrainingSummary,
)
from interp.data.reversal import (
    DIRECTIONS,
    GROUPS,
    SPLITS,
    TRAINED,
    Example,
    FactsConfig,
    FactSet,
    Pair,
    make_facts,
)
from interp.methods.completion import is_masked, query_residuals, slot_accuracy, target_logprob
from interp.methods.probes import fit_ridge, nearest_candidate_accuracy
from interp.models import zoo
from interp.models.io import MODEL_FILE
from interp.models.recipes.reversal import ensure_recipe
from interp.tracing.model import Model
from interp.utils import read_json

log = logging.getLogger(__name__)


def load_fact_model(name: str, device: Any = "auto") -> tuple[Model, dict, str]:
    """``(interp.Model, recipe config dict, directory)`` of a zoo name or a model directory
    whose ``interp_model.json`` holds ``recipe_config`` (as the zoo writes it)."""
    m = interp.load_model(name, device=device)
    path = str(zoo.get(name[4:]).path) if name.startswith("zoo:") else name
    meta = read_json(f"{path}/{MODEL_FILE}")
    if "recipe_config" not in meta or "facts" not in meta["recipe_config"]:
        raise ValueError(
            f"{name} was not trained by a reversal recipe (no recipe_config.facts in {MODEL_FILE})"
        )
    return m, meta["recipe_config"], path


def probe_accuracy(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    test_ids: np.ndarray,
    candidates: np.ndarray,
    l2: float,
) -> float:
    """Fit a ridge probe ``x -> target vector`` (:func:`interp.methods.probes.fit_ridge`: penalty
    ``l2`` times the mean feature variance, unpenalised intercept) and return the fraction of
    test rows whose prediction is nearest (cosine) to their own entity's vector among
    ``candidates [c, k]`` (``test_ids`` index rows of ``candidates``)."""
    return nearest_candidate_accuracy(fit_ridge(x_train, y_train, l2), x_test, test_ids, candidates)


def _accuracy_by_group(m: Model, facts: FactSet, ex: list[Example], batch_size: int) -> np.ndarray:
    """Exact match ``[group]`` of the slot of each example (any slot position)."""
    tokens, plen = facts.encode(ex, m.tokenizer)
    hit = slot_accuracy(m, tokens, plen, len(ex[0].target), batch_size)
    groups = np.array([e.group for e in ex])
    return np.array([hit[groups == g].mean() for g in GROUPS])


def _logprobs(
    m: Model, facts: FactSet, ex: list[Example], d: str, split: str, cfg: Config, rng
) -> tuple[np.ndarray, np.ndarray]:
    """Per pair ``[pairs]``: the mean log-prob of the correct target and of ``n_random`` other
    targets of the same group, over the first ``logprob_templates`` templates of ``split``."""
    first = {t.index for t in facts.templates_of(d, split)[: cfg.logprob_templates]}
    ex_lp = [e for e in ex if e.template in first]
    tokens, plen = facts.encode(ex_lp, m.tokenizer)
    cands = []
    for e in ex_lp:
        same = [p for p in facts.group_pairs(e.group) if p.index != e.pair]
        pick = rng.choice(len(same), size=min(cfg.n_random, len(same)), replace=False)
        ids = [facts.pairs[e.pair]] + [same[i] for i in pick]
        cands.append(facts.target_ids(ids, d, m.tokenizer))
    lp = target_logprob(m, tokens, plen, np.stack(cands), cfg.batch_size)  # [n, 1+K]
    pair_ids = np.array([e.pair for e in ex_lp])
    n_pairs = len(facts.pairs)
    correct, random = np.full(n_pairs, np.nan), np.full(n_pairs, np.nan)
    for p in range(n_pairs):
        rows = pair_ids == p
        correct[p], random[p] = lp[rows, 0].mean(), lp[rows, 1:].mean()
    return correct, random


def evaluate_model(fm: FactModel, cfg: Config, rng: np.random.Generator) -> ModelEval:
    """Accuracy, log-probs and probes of one model (see the package docstring)."""
    m, facts = fm.model, fm.facts
    n_pairs = len(facts.pairs)
    acc = np.full((len(DIRECTIONS), len(GROUPS), len(SPLITS)), np.nan)
    # NaN for causal models: they cannot fill a slot before its context
    acc_in_place = np.full_like(acc, np.nan)
    lp_correct = np.full((len(DIRECTIONS), len(SPLITS), n_pairs), np.nan)
    lp_random = np.full((len(DIRECTIONS), len(SPLITS), n_pairs), np.nan)
    for di, d in enumerate(DIRECTIONS):
        for si, split in enumerate(SPLITS):
            ex = facts.examples(d, split)
            acc[di, :, si] = _accuracy_by_group(m, facts, ex, cfg.batch_size)
            if is_masked(m):
                acc_in_place[di, :, si] = _accuracy_by_group(
                    m, facts, facts.examples_in_place(d, split), cfg.batch_size
                )
            # log-prob: correct vs n_random other targets of the same group, first templates
            lp_correct[di, si], lp_random[di, si] = _logprobs(m, facts, ex, d, split, cfg, rng)
    probe = probe_model(m, facts, cfg, rng)
    return ModelEval(acc, acc_in_place, lp_correct, lp_random, probe)


def _probe_direction(
    m: Model, facts: FactSet, d: str, W_U: np.ndarray, cfg: Config, rng: np.random.Generator
) -> np.ndarray:
    """Probe accuracy ``[kind, layer+1]`` in direction ``d`` (see :func:`probe_model`)."""
    tok = m.tokenizer
    out = np.zeros((len(PROBE_KINDS), m.n_layers + 1))
    trained = [p for p in facts.pairs if d in TRAINED[p.group]]
    untrained = [p for p in facts.pairs if d not in TRAINED[p.group]]
    order = rng.permutation(len(trained))
    folds = [
        [trained[i] for i in order[: len(order) // 2]],
        [trained[i] for i in order[len(order) // 2 :]],
    ]
    ex = facts.examples(d, "train")
    tokens, plen = facts.encode(ex, tok)
    T = len(ex[0].target)
    feats = query_residuals(m, tokens, plen, T, cfg.batch_size)  # [layer+1, n, d_model]
    pair_ids = np.array([e.pair for e in ex])
    target_vec = W_U[:, facts.target_ids(facts.pairs, d, tok)].mean(-1).T  # [n_pairs, d_model]

    def rows_of(pairs: list[Pair]) -> np.ndarray:
        return np.isin(pair_ids, [p.index for p in pairs])

    def ids_among(pairs: list[Pair], rows: np.ndarray) -> np.ndarray:
        pos = {p.index: i for i, p in enumerate(pairs)}
        return np.array([pos[i] for i in pair_ids[rows]])

    for a, b in ((0, 1), (1, 0)):
        tr = rows_of(folds[a])
        for kind, test_pairs in enumerate((folds[b], untrained)):
            te = rows_of(test_pairs)
            cand = target_vec[[p.index for p in test_pairs]]
            for layer in range(m.n_layers + 1):
                out[kind, layer] += 0.5 * probe_accuracy(
                    feats[layer][tr],
                    target_vec[pair_ids[tr]],
                    feats[layer][te],
                    ids_among(test_pairs, te),
                    cand,
                    cfg.probe_l2,
                )
    return out


def probe_model(m: Model, facts: FactSet, cfg: Config, rng: np.random.Generator) -> np.ndarray:
    """Probe accuracy ``[direction, kind, layer+1]`` (kind: trained / untrained entities).

    For direction d the groups trained in d are split in two folds of entities; a probe
    trained on one fold (training templates) is tested on the other fold ("trained") and on
    the group never trained in d ("untrained"), each among its own group's targets; the
    two folds swap roles and the accuracies are averaged."""
    W_U = m.module.W_U.detach().float().cpu().numpy()  # [d_model, vocab]
    return np.stack([_probe_direction(m, facts, d, W_U, cfg, rng) for d in DIRECTIONS])


def model_names(cfg: Config) -> list[tuple[str, str, int, str]]:
    """``(variant, objective, seed, model name)`` for every model of the run."""
    out = []
    for variant in cfg.variants:
        for objective in cfg.objectives:
            for k in range(cfg.n_seeds):
                seed = cfg.seed + k
                if cfg.model.startswith("zoo:reversal-"):
                    ensure_recipe(variant, objective, cfg.size, seed)
                name = cfg.model.format(
                    variant=variant, objective=objective, size=cfg.size, seed=seed
                )
                out.append((variant, objective, seed, name))
    return out


def training_summary(path: str) -> TrainingSummary:
    """What the train log of the model at ``path`` says about its end: steps trained, why it
    stopped and its last forward accuracy (recipes trained until convergence log them)."""
    log_ = read_json(f"{path}/{MODEL_FILE}").get("train_log") or []
    evals = [e for e in log_ if "forward_accuracy" in e]
    keys = ("forward_accuracy", "reverse_order_swapped_accuracy", "reverse_in_place_accuracy")
    return TrainingSummary(
        train_steps=(log_[-1]["step"] + 1) if log_ else None,
        train_forward_accuracy=evals[-1]["forward_accuracy"] if evals else None,
        train_stopped=log_[-1].get("stopped") if log_ else None,
        # accuracy on the training sentences against steps (recipes that evaluate while training)
        accuracy_vs_steps=[
            {"step": e["step"] + 1, **{k: e[k] for k in keys if k in e}} for e in evals
        ],
    )


def _checked_facts(
    name: str, rcfg: dict, variant: str, objective: str, m: Model, facts_of: dict
) -> FactSet:
    """The model's fact set, after checking it was trained as named and on the same facts as
    the other models of its variant."""
    if rcfg.get("objective", objective) != objective or rcfg["facts"]["variant"] != variant:
        raise ValueError(
            f"{name} was trained as {rcfg.get('objective')} on {rcfg['facts']['variant']} "
            f"facts, expected {objective} on {variant}"
        )
    facts = make_facts(FactsConfig(**rcfg["facts"]))
    if variant in facts_of and facts_of[variant].config != facts.config:
        raise ValueError(f"models of variant {variant} were trained on different fact sets")
    if is_masked(m) != (objective != "clm"):
        raise ValueError(f"{name}: objective {objective} but attention_dir={m.cfg.attention_dir}")
    return facts


def evaluate_models(config: Config, rng: np.random.Generator) -> Evaluations:
    """Load (or train) every model of the run and evaluate it: the evaluations by (variant,
    objective, seed), the fact set of each variant, one row per model."""
    evals: dict[tuple[str, str, int], ModelEval] = {}
    facts_of: dict[str, FactSet] = {}
    rows = []
    for variant, objective, seed, name in model_names(config):
        log.info("model %s (%s, %s, seed %d): loading or training", name, variant, objective, seed)
        m, rcfg, path = load_fact_model(name, config.device)
        facts = _checked_facts(name, rcfg, variant, objective, m, facts_of)
        facts_of[variant] = facts
        log.info("evaluating %s", name)
        fm = FactModel(variant, objective, seed, name, path, m, facts)
        evals[(variant, objective, seed)] = evaluate_model(fm, config, rng)
        row = ModelRow(variant, objective, seed, name, path, m.n_layers, training_summary(path))
        rows.append(row)
    return Evaluations(evals, facts_of, rows)
