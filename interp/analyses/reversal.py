"""Reversal-curse probes: causal vs masked LMs on synthetic facts (Berglund et al. 2023;
Kitouni et al. 2024 for MLM-U).

Models trained on "A is B" facts (zoo recipes in :mod:`interp.models.recipes.reversal`:
a causal LM, a masked LM at a fixed 15% rate and MLM-U with a uniform masking rate, on
token-level and text-level facts, several seeds) are asked each fact in both directions.

Measures, per model, direction (``n2d``: name given, description asked; ``d2n``: the
reverse), group (trained ``name_first``, ``desc_first`` or ``both``) and template split
(training templates vs held-out paraphrases, kept apart so that paraphrase failure is
not mistaken for reversal failure):

- exact match of the completion (:mod:`interp.methods.completion`): greedy for causal
  models; for masked models the slot of the target's length is filled with ``<|mask|>``
  and filled **left to right**, one token per forward (argmax at the leftmost masked slot,
  which is then revealed). The reverse question is asked two ways: **order swapped** (the
  asked entity ends a sentence of the never-trained order, ``accuracy``) and, for masked
  models, **in place** (the asked entity masked inside its trained sentence,
  ``accuracy_in_place``). Failing order swapped but not in place is a failure to transfer
  the fact to a new sentence order, not the factorization curse (a model that cannot
  predict an earlier entity from a later one fails both);
- the log-probability of the correct target vs ``n_random`` random targets of the same
  group (causal: teacher forcing; masked: the same left-to-right chain rule). "No
  difference" is an equivalence test: TOST (two one-sided t-tests, scipy) of the per-pair
  differences against ``+-equivalence_margin`` nats, with the matching 90% confidence
  interval; a Wilcoxon signed-rank p (difference or not) is reported beside it;
- linear probes on the residual stream (``m.resid_names()``: the embedding, then each
  block's output) at the query position (the last prompt position
  for causal models, the first masked slot for masked ones). A ridge probe regresses the
  mean unembedding vector of the target's tokens; it is trained on entities whose facts
  were trained in that direction and tested, by nearest target among the group, on
  held-out entities trained in that direction vs the group never trained in it. Training
  on other entities keeps the probe from memorising the name <-> description map itself.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from interp.analyses import register
from interp.data.reversal import DIRECTIONS, GROUPS, OBJECTIVE_NAMES, SPLITS, TRAINED, FactSet  # noqa: F401 (OBJECTIVE_NAMES: for the dashboard)
from interp.fields import Count, Device, ModelName, NonNegFloat, Seed
from interp.methods.completion import (  # noqa: F401 (re-exported: the explorer and tests use them from here)
    complete,
    is_masked,
    query_residuals,
    slot_accuracy,
    target_logprob,
    top_completions,
)
from interp.results import Result

log = logging.getLogger(__name__)

PROBE_KINDS = (
    "trained",
    "untrained",
)  # probe tested on entities trained / never trained in that direction


class Config(BaseModel):
    """Settings of the reversal-curse probes."""

    model_config = ConfigDict(extra="forbid")

    # A zoo name or directory pattern with {variant}, {objective}, {size} and {seed} fields.
    model: ModelName = "zoo:reversal-{variant}-{objective}-{size}-s{seed}"
    size: Literal["quick", "full"] = "quick"
    variants: list[Literal["token", "text"]] = Field(default_factory=lambda: ["token", "text"])
    objectives: list[Literal["clm", "mlm15", "mlmu"]] = Field(
        default_factory=lambda: ["clm", "mlm15", "mlmu"]
    )
    n_seeds: Count = 1  # model seeds: seed, seed+1, ..., seed+n_seeds-1
    n_random: Count = 5  # random same-group targets per fact in the log-prob test
    # "no difference" of correct vs random log-probs: the mean difference lies within +-margin nats
    # (ln 2: the correct target, on average, less than twice as likely as a random one, or half)
    equivalence_margin: NonNegFloat = math.log(2)
    mlm15_gap_max: NonNegFloat = (
        0.1  # "no forward/backward gap" for the 15% masked LM: |forward - reverse in place|
    )
    same_direction_min: NonNegFloat = (
        0.9  # a model's reverse accuracy is read only above this forward accuracy
    )
    logprob_templates: Count = (
        3  # templates per split scored by log-prob (all are scored by accuracy)
    )
    probe_l2: NonNegFloat = 1e-2  # ridge penalty, relative to the mean feature variance
    batch_size: Count = 512
    device: Device = "auto"
    seed: Seed = 0


# ----------------------------------------------------------------------- models
@dataclass
class FactModel:
    """A trained model with the facts and objective it was trained on."""

    variant: str
    objective: str
    seed: int
    name: str
    path: str
    model: Any
    facts: FactSet


def load_fact_model(name: str, device: Any = "auto") -> tuple[Any, dict, str]:
    """``(interp.Model, recipe config dict, directory)`` of a zoo name or a model directory
    whose ``interp_model.json`` holds ``recipe_config`` (as the zoo writes it)."""
    import interp
    from interp.models.io import MODEL_FILE
    from interp.utils import read_json

    m = interp.load_model(name, device=device)
    if name.startswith("zoo:"):
        from interp.models import zoo

        path = str(zoo.get(name[4:]).path)
    else:
        path = name
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
    from interp.methods.probes import fit_ridge, nearest_candidate_accuracy

    return nearest_candidate_accuracy(fit_ridge(x_train, y_train, l2), x_test, test_ids, candidates)


# ----------------------------------------------------------------------- one model
def evaluate_model(fm: FactModel, cfg: Config, rng: np.random.Generator) -> dict[str, Any]:
    """Accuracy, log-probs and probes of one model (see the module docstring)."""
    m, facts = fm.model, fm.facts
    tok = m.tokenizer
    n_pairs = len(facts.pairs)
    acc = np.full((len(DIRECTIONS), len(GROUPS), len(SPLITS)), np.nan)
    acc_in_place = np.full_like(
        acc, np.nan
    )  # NaN for causal models: they cannot fill a slot before its context
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
            # log-prob: correct vs n_random other targets of the same group, first templates only
            ex_lp = [
                e
                for e in ex
                if e.template
                in {t.index for t in facts.templates_of(d, split)[: cfg.logprob_templates]}
            ]
            tokens, plen = facts.encode(ex_lp, tok)
            cands = []
            for e in ex_lp:
                same = [p for p in facts.group_pairs(e.group) if p.index != e.pair]
                pick = rng.choice(len(same), size=min(cfg.n_random, len(same)), replace=False)
                ids = [facts.pairs[e.pair]] + [same[i] for i in pick]
                cands.append(facts.target_ids(ids, d, tok))
            lp = target_logprob(m, tokens, plen, np.stack(cands), cfg.batch_size)  # [n, 1+K]
            pair_ids = np.array([e.pair for e in ex_lp])
            for p in range(n_pairs):
                rows = pair_ids == p
                lp_correct[di, si, p] = lp[rows, 0].mean()
                lp_random[di, si, p] = lp[rows, 1:].mean()
    probe = probe_model(m, facts, cfg, rng)
    return {
        "accuracy": acc,
        "accuracy_in_place": acc_in_place,
        "lp_correct": lp_correct,
        "lp_random": lp_random,
        "probe": probe,
    }


def _accuracy_by_group(m, facts: FactSet, ex: list, batch_size: int) -> np.ndarray:
    """Exact match ``[group]`` of the slot of each example (any slot position)."""
    tokens, plen = facts.encode(ex, m.tokenizer)
    hit = slot_accuracy(m, tokens, plen, len(ex[0].target), batch_size)
    groups = np.array([e.group for e in ex])
    return np.array([hit[groups == g].mean() for g in GROUPS])


def probe_model(m, facts: FactSet, cfg: Config, rng: np.random.Generator) -> np.ndarray:
    """Probe accuracy ``[direction, kind, layer+1]`` (kind: trained / untrained entities).

    For direction d the groups trained in d are split in two folds of entities; a probe
    trained on one fold (training templates) is tested on the other fold ("trained") and on
    the group never trained in d ("untrained"), each among its own group's targets; the
    two folds swap roles and the accuracies are averaged."""
    tok = m.tokenizer
    W_U = m.module.W_U.detach().float().cpu().numpy()  # [d_model, vocab]
    out = np.zeros((len(DIRECTIONS), len(PROBE_KINDS), m.n_layers + 1))
    for di, d in enumerate(DIRECTIONS):
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

        def rows_of(pairs):
            return np.isin(pair_ids, [p.index for p in pairs])

        def ids_among(pairs, rows):
            pos = {p.index: i for i, p in enumerate(pairs)}
            return np.array([pos[i] for i in pair_ids[rows]])

        for a, b in ((0, 1), (1, 0)):
            tr = rows_of(folds[a])
            for kind, test_pairs in enumerate((folds[b], untrained)):
                te = rows_of(test_pairs)
                cand = target_vec[[p.index for p in test_pairs]]
                for layer in range(m.n_layers + 1):
                    out[di, kind, layer] += 0.5 * probe_accuracy(
                        feats[layer][tr],
                        target_vec[pair_ids[tr]],
                        feats[layer][te],
                        ids_among(test_pairs, te),
                        cand,
                        cfg.probe_l2,
                    )
    return out


# ----------------------------------------------------------------------- the run
def model_names(cfg: Config) -> list[tuple[str, str, int, str]]:
    """``(variant, objective, seed, model name)`` for every model of the run."""
    out = []
    for variant in cfg.variants:
        for objective in cfg.objectives:
            for k in range(cfg.n_seeds):
                seed = cfg.seed + k
                if cfg.model.startswith("zoo:reversal-"):
                    from interp.models.recipes.reversal import ensure_recipe

                    ensure_recipe(variant, objective, cfg.size, seed)
                name = cfg.model.format(
                    variant=variant, objective=objective, size=cfg.size, seed=seed
                )
                out.append((variant, objective, seed, name))
    return out


def _same_direction(acc: np.ndarray, split: int) -> np.ndarray:
    """Mean accuracy over (group, direction) cells trained in that direction; acc [..., D, G, S]."""
    cells = [
        (di, gi)
        for gi, g in enumerate(GROUPS)
        for di, d in enumerate(DIRECTIONS)
        if d in TRAINED[g]
    ]
    return np.mean([acc[..., di, gi, split] for di, gi in cells], axis=0)


def _reverse(acc: np.ndarray, split: int) -> np.ndarray:
    """Mean accuracy over the one-direction groups asked in their untrained direction."""
    cells = [
        (di, gi)
        for gi, g in enumerate(GROUPS)
        for di, d in enumerate(DIRECTIONS)
        if d not in TRAINED[g]
    ]
    return np.mean([acc[..., di, gi, split] for di, gi in cells], axis=0)


def reverse_logprob_test(
    lp_correct: np.ndarray, lp_random: np.ndarray, facts: FactSet, margin: float
) -> dict[str, float]:
    """Correct vs random log-probs in the untrained direction (training templates), one paired
    difference per one-direction pair, averaged over seeds (``lp_*``: ``[seed, direction,
    split, pair]``): :func:`equivalence_test` within ``+-margin`` and a Wilcoxon p."""
    from scipy.stats import wilcoxon

    diffs = []
    for di, d in enumerate(DIRECTIONS):
        for p in facts.pairs:
            if d not in TRAINED[p.group]:
                diffs.append(np.mean(lp_correct[:, di, 0, p.index] - lp_random[:, di, 0, p.index]))
    diffs = np.asarray(diffs)
    out = equivalence_test(diffs, margin)
    out["p"] = 1.0 if np.allclose(diffs, 0) else float(wilcoxon(diffs).pvalue)
    out.update(above_random_test(diffs))
    return out


def above_random_test(
    diffs: np.ndarray, alpha: float = 0.05, power: float = 0.8
) -> dict[str, float]:
    """Berglund et al.'s test: is the log-prob of the correct target higher than that of random
    ones? A one-sided paired t-test of the per-pair differences (H0: mean <= 0); the reversal
    curse holds when it is not significant. Returns ``p_above`` (the one-sided p), ``ci95`` (the
    two-sided 95% t interval of the mean difference) and ``detectable_nats``: the smallest true
    mean difference the test would find with probability ``power`` at ``alpha``, given n and the
    observed spread, so that "not significant" comes with a stated power."""
    from scipy import stats

    diffs = np.asarray(diffs, dtype=np.float64)
    n, mean = len(diffs), float(diffs.mean())
    if n < 2 or np.ptp(diffs) == 0:
        p = 0.0 if mean > 0 else 1.0
        return {"p_above": p, "ci95": [mean, mean], "detectable_nats": 0.0}
    se = float(stats.sem(diffs))
    p = float(stats.ttest_1samp(diffs, 0.0, alternative="greater").pvalue)
    lo, hi = stats.t.interval(0.95, n - 1, loc=mean, scale=se)
    detectable = (stats.t.ppf(1 - alpha, n - 1) + stats.t.ppf(power, n - 1)) * se
    return {"p_above": p, "ci95": [float(lo), float(hi)], "detectable_nats": float(detectable)}


def equivalence_test(diffs: np.ndarray, margin: float, alpha: float = 0.05) -> dict[str, float]:
    """TOST: two one-sided one-sample t-tests (:func:`scipy.stats.ttest_1samp`) of H0 "mean
    <= -margin" and H0 "mean >= +margin"; ``p_equivalence`` is the larger p, so p < alpha
    means the mean lies within the margin. ``ci_low, ci_high``: the matching (1 - 2 alpha)
    t confidence interval (inside the margin exactly when p < alpha). Identical differences
    (no spread) are equivalent iff they lie strictly inside the margin."""
    from scipy import stats

    diffs = np.asarray(diffs, dtype=np.float64)
    mean, n = float(diffs.mean()), len(diffs)
    if np.ptp(diffs) == 0:
        p, low, high = (0.0 if abs(mean) < margin else 1.0), mean, mean
    else:
        p = max(
            float(stats.ttest_1samp(diffs, -margin, alternative="greater").pvalue),
            float(stats.ttest_1samp(diffs, margin, alternative="less").pvalue),
        )
        low, high = stats.t.interval(1 - 2 * alpha, n - 1, loc=mean, scale=stats.sem(diffs))
    return {
        "p_equivalence": p,
        "ci_low": float(low),
        "ci_high": float(high),
        "ci_level": 1 - 2 * alpha,
        "margin": float(margin),
        "mean_diff": mean,
        "n": n,
    }


def evaluate_models(
    config: Config, rng: np.random.Generator
) -> tuple[dict, dict[str, FactSet], list[dict]]:
    """Load (or train) every model of the run and evaluate it: ``(evals by (variant,
    objective, seed), the fact set of each variant, one row per model)``."""
    from interp.data.reversal import FactsConfig, make_facts

    evals: dict[tuple[str, str, int], dict] = {}
    facts_of: dict[str, FactSet] = {}
    models_meta = []
    for variant, objective, seed, name in model_names(config):
        log.info("model %s (%s, %s, seed %d): loading or training", name, variant, objective, seed)
        m, rcfg, path = load_fact_model(name, config.device)
        if rcfg.get("objective", objective) != objective or rcfg["facts"]["variant"] != variant:
            raise ValueError(
                f"{name} was trained as {rcfg.get('objective')} on {rcfg['facts']['variant']} facts, "
                f"expected {objective} on {variant}"
            )
        facts = make_facts(FactsConfig(**rcfg["facts"]))
        if variant in facts_of and facts_of[variant].config != facts.config:
            raise ValueError(f"models of variant {variant} were trained on different fact sets")
        facts_of[variant] = facts
        if is_masked(m) != (objective != "clm"):
            raise ValueError(
                f"{name}: objective {objective} but attention_dir={m.cfg.attention_dir}"
            )
        log.info("evaluating %s", name)
        evals[(variant, objective, seed)] = evaluate_model(
            FactModel(variant, objective, seed, name, path, m, facts), config, rng
        )
        models_meta.append(
            {
                "variant": variant,
                "objective": objective,
                "seed": seed,
                "name": name,
                "path": path,
                "n_layers": m.n_layers,
                **training_summary(path),
            }
        )
    return evals, facts_of, models_meta


def training_summary(path: str) -> dict[str, Any]:
    """What the train log of the model at ``path`` says about its end: steps trained, why it
    stopped and its last forward accuracy (recipes trained until convergence log them)."""
    from interp.models.io import MODEL_FILE
    from interp.utils import read_json

    log_ = read_json(f"{path}/{MODEL_FILE}").get("train_log") or []
    evals = [e for e in log_ if "forward_accuracy" in e]
    keys = ("forward_accuracy", "reverse_order_swapped_accuracy", "reverse_in_place_accuracy")
    return {
        "train_steps": (log_[-1]["step"] + 1) if log_ else None,
        "train_forward_accuracy": evals[-1]["forward_accuracy"] if evals else None,
        "train_stopped": log_[-1].get("stopped") if log_ else None,
        # accuracy on the training sentences against steps (recipes that evaluate while training)
        "accuracy_vs_steps": [
            {"step": e["step"] + 1, **{k: e[k] for k in keys if k in e}} for e in evals
        ],
    }


def stack_arrays(
    config: Config, evals: dict, facts_of: dict[str, FactSet], n_layers: int
) -> dict[str, np.ndarray]:
    """The run's arrays: ``accuracy`` and ``accuracy_in_place`` ``[variant, objective, seed,
    direction, group, split]`` (in place: NaN for causal models),
    ``probe_accuracy [variant, objective, seed, direction, kind, layer+1]`` and, per variant,
    ``logprob_correct_* / logprob_random_* [objective, seed, direction, split, pair]`` and
    ``pair_group_* [pair]``."""
    V, O, S = len(config.variants), len(config.objectives), config.n_seeds
    arrays = {}
    acc = np.full((V, O, S, len(DIRECTIONS), len(GROUPS), len(SPLITS)), np.nan)
    acc_in_place = np.full_like(acc, np.nan)
    probe = np.full((V, O, S, len(DIRECTIONS), len(PROBE_KINDS), n_layers + 1), np.nan)
    for vi, variant in enumerate(config.variants):
        n_pairs = len(facts_of[variant].pairs)
        lp_c = np.full((O, S, len(DIRECTIONS), len(SPLITS), n_pairs), np.nan)
        lp_r = np.full_like(lp_c, np.nan)
        for oi, objective in enumerate(config.objectives):
            for k in range(S):
                e = evals[(variant, objective, config.seed + k)]
                acc[vi, oi, k] = e["accuracy"]
                acc_in_place[vi, oi, k] = e["accuracy_in_place"]
                probe[vi, oi, k, :, :, : e["probe"].shape[-1]] = e["probe"]
                lp_c[oi, k], lp_r[oi, k] = e["lp_correct"], e["lp_random"]
        arrays[f"logprob_correct_{variant}"] = lp_c
        arrays[f"logprob_random_{variant}"] = lp_r
        arrays[f"pair_group_{variant}"] = np.array(
            [GROUPS.index(p.group) for p in facts_of[variant].pairs]
        )
    arrays["accuracy"] = acc
    arrays["accuracy_in_place"] = acc_in_place
    arrays["probe_accuracy"] = probe
    return arrays


def summarise(
    config: Config, arrays: dict[str, np.ndarray], facts_of: dict[str, FactSet]
) -> dict[str, dict]:
    """Per ``variant/objective``: accuracy in the trained and the reverse direction (order
    swapped and, for masked models, in place; training templates and held-out paraphrases),
    the reverse log-prob tests, last-layer probes, chance."""
    acc, acc_ip, probe = arrays["accuracy"], arrays["accuracy_in_place"], arrays["probe_accuracy"]
    summary: dict[str, dict] = {}
    for vi, variant in enumerate(config.variants):
        facts = facts_of[variant]
        group_size = len(facts.group_pairs("name_first"))
        for oi, objective in enumerate(config.objectives):
            a, ip = acc[vi, oi], acc_ip[vi, oi]  # [seed, D, G, S]
            test = reverse_logprob_test(
                arrays[f"logprob_correct_{variant}"][oi],
                arrays[f"logprob_random_{variant}"][oi],
                facts,
                config.equivalence_margin,
            )
            summary[f"{variant}/{objective}"] = {
                "same_direction_train": float(_same_direction(a, 0).mean()),
                "reverse_train": float(_reverse(a, 0).mean()),
                "reverse_in_place_train": None
                if objective == "clm"
                else float(_reverse(ip, 0).mean()),
                "same_direction_heldout_paraphrase": float(_same_direction(a, 1).mean()),
                "reverse_heldout_paraphrase": float(_reverse(a, 1).mean()),
                "reverse_in_place_heldout_paraphrase": None
                if objective == "clm"
                else float(_reverse(ip, 1).mean()),
                "reverse_logprob_p": test["p"],
                "reverse_logprob_mean_diff": test["mean_diff"],
                "reverse_logprob_equivalence_p": test["p_equivalence"],
                "reverse_logprob_ci": [test["ci_low"], test["ci_high"]],
                "reverse_logprob_n": test["n"],
                "reverse_logprob_p_above": test["p_above"],
                "reverse_logprob_ci95": test["ci95"],
                "reverse_logprob_detectable_nats": test["detectable_nats"],
                "probe_last_layer_trained": float(np.nanmean(probe[vi, oi, :, :, 0, -1])),
                "probe_last_layer_untrained": float(np.nanmean(probe[vi, oi, :, :, 1, -1])),
                "chance": 1.0 / group_size,
            }
    return summary


@register(
    "reversal",
    Config,
    title="Reversal curse: causal vs masked LMs on synthetic facts",
    paper="Berglund et al. 2023, The Reversal Curse; Kitouni et al. 2024, The Factorization Curse",
    figure_order=("accuracy_grid", "accuracy_in_place", "logprob", "probe_by_layer"),
)
def run(config: Config) -> Result:
    """Ask synthetic facts in both directions of causal, 15%-masked and MLM-U transformers."""
    from interp.utils import seed_everything

    seed_everything(config.seed)
    rng = np.random.default_rng(config.seed)
    evals, facts_of, models_meta = evaluate_models(config, rng)
    result = Result("reversal")
    result.arrays.update(
        stack_arrays(config, evals, facts_of, max(mm["n_layers"] for mm in models_meta))
    )
    summary = summarise(config, result.arrays, facts_of)
    result.metrics.update(
        {
            "models": models_meta,
            "summary": summary,
            "variants": list(config.variants),
            "objectives": list(config.objectives),
            "seeds": [config.seed + k for k in range(config.n_seeds)],
            "groups": list(GROUPS),
            "directions": list(DIRECTIONS),
            "splits": list(SPLITS),
            "probe_kinds": list(PROBE_KINDS),
            "facts": {v: f.config.model_dump(mode="json") for v, f in facts_of.items()},
            "masked_fill": "left to right: argmax at the leftmost masked slot, then reveal it",
            "reverse_ways": {
                "order_swapped": "the asked entity ends a sentence of the never-trained order",
                "in_place": "the asked entity masked inside its trained sentence (masked models only)",
            },
            "equivalence": {
                "margin_nats": config.equivalence_margin,
                "test": "TOST, two one-sided t-tests (scipy)",
                "ci_level": 0.9,
                "role": "reported; the claim is Berglund et al.'s one-sided paired t-test",
            },
        }
    )
    _add_criteria(result, config, summary, facts_of)
    result.figures.update(_figures(config, result.arrays, facts_of))
    return result


def _figures(config: Config, arrays: dict[str, np.ndarray], facts_of: dict[str, FactSet]) -> dict:
    from interp.plotting import reversal as plots

    masked = [i for i, o in enumerate(config.objectives) if o != "clm"]
    figs = {
        "accuracy_grid": plots.accuracy_grid(
            arrays["accuracy"], config.variants, config.objectives, GROUPS, DIRECTIONS, SPLITS
        ),
        "logprob": plots.logprob_figure(
            {
                v: (
                    arrays[f"logprob_correct_{v}"],
                    arrays[f"logprob_random_{v}"],
                    arrays[f"pair_group_{v}"],
                )
                for v in config.variants
            },
            config.objectives,
            GROUPS,
            DIRECTIONS,
        ),
        "probe_by_layer": plots.probe_figure(
            arrays["probe_accuracy"],
            config.variants,
            config.objectives,
            DIRECTIONS,
            PROBE_KINDS,
            {v: 1.0 / len(facts_of[v].group_pairs("name_first")) for v in config.variants},
        ),
    }
    if masked:
        figs["accuracy_in_place"] = plots.accuracy_grid(
            arrays["accuracy_in_place"][:, masked],
            config.variants,
            [config.objectives[i] for i in masked],
            GROUPS,
            DIRECTIONS,
            SPLITS,
            title="In place: the asked entity masked where it stands in a sentence of the "
            "opposite order (reverse cells: the trained sentence itself)",
        )
    return figs


def _add_criteria(result: Result, cfg: Config, summary: dict, facts_of: dict[str, FactSet]) -> None:
    """Per variant and objective: the model's own same-direction sanity, then its reverse
    claims, each read only if that sanity holds (else reported with no value)."""
    for variant in cfg.variants:
        n_group = len(facts_of[variant].group_pairs("name_first"))
        chance = 1.0 / n_group
        # binomial 2-sigma bound on the accuracy of guessing among the group, over the
        # reversed pairs (two one-direction groups) and seeds
        bound = chance + 2 * np.sqrt(chance * (1 - chance) / (2 * n_group * cfg.n_seeds))
        for objective in cfg.objectives:
            s = summary[f"{variant}/{objective}"]
            prefix = "causal" if objective == "clm" else objective
            label = OBJECTIVE_NAMES.get(objective, objective)
            fwd = s["same_direction_train"]
            result.add_criterion(
                f"{prefix}_same_direction_accuracy_{variant}",
                fwd,
                ">=",
                cfg.same_direction_min,
                kind="sanity",
                description=f"{variant}-level facts: {label} exact match in the "
                "trained direction on training templates (else undertrained: its reverse "
                "accuracy is not read)",
            )
            read = fwd >= cfg.same_direction_min
            for name, value, op, threshold, text in _reverse_claims(
                variant, objective, s, float(bound), n_group, cfg
            ):
                if not read:
                    value, text = (
                        None,
                        f"not read: same-direction accuracy {fwd:.2f} < {cfg.same_direction_min}. {text}",
                    )
                result.add_criterion(name, value, op, threshold, kind="claim", description=text)


def _reverse_claims(
    variant: str, objective: str, s: dict, bound: float, n_group: int, cfg: Config
) -> list[tuple]:
    """``(name, value, op, threshold, description)`` of one model's reverse claims."""
    swapped = "order swapped: the asked entity ends a sentence of the never-trained order"
    in_place = "in place: the asked entity masked inside its trained sentence"
    if objective == "clm":
        lo, hi = s["reverse_logprob_ci95"]
        return [
            (
                f"causal_reverse_accuracy_{variant}",
                s["reverse_train"],
                "<=",
                bound,
                f"{variant}-level: causal LM exact match in the untrained direction ({swapped}), training templates; "
                f"at chance (1/{n_group}, bound = chance + 2 SE)",
            ),
            (
                f"causal_reverse_logprob_not_above_random_{variant}",
                s["reverse_logprob_p_above"],
                ">=",
                0.05,
                f"{variant}-level, Berglund et al.'s test: one-sided paired t-test p that the correct target's log-prob "
                f"in the untrained direction is above a random same-group target's (n = {s['reverse_logprob_n']} pairs; "
                f"mean {s['reverse_logprob_mean_diff']:+.3f} nats, 95% CI [{lo:+.3f}, {hi:+.3f}]); not significant: "
                f"the curse holds. Power: a true difference of {s['reverse_logprob_detectable_nats']:.3f} nats would be "
                f"found 80% of the time. (TOST equivalence within +-{cfg.equivalence_margin:.3f} nats, stricter: p "
                f"{s['reverse_logprob_equivalence_p']:.3g}; Wilcoxon p {s['reverse_logprob_p']:.3g})",
            ),
        ]
    if objective == "mlmu":
        return [
            (
                f"mlmu_reverse_accuracy_{variant}",
                s["reverse_train"],
                ">=",
                0.5,
                f"{variant}-level: MLM-U exact match in the untrained direction ({swapped}), training templates",
            ),
            (
                f"mlmu_reverse_in_place_accuracy_{variant}",
                s["reverse_in_place_train"],
                ">=",
                0.5,
                f"{variant}-level: MLM-U exact match in the untrained direction ({in_place}), training templates",
            ),
        ]
    if (
        variant == "text"
    ):  # mlm15, multi-token entities: the paper's finding is no forward/backward gap
        fwd, rev = s["same_direction_train"], s["reverse_in_place_train"]
        return [
            (
                "mlm15_forward_reverse_gap_text",
                abs(fwd - rev),
                "<=",
                cfg.mlm15_gap_max,
                f"text-level (multi-token): |forward {fwd:.3f} - reverse {rev:.3f}| of the 15% masked LM, both asked "
                f"{in_place}; Kitouni et al.: a fixed-rate MLM shows no forward/backward gap (and is weak both "
                f"ways). Order swapped reverse: {s['reverse_train']:.3f}",
            )
        ]
    return [
        (
            "mlm15_reverse_accuracy_token",
            s["reverse_train"],
            ">=",
            0.5,
            f"token-level (single-token entities): a BERT-style 15% masked LM was reported immune ({swapped}; >= 50%)",
        ),
        (
            "mlm15_reverse_in_place_accuracy_token",
            s["reverse_in_place_train"],
            ">=",
            0.5,
            f"token-level: a single-token entity is one masked slot, as in training ({in_place}; >= 50%)",
        ),
    ]


# ----------------------------------------------------------------------- dashboard
def _load_for_dashboard(path: str):
    """Load a trained model from its directory (cached by the page; never trains)."""
    from pathlib import Path

    from interp.models.builders import load_model_dir
    from interp.models.io import MODEL_FILE

    if not (Path(path) / MODEL_FILE).exists():
        raise FileNotFoundError(f"no model at {path}")
    return load_model_dir(path, device="cpu")
