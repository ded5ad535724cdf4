"""Reversal-curse probes: causal vs masked LMs on synthetic facts (Berglund et al. 2023;
Kitouni et al. 2024 for MLM-U).

Models trained on "A is B" facts (zoo recipes in :mod:`interp.models.recipes.reversal`:
a causal LM, a masked LM at a fixed 15% rate and MLM-U with a uniform masking rate, on
token-level and text-level facts, several seeds) are asked each fact in both directions.

Measures, per model, direction (``n2d``: name given, description asked; ``d2n``: the
reverse), group (trained ``name_first``, ``desc_first`` or ``both``) and template split
(training templates vs held-out paraphrases, kept apart so that paraphrase failure is
not mistaken for reversal failure):

- exact match of the completion: greedy for causal models; for masked models the slot
  of the target's length is filled with ``<|mask|>`` and filled **left to right**, one
  token per forward (argmax at the leftmost masked slot, which is then revealed);
- the log-probability of the correct target vs ``n_random`` random targets of the same
  group (causal: teacher forcing; masked: the same left-to-right chain rule), compared
  per pair with a Wilcoxon signed-rank test;
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
from dataclasses import dataclass
from typing import Any, Literal, Optional

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from interp.analyses import register
from interp.data.reversal import DIRECTIONS, GROUPS, OBJECTIVE_NAMES, SPLITS, TRAINED, FactSet  # noqa: F401 (OBJECTIVE_NAMES: for the dashboard)
from interp.fields import Count, Device, ModelName, NonNegFloat, Seed
from interp.results import Result

log = logging.getLogger(__name__)

PROBE_KINDS = ("trained", "untrained")  # probe tested on entities trained / never trained in that direction


class Config(BaseModel):
    """Settings of the reversal-curse probes."""

    model_config = ConfigDict(extra="forbid")

    # A zoo name or directory pattern with {variant}, {objective}, {size} and {seed} fields.
    model: ModelName = "zoo:reversal-{variant}-{objective}-{size}-s{seed}"
    size: Literal["quick", "full"] = "quick"
    variants: list[Literal["token", "text"]] = Field(default_factory=lambda: ["token", "text"])
    objectives: list[Literal["clm", "mlm15", "mlmu"]] = Field(default_factory=lambda: ["clm", "mlm15", "mlmu"])
    n_seeds: Count = 1  # model seeds: seed, seed+1, ..., seed+n_seeds-1
    n_random: Count = 5  # random same-group targets per fact in the log-prob test
    logprob_templates: Count = 3  # templates per split scored by log-prob (all are scored by accuracy)
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
        raise ValueError(f"{name} was not trained by a reversal recipe (no recipe_config.facts in {MODEL_FILE})")
    return m, meta["recipe_config"], path


def is_masked(m) -> bool:
    return getattr(m.cfg, "attention_dir", "causal") == "bidirectional"


def _forward(m, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return m.module(x.to(m.device)).float().cpu()  # [batch, pos, vocab]


def _chunks(n: int, size: int):
    for i in range(0, n, size):
        yield slice(i, min(n, i + size))


# ----------------------------------------------------------------------- measuring
def _slot_batches(m, tokens: np.ndarray, prompt_len: np.ndarray, length: int, batch_size: int, masked: bool):
    """Yield ``(slice, tokens [b, T], prompt lengths [b], row ids [b])`` per batch; for a masked
    model the ``length`` target slot after each prompt is filled with the mask token."""
    for sl in _chunks(len(tokens), batch_size):
        x = torch.from_numpy(tokens[sl]).clone()
        pl = torch.from_numpy(prompt_len[sl])
        rows = torch.arange(len(x))
        if masked:
            for k in range(length):
                x[rows, pl + k] = m.tokenizer.mask_token_id
        yield sl, x, pl, rows


def complete(m, tokens: np.ndarray, prompt_len: np.ndarray, length: int, batch_size: int = 512) -> np.ndarray:
    """Greedy completion ``[n, length]`` of each row's prompt (``tokens[:, :prompt_len]``).

    Causal: the next ``length`` tokens, one forward each. Masked: the ``length`` slots after
    the prompt are set to the mask token and filled left to right (argmax at the leftmost
    masked slot, then reveal it). Tokens after the slot are kept as given (padding)."""
    masked = is_masked(m)
    out = np.zeros((len(tokens), length), dtype=np.int64)
    for sl, x, pl, rows in _slot_batches(m, tokens, prompt_len, length, batch_size, masked):
        for k in range(length):
            logits = _forward(m, x)
            pos = pl + k
            x[rows, pos] = logits[rows, pos if masked else pos - 1].argmax(-1)
        out[sl] = torch.stack([x[rows, pl + k] for k in range(length)], dim=1).numpy()
    return out


def target_logprob(m, tokens: np.ndarray, prompt_len: np.ndarray, candidates: np.ndarray,
                   batch_size: int = 512) -> np.ndarray:
    """``[n, K]`` log-probability of each candidate target ``candidates [n, K, T]`` after each
    row's prompt. Causal: teacher-forced sum of next-token log-probs. Masked: the same
    left-to-right chain, ``sum_t log p(c_t | prompt, c_<t, masks at t..T-1)``."""
    n, K, T = candidates.shape
    masked = is_masked(m)
    rep = np.repeat(tokens, K, axis=0)  # [n*K, pos]
    pl = np.repeat(prompt_len, K)
    cand = candidates.reshape(n * K, T)
    rows_all = np.arange(n * K)
    for t in range(T):
        rep[rows_all, pl + t] = cand[:, t]
    total = np.zeros(n * K)
    for sl in _chunks(n * K, batch_size):
        x = torch.from_numpy(rep[sl]).clone()
        p = torch.from_numpy(pl[sl])
        c = torch.from_numpy(cand[sl])
        rows = torch.arange(len(x))
        if not masked:
            lp = _forward(m, x).log_softmax(-1)
            total[sl] = sum(lp[rows, p + t - 1, c[:, t]] for t in range(T)).numpy()
            continue
        acc = torch.zeros(len(x))
        for t in range(T):
            xt = x.clone()
            for u in range(t, T):
                xt[rows, p + u] = m.tokenizer.mask_token_id
            lp = _forward(m, xt).log_softmax(-1)
            acc += lp[rows, p + t, c[:, t]]
        total[sl] = acc.numpy()
    return total.reshape(n, K)


def query_residuals(m, tokens: np.ndarray, prompt_len: np.ndarray, length: int,
                    batch_size: int = 512) -> np.ndarray:
    """Residual stream ``[layer+1, n, d_model]`` at the query position, ``m.resid_names()``:
    row 0 is the embedding (``m.hook("resid_pre", 0)``), row ``l+1`` is
    ``m.hook("resid_post", l)``. The query
    position is the last prompt token (causal) or the first masked slot (masked; all
    ``length`` target slots masked)."""
    import interp

    names = m.resid_names()
    masked = is_masked(m)
    out = []
    for sl, x, pl, rows in _slot_batches(m, tokens, prompt_len, length, batch_size, masked):
        _, acts = interp.trace(m, x.to(m.device), capture=names)
        pos = pl if masked else pl - 1
        out.append(torch.stack([acts[nm][rows, pos].float().cpu() for nm in names]))  # [layer+1, batch, d]
    return torch.cat(out, dim=1).numpy()


def probe_accuracy(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, test_ids: np.ndarray,
                   candidates: np.ndarray, l2: float) -> float:
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
    lp_correct = np.full((len(DIRECTIONS), len(SPLITS), n_pairs), np.nan)
    lp_random = np.full((len(DIRECTIONS), len(SPLITS), n_pairs), np.nan)
    for di, d in enumerate(DIRECTIONS):
        for si, split in enumerate(SPLITS):
            ex = facts.examples(d, split)
            tokens, plen = facts.encode(ex, tok)
            T = len(ex[0].target)
            target = np.stack([tokens[i, plen[i]: plen[i] + T] for i in range(len(ex))])
            hit = (complete(m, tokens, plen, T, cfg.batch_size) == target).all(1)
            groups = np.array([e.group for e in ex])
            for gi, g in enumerate(GROUPS):
                acc[di, gi, si] = hit[groups == g].mean()
            # log-prob: correct vs n_random other targets of the same group, first templates only
            ex_lp = [e for e in ex if e.template in {t.index for t in facts.templates_of(d, split)[
                : cfg.logprob_templates]}]
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
    return {"accuracy": acc, "lp_correct": lp_correct, "lp_random": lp_random, "probe": probe}


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
        folds = [[trained[i] for i in order[: len(order) // 2]], [trained[i] for i in order[len(order) // 2:]]]
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
                        feats[layer][tr], target_vec[pair_ids[tr]], feats[layer][te], ids_among(test_pairs, te),
                        cand, cfg.probe_l2)
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
                name = cfg.model.format(variant=variant, objective=objective, size=cfg.size, seed=seed)
                out.append((variant, objective, seed, name))
    return out


def _same_direction(acc: np.ndarray, split: int) -> np.ndarray:
    """Mean accuracy over (group, direction) cells trained in that direction; acc [..., D, G, S]."""
    cells = [(di, gi) for gi, g in enumerate(GROUPS) for di, d in enumerate(DIRECTIONS) if d in TRAINED[g]]
    return np.mean([acc[..., di, gi, split] for di, gi in cells], axis=0)


def _reverse(acc: np.ndarray, split: int) -> np.ndarray:
    """Mean accuracy over the one-direction groups asked in their untrained direction."""
    cells = [(di, gi) for gi, g in enumerate(GROUPS) for di, d in enumerate(DIRECTIONS) if d not in TRAINED[g]]
    return np.mean([acc[..., di, gi, split] for di, gi in cells], axis=0)


def reverse_logprob_test(lp_correct: np.ndarray, lp_random: np.ndarray, facts: FactSet) -> dict[str, float]:
    """Wilcoxon signed-rank test of correct vs random log-probs in the untrained direction
    (training templates), one paired value per one-direction pair, averaged over seeds.
    ``lp_*``: ``[seed, direction, split, pair]``."""
    from scipy.stats import wilcoxon

    diffs = []
    for di, d in enumerate(DIRECTIONS):
        for p in facts.pairs:
            if d not in TRAINED[p.group]:
                diffs.append(np.mean(lp_correct[:, di, 0, p.index] - lp_random[:, di, 0, p.index]))
    diffs = np.asarray(diffs)
    if np.allclose(diffs, 0):
        return {"p": 1.0, "mean_diff": 0.0, "n": len(diffs)}
    return {"p": float(wilcoxon(diffs).pvalue), "mean_diff": float(diffs.mean()), "n": len(diffs)}


def evaluate_models(config: Config, rng: np.random.Generator) -> tuple[dict, dict[str, FactSet], list[dict]]:
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
            raise ValueError(f"{name} was trained as {rcfg.get('objective')} on {rcfg['facts']['variant']} facts, "
                             f"expected {objective} on {variant}")
        facts = make_facts(FactsConfig(**rcfg["facts"]))
        if variant in facts_of and facts_of[variant].config != facts.config:
            raise ValueError(f"models of variant {variant} were trained on different fact sets")
        facts_of[variant] = facts
        if is_masked(m) != (objective != "clm"):
            raise ValueError(f"{name}: objective {objective} but attention_dir={m.cfg.attention_dir}")
        log.info("evaluating %s", name)
        evals[(variant, objective, seed)] = evaluate_model(
            FactModel(variant, objective, seed, name, path, m, facts), config, rng)
        models_meta.append({"variant": variant, "objective": objective, "seed": seed, "name": name, "path": path,
                            "n_layers": m.n_layers})
    return evals, facts_of, models_meta


def stack_arrays(config: Config, evals: dict, facts_of: dict[str, FactSet], n_layers: int) -> dict[str, np.ndarray]:
    """The run's arrays: ``accuracy [variant, objective, seed, direction, group, split]``,
    ``probe_accuracy [variant, objective, seed, direction, kind, layer+1]`` and, per variant,
    ``logprob_correct_* / logprob_random_* [objective, seed, direction, split, pair]`` and
    ``pair_group_* [pair]``."""
    V, O, S = len(config.variants), len(config.objectives), config.n_seeds
    arrays = {}
    acc = np.full((V, O, S, len(DIRECTIONS), len(GROUPS), len(SPLITS)), np.nan)
    probe = np.full((V, O, S, len(DIRECTIONS), len(PROBE_KINDS), n_layers + 1), np.nan)
    for vi, variant in enumerate(config.variants):
        n_pairs = len(facts_of[variant].pairs)
        lp_c = np.full((O, S, len(DIRECTIONS), len(SPLITS), n_pairs), np.nan)
        lp_r = np.full_like(lp_c, np.nan)
        for oi, objective in enumerate(config.objectives):
            for k in range(S):
                e = evals[(variant, objective, config.seed + k)]
                acc[vi, oi, k] = e["accuracy"]
                probe[vi, oi, k, :, :, : e["probe"].shape[-1]] = e["probe"]
                lp_c[oi, k], lp_r[oi, k] = e["lp_correct"], e["lp_random"]
        arrays[f"logprob_correct_{variant}"] = lp_c
        arrays[f"logprob_random_{variant}"] = lp_r
        arrays[f"pair_group_{variant}"] = np.array([GROUPS.index(p.group) for p in facts_of[variant].pairs])
    arrays["accuracy"] = acc
    arrays["probe_accuracy"] = probe
    return arrays


def summarise(config: Config, arrays: dict[str, np.ndarray], facts_of: dict[str, FactSet]) -> dict[str, dict]:
    """Per ``variant/objective``: accuracy in the trained and the reverse direction (training
    templates, held-out paraphrases), the reverse log-prob test, last-layer probes, chance."""
    acc, probe = arrays["accuracy"], arrays["probe_accuracy"]
    summary: dict[str, dict] = {}
    for vi, variant in enumerate(config.variants):
        facts = facts_of[variant]
        group_size = len(facts.group_pairs("name_first"))
        for oi, objective in enumerate(config.objectives):
            a = acc[vi, oi]  # [seed, D, G, S]
            test = reverse_logprob_test(arrays[f"logprob_correct_{variant}"][oi],
                                        arrays[f"logprob_random_{variant}"][oi], facts)
            summary[f"{variant}/{objective}"] = {
                "same_direction_train": float(_same_direction(a, 0).mean()),
                "reverse_train": float(_reverse(a, 0).mean()),
                "same_direction_heldout_paraphrase": float(_same_direction(a, 1).mean()),
                "reverse_heldout_paraphrase": float(_reverse(a, 1).mean()),
                "reverse_logprob_p": test["p"], "reverse_logprob_mean_diff": test["mean_diff"],
                "probe_last_layer_trained": float(np.nanmean(probe[vi, oi, :, :, 0, -1])),
                "probe_last_layer_untrained": float(np.nanmean(probe[vi, oi, :, :, 1, -1])),
                "chance": 1.0 / group_size,
            }
    return summary


@register("reversal", Config, title="Reversal curse: causal vs masked LMs on synthetic facts",
          paper="Berglund et al. 2023, The Reversal Curse; Kitouni et al. 2024, The Factorization Curse",
          figure_order=("accuracy_grid", "logprob", "probe_by_layer"))
def run(config: Config) -> Result:
    """Ask synthetic facts in both directions of causal, 15%-masked and MLM-U transformers."""
    from interp.utils import seed_everything

    seed_everything(config.seed)
    rng = np.random.default_rng(config.seed)
    evals, facts_of, models_meta = evaluate_models(config, rng)
    result = Result("reversal")
    result.arrays.update(stack_arrays(config, evals, facts_of, max(mm["n_layers"] for mm in models_meta)))
    summary = summarise(config, result.arrays, facts_of)
    result.metrics.update({
        "models": models_meta, "summary": summary, "variants": list(config.variants),
        "objectives": list(config.objectives), "seeds": [config.seed + k for k in range(config.n_seeds)],
        "groups": list(GROUPS), "directions": list(DIRECTIONS), "splits": list(SPLITS),
        "probe_kinds": list(PROBE_KINDS),
        "facts": {v: f.config.model_dump(mode="json") for v, f in facts_of.items()},
        "masked_fill": "left to right: argmax at the leftmost masked slot, then reveal it",
    })
    _add_criteria(result, config, summary, facts_of)
    result.figures.update(_figures(config, result.arrays, facts_of))
    return result


def _figures(config: Config, arrays: dict[str, np.ndarray], facts_of: dict[str, FactSet]) -> dict:
    from interp.plotting import reversal as plots

    return {
        "accuracy_grid": plots.accuracy_grid(arrays["accuracy"], config.variants, config.objectives, GROUPS,
                                             DIRECTIONS, SPLITS),
        "logprob": plots.logprob_figure({v: (arrays[f"logprob_correct_{v}"], arrays[f"logprob_random_{v}"],
                                             arrays[f"pair_group_{v}"]) for v in config.variants},
                                        config.objectives, GROUPS, DIRECTIONS),
        "probe_by_layer": plots.probe_figure(arrays["probe_accuracy"], config.variants, config.objectives, DIRECTIONS,
                                             PROBE_KINDS, {v: 1.0 / len(facts_of[v].group_pairs("name_first"))
                                                           for v in config.variants}),
    }


def _add_criteria(result: Result, cfg: Config, summary: dict, facts_of: dict[str, FactSet]) -> None:
    for variant in cfg.variants:
        n_group = len(facts_of[variant].group_pairs("name_first"))
        chance = 1.0 / n_group
        # binomial 2-sigma bound on the accuracy of guessing among the group, over the
        # reversed pairs (two one-direction groups) and seeds
        bound = chance + 2 * np.sqrt(chance * (1 - chance) / (2 * n_group * cfg.n_seeds))
        if "clm" in cfg.objectives:
            s = summary[f"{variant}/clm"]
            result.add_criterion(f"causal_same_direction_accuracy_{variant}", s["same_direction_train"], ">=", 0.9,
                                 kind="sanity", description=f"{variant}-level facts: causal LM exact match in the "
                                 "trained direction on training templates (else undertrained)")
            result.add_criterion(f"causal_reverse_accuracy_{variant}", s["reverse_train"], "<=", float(bound),
                                 kind="claim", description=f"{variant}-level: causal LM exact match in the untrained "
                                 f"direction, training templates; at chance (1/{n_group}, bound = chance + 2 SE)")
            result.add_criterion(f"causal_reverse_logprob_p_{variant}", s["reverse_logprob_p"], ">", 0.05,
                                 kind="claim", description=f"{variant}-level: Wilcoxon p, correct vs random same-group "
                                 "target log-prob in the untrained direction (not different: p > 0.05)")
        if "mlmu" in cfg.objectives:
            result.add_criterion(f"mlmu_reverse_accuracy_{variant}", summary[f"{variant}/mlmu"]["reverse_train"],
                                 ">=", 0.5, kind="claim",
                                 description=f"{variant}-level: MLM-U exact match (masked slot filled) in the "
                                 "untrained direction, training templates")
        if "mlm15" in cfg.objectives and variant == "text":
            result.add_criterion("mlm15_reverse_accuracy_text", summary["text/mlm15"]["reverse_train"], "<", 0.5,
                                 kind="claim", description="text-level (multi-token): 15% masked LM does not fix "
                                 "reversal (exact match in the untrained direction < 50%)")
        if "mlm15" in cfg.objectives and variant == "token":
            result.add_criterion("mlm15_reverse_accuracy_token", summary["token/mlm15"]["reverse_train"], ">=", 0.5,
                                 kind="claim", description="token-level (single-token entities): a BERT-style 15% "
                                 "masked LM was reported immune (exact match in the untrained direction >= 50%)")


# ----------------------------------------------------------------------- dashboard
def top_completions(m, prompt_ids: list[int], length: int, k: int = 5, pad_to: Optional[int] = None
                    ) -> list[tuple[list[int], float]]:
    """Beam search (width ``k``) for the ``k`` likeliest ``length``-token completions of
    ``prompt_ids`` (BOS included): causal next tokens, or, for masked models, a slot of
    ``length`` masks filled left to right. ``pad_to``: pad each input with PAD to this
    length, as in training (a bidirectional model sees the padding). Returns ``[(token
    ids, log-prob)]``, best first, never with a special token."""
    masked = is_masked(m)
    mask, pad = m.tokenizer.mask_token_id, m.tokenizer.pad_token_id
    beams: list[tuple[list[int], float]] = [([], 0.0)]
    P = len(prompt_ids)
    width = max(pad_to or 0, P + length)
    for t in range(length):
        seqs = [prompt_ids + ids + ([mask] * (length - t) if masked else []) for ids, _ in beams]
        x = torch.tensor([s + [pad] * (width - len(s)) for s in seqs])
        lp = _forward(m, x).log_softmax(-1)[:, P + t if masked else P + t - 1]  # [beams, vocab]
        lp[:, :5] = -float("inf")  # never complete with a special token
        scores = torch.tensor([s for _, s in beams])[:, None] + lp
        best = scores.flatten().topk(min(k, scores.numel()))
        V = lp.shape[1]
        beams = [(beams[i // V][0] + [i % V], float(v)) for v, i in zip(best.values.tolist(), best.indices.tolist())]
    return beams


def _load_for_dashboard(path: str):
    """Load a trained model from its directory (cached by the page; never trains)."""
    from pathlib import Path

    from interp.models.builders import load_model_dir
    from interp.models.io import MODEL_FILE

    if not (Path(path) / MODEL_FILE).exists():
        raise FileNotFoundError(f"no model at {path}")
    return load_model_dir(path, device="cpu")
