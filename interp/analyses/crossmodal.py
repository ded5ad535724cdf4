"""Cross-modal information flow in a vision-language model by attention knockout
(Zhang et al. 2024, "Cross-modal Information Flow in Multimodal Large Language Models").

On correctly answered test questions, for each layer ``l`` and a window of ``k`` layers
around it, attention edges between position groups are blocked in all heads (causal mask
kept; see :mod:`interp.methods.knockout`) and the model's own answer probability is
compared with the clean run: ``score = (p_new - p_base) / p_base * 100``, averaged over
samples, per question type. Edges: image->question, image->last, question->last,
last->last, object patches->question, non-object patches->question, their size-matched
controls (a random patch set as large as the object patches, and the rest of the image) ->
question, and everything->last as a sanity check. Knockouts into the last position use the
key/value-reusing fast path, checked against a full recompute in every run; the complete
cut (everything->last in every layer) is checked against an independent forward with the last
position's attention output removed. Peak and onset layers come with bootstrap intervals over
the analysed questions. A logit lens at the last position reads the answer probability layer
by layer, with and without the final norm.

Positions: ``[BOS] [64 image patches] [question ...] [last question token "?"]``; the
"question" group is every question token but the last.

The model is a zoo VLM (``zoo:vlm-tiny`` / ``zoo:vlm-6l``; :mod:`interp.models.vlm`). A
Hugging Face LLaVA runs through :func:`run_llava` (``model: hf-llava:<hub name | directory |
tiny-random>``; masked forward in :mod:`interp.models.llava`).
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict

from interp.analyses import register
from interp.fields import Count, Device, ModelName, NonNegInt, Seed
from interp.results import Result

log = logging.getLogger(__name__)

EDGES = (
    ("image", "question"),
    ("image", "last"),
    ("question", "last"),
    ("last", "last"),
    ("object", "question"),
    ("nonobject", "question"),
    ("random", "question"),
    ("nonrandom", "question"),
    ("all", "last"),
)
# The patch-set edges and their size-matched random controls, as compared in the run.
PATCH_SETS = ("object->question", "random->question", "nonobject->question", "nonrandom->question")
EDGE_NAMES = tuple(f"{s}->{d}" for s, d in EDGES)


class Config(BaseModel):
    """Settings of the cross-modal knockout analysis."""

    model_config = ConfigDict(extra="forbid")

    model: ModelName = "zoo:vlm-tiny"
    n_test: Count = 300
    window: Count = 1
    batch_size: Count = 64
    n_dashboard_samples: NonNegInt = 12
    only_correct: bool = True  # the paper analyses correctly answered questions only (False: all, for untrained models)
    check_batches: NonNegInt = (
        1  # batches per question type whose fast sweep is compared with a full recompute
    )
    n_bootstrap: Count = 1000  # resamples of the analysed questions for the peak / onset intervals
    device: Device = "cpu"
    seed: Seed = 0


# ---------------------------------------------------------------- data
def _training_keys(model_name: str) -> set | None:
    """Scene keys of the model's training set (so test scenes are disjoint), if known."""
    from interp.data.crossmodal import train_scene_keys

    cfg = None
    if model_name.startswith("zoo:"):
        from interp.models import zoo

        cfg = zoo.get(model_name[4:]).config.model_dump()
    else:
        from pathlib import Path

        from interp.models.io import MODEL_FILE
        from interp.utils import read_json

        path = Path(model_name) / MODEL_FILE
        if path.exists():
            cfg = read_json(path).get("recipe_config")
    if not cfg or "n_train" not in cfg:
        return None
    from interp.data.crossmodal import QUESTION_TYPES
    from interp.models.recipes.crossmodal import training_extra_types

    return train_scene_keys(
        cfg["n_train"], cfg["seed"], (*QUESTION_TYPES, *training_extra_types(cfg))
    )


def types_at_chance(samples, correct: torch.Tensor, alpha: float = 0.01) -> list[str]:
    """Question types whose accuracy is not significantly above guessing (one-sided binomial
    test at ``alpha`` against :data:`interp.data.crossmodal.CHANCE`)."""
    from scipy.stats import binomtest

    from interp.data.crossmodal import CHANCE, QUESTION_TYPES

    out = []
    for t in QUESTION_TYPES:
        idx = [i for i, s in enumerate(samples) if s.qtype == t]
        if idx:
            k = int(correct[idx].sum())
            if binomtest(k, len(idx), CHANCE[t], alternative="greater").pvalue > alpha:
                out.append(t)
    return out


def _batches(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i : i + size]


# ---------------------------------------------------------------- pieces
def clean_predictions(m, samples, batch_size: int):
    """Predicted answer ids and clean answer probabilities for ``samples`` (any lengths)."""
    from interp.data.crossmodal import encode
    from interp.tracing.trace import trace

    preds, correct = [], []
    for part in _batches(samples, batch_size):
        b = encode(m.tokenizer, part)
        out, _ = trace(m, {"tokens": b["tokens"], "pixels": b["pixels"]})
        logits = out[torch.arange(len(part)), b["last"]]
        p = logits.argmax(-1).cpu()
        preds.append(p)
        correct.append(p == b["answer"])
    return torch.cat(preds), torch.cat(correct)


def logit_lens_last(m, batch: dict, answer: torch.Tensor) -> dict[str, np.ndarray]:
    """``[L+1, B]`` answer probability read from the residual stream at the last position
    (row 0: embedding), through the final norm + unembedding and through the unembedding only
    (:mod:`interp.methods.lens`)."""
    from interp.methods.knockout import answer_prob
    from interp.methods.lens import lens_logits, residual_stream

    stream = residual_stream(
        m, {"tokens": batch["tokens"], "pixels": batch["pixels"]}, positions=-1
    )
    normed = lens_logits(m, stream)  # [L+1, B, V]
    raw = lens_logits(m, stream, norm=False)
    return {
        "with_norm": np.stack([answer_prob(x, answer).numpy() for x in normed]),
        "without_norm": np.stack([answer_prob(x, answer).numpy() for x in raw]),
        "final_gap": float((normed[-1] - stream.output).abs().max()),
    }


def last_row_attention(m, batch: dict) -> np.ndarray:
    """``[B, L, 64]`` attention of the last position to each image patch, mean over heads."""
    from interp.data.crossmodal import N_PATCHES
    from interp.tracing.trace import trace

    names = [m.hook("pattern", l) for l in range(m.n_layers)]
    _, acts = trace(m, {"tokens": batch["tokens"], "pixels": batch["pixels"]}, capture=names)
    return np.stack([acts[n][:, :, -1, 1 : 1 + N_PATCHES].mean(1).numpy() for n in names], axis=1)


# ---------------------------------------------------------------- steps of the run
def load_vlm(config: Config):
    """The configured zoo VLM (or a directory holding one)."""
    import interp
    import interp.models.vlm  # noqa: F401  (registers the "vlm" builder for model directories)

    m = interp.load_model(config.model, device=config.device)
    if m.kind != "vlm":
        raise ValueError(
            f"crossmodal needs a VLM (zoo:vlm-tiny, zoo:vlm-6l or hf-llava:<name>); "
            f"{config.model} is a {m.kind}"
        )
    log.info("model %s: %d layers; window %d", m.model_id, m.n_layers, config.window)
    return m


def unseen_questions(config: Config) -> tuple[list, set | None]:
    """The test questions (scenes disjoint from the model's training set where it is known)
    and the training scene keys (None: unknown)."""
    from interp.data.crossmodal import make_samples

    keys = _training_keys(config.model)
    test, _ = make_samples(config.n_test, config.seed, "test", exclude=keys)
    log.info(
        "%d test questions (%s scenes disjoint from training)",
        len(test),
        "verified" if keys else "UNVERIFIED",
    )
    return test, keys


def clean_answers(m, test, config: Config) -> dict:
    """The model's own answers on ``test``: predictions, correctness, accuracy (overall and by
    type), types at chance, and the analysed samples grouped by question length."""
    from interp.data.crossmodal import QUESTION_TYPES

    preds, correct = clean_predictions(m, test, config.batch_size)
    accuracy = float(correct.float().mean())
    acc_type = {
        t: float(correct[[i for i, s in enumerate(test) if s.qtype == t]].float().mean())
        for t in QUESTION_TYPES
        if any(s.qtype == t for s in test)
    }
    log.info("test accuracy %.3f %s", accuracy, acc_type)
    at_chance = types_at_chance(test, correct)
    if at_chance:
        log.warning(
            "question types answered no better than chance (their knockout curves reflect guesses): %s",
            ", ".join(at_chance),
        )
    # correctly answered samples, grouped by question length (one template per group)
    kept = [i for i in range(len(test)) if correct[i] or not config.only_correct]
    if not kept:
        raise ValueError(
            f"{m.model_id} answers none of {len(test)} test questions correctly; nothing to analyse "
            "(set only_correct=false to analyse its own answers anyway)"
        )
    by_len: dict[int, list[int]] = {}
    for i in kept:
        by_len.setdefault(len(test[i].question.split()), []).append(i)
    return {
        "preds": preds,
        "accuracy": accuracy,
        "accuracy_by_type": acc_type,
        "types_at_chance": at_chance,
        "kept": kept,
        "by_len": by_len,
    }


def knockout_sweeps(m, test, clean: dict, config: Config) -> dict:
    """Every edge and window on every analysed sample (one batch per question length at a time),
    with the everything-cut run and its oracle, the logit lens and the fast-path checks along
    the way. Per-sample arrays have one row per test question (NaN where not analysed)."""
    from interp.data.crossmodal import encode, position_groups
    from interp.methods.knockout import (
        answer_prob,
        attention_removed_logits,
        clean_cache,
        fast_vs_full_gap,
        last_row_knockout,
        nothing_blocked_gap,
        relative_change,
        sweep,
    )

    L, k, n = m.n_layers, config.window, len(test)
    out = {
        "scores": np.full((n, len(EDGES), L), np.nan),
        "p_base": np.full(n, np.nan),
        "all_layers": np.full(
            n, np.nan
        ),  # score with every position->last edge blocked in every layer
        "n_object": np.zeros(n),
        "lens_norm": np.full((n, L + 1), np.nan),
        "lens_raw": np.full((n, L + 1), np.nan),
        "cut_spread": 0.0,
        "cut_scale": 1.0,
        "oracle_gap": 0.0,
        "fast_gap": 0.0,
        "none_gap": 0.0,
        "lens_gap": 0.0,
        "checks": [],
        "timing": {"clean_forward_s": 0.0, "fast_sweep_s": 0.0, "full_sweep_s": 0.0},
    }
    cut_first: dict[
        int, torch.Tensor
    ] = {}  # per question length: last-position logits with everything cut
    rng = np.random.default_rng([config.seed, 2])  # the size-matched random patch sets
    for length, idx in sorted(clean["by_len"].items()):
        for bi, part in enumerate(_batches(idx, config.batch_size)):
            samples = [test[i] for i in part]
            b = encode(m.tokenizer, samples)
            inputs = {"tokens": b["tokens"], "pixels": b["pixels"]}
            answer = clean["preds"][part]
            groups = position_groups(b, samples, rng=rng)
            cache = clean_cache(m, inputs)
            res = sweep(m, inputs, groups, EDGES, answer, k=k, fast=True, cache=cache)
            for e, name in enumerate(EDGE_NAMES):
                out["scores"][part, e] = res["score"][name].T.numpy()
            out["p_base"][part] = res["p_base"].numpy()
            cut = last_row_knockout(m, cache, groups["all"], range(L))
            spread = float((cut - cut_first.setdefault(length, cut[0].clone())).abs().max())
            out["cut_spread"] = max(out["cut_spread"], spread)
            out["cut_scale"] = max(out["cut_scale"], float(cut.abs().max()))
            out["oracle_gap"] = max(
                out["oracle_gap"], float((cut - attention_removed_logits(m, inputs)).abs().max())
            )
            out["all_layers"][part] = relative_change(
                answer_prob(cut, answer).cpu(), res["p_base"]
            ).numpy()
            out["n_object"][part] = groups["object"].sum(1).numpy()
            lens = logit_lens_last(m, b, answer)
            out["lens_norm"][part], out["lens_raw"][part] = (
                lens["with_norm"].T,
                lens["without_norm"].T,
            )
            out["lens_gap"] = max(out["lens_gap"], lens["final_gap"])
            if bi < config.check_batches:
                gap, t = fast_vs_full_gap(m, inputs, groups, cache, k, EDGES)
                out["fast_gap"] = max(out["fast_gap"], gap)
                out["timing"] = {key: out["timing"][key] + t[key] for key in out["timing"]}
                out["checks"].append((inputs, groups))
                out["none_gap"] = max(out["none_gap"], nothing_blocked_gap(m, inputs, cache.logits))
        log.info("questions of %d words: %d samples done", length, len(idx))
    return out


def fast_vs_full_float64(m, checks: list, k: int) -> tuple[float, float]:
    """The fast-vs-full comparison of the checked batches again in float64, and the complete cut
    (every edge into the last position, every layer, fast path) against the oracle forward with
    the last position's attention output removed: both check that two computations are the same
    function, free of float32 rounding (which reaches ~1e-5 on a trained model's logits)."""
    from interp.methods.knockout import (
        attention_removed_logits,
        clean_cache,
        fast_vs_full_gap,
        last_row_knockout,
    )

    def cast(dtype):
        m.module.to(dtype)
        m.module.original_model.to(dtype)  # holds the projector, which the bridge does not list

    gap, oracle = 0.0, 0.0
    into_last = [e for e in EDGES if e[1] == "last"]
    cast(torch.float64)
    try:
        for inputs, groups in checks:
            inp = {"tokens": inputs["tokens"], "pixels": inputs["pixels"].double()}
            cache = clean_cache(m, inp)
            gap = max(gap, fast_vs_full_gap(m, inp, groups, cache, k, into_last)[0])
            cut = last_row_knockout(m, cache, groups["all"], range(m.n_layers))
            oracle = max(oracle, float((cut - attention_removed_logits(m, inp)).abs().max()))
    finally:
        cast(torch.float32)
    return gap, oracle


def peaks_and_onsets(curves: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per edge of mean score curves ``[E, L]``: the peak (window centre of the largest drop) and
    the onset (the first window centre whose drop reaches half of that largest drop; NaN where
    nothing drops), as floats ``[E]`` each."""
    drop = -curves
    top = drop.max(1)
    peak = drop.argmax(1).astype(float)
    onset = np.array(
        [np.flatnonzero(d >= t / 2)[0] if t > 0 else np.nan for d, t in zip(drop, top)], float
    )
    return peak, onset


def excess_drops(patch_curves: np.ndarray) -> np.ndarray:
    """``[2]``: largest drop of object->question minus that of its size-matched random set, and the
    same for non-object->question against the rest of the image (rows ordered as :data:`PATCH_SETS`)."""
    top = (-patch_curves).max(1)
    return np.array([top[0] - top[1], top[2] - top[3]])


def layer_intervals(scores: np.ndarray, patch: np.ndarray, n_resamples: int, seed: int) -> dict:
    """Peaks, onsets (:func:`peaks_and_onsets`) and excess drops (:func:`excess_drops`) with 95%
    percentile-bootstrap intervals over the analysed questions (``scores`` ``[n, E, L]``, ``patch``
    ``[n, 4, L]``, NaN rows where a question mentions no object); questions are resampled whole,
    so each resample keeps every edge of a question together."""
    import warnings

    from scipy.stats import bootstrap

    def stat(idx: np.ndarray) -> np.ndarray:
        i = idx.astype(int)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column in a small resample
            peak, onset = peaks_and_onsets(np.nanmean(scores[i], 0))
            return np.concatenate([peak, onset, excess_drops(np.nanmean(patch[i], 0))])

    E = scores.shape[1]
    point = stat(np.arange(len(scores)))
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore"
        )  # degenerate (constant) resampled statistics are expected here
        ci = bootstrap(
            (np.arange(len(scores)),),
            stat,
            vectorized=False,
            n_resamples=n_resamples,
            method="percentile",
            random_state=seed,
        ).confidence_interval
    lo, hi = np.asarray(ci.low), np.asarray(ci.high)

    def pack(sl: slice) -> dict:
        return {
            n: {"estimate": float(p), "ci95": [round(float(a), 2), round(float(b), 2)]}
            for n, p, a, b in zip(EDGE_NAMES, point[sl], lo[sl], hi[sl])
        }

    ex = {
        n: {
            "estimate": round(float(point[2 * E + j]), 3),
            "ci95": [round(float(lo[2 * E + j]), 3), round(float(hi[2 * E + j]), 3)],
        }
        for j, n in enumerate(("object_vs_random", "nonobject_vs_rest"))
    }
    return {"peak": pack(slice(0, E)), "onset": pack(slice(E, 2 * E)), "excess": ex}


def summarise(test, clean: dict, sw: dict, config: Config) -> dict:
    """Means over the analysed samples: per edge ``[E, L]``, per type ``[type, E, L]``, the patch
    sets and their controls ``[4, L]`` (questions that mention an object), the lens ``[L+1]``, and
    the bootstrap intervals of :func:`layer_intervals`."""
    from interp.data.crossmodal import QUESTION_TYPES

    kept = clean["kept"]
    ok = np.array(kept, dtype=int)
    scores = sw["scores"]
    types = [t for t in QUESTION_TYPES if any(test[i].qtype == t for i in kept)]
    patch = scores[ok][:, [EDGE_NAMES.index(n) for n in PATCH_SETS]]  # [n, 4, L]
    patch[sw["n_object"][ok] == 0] = (
        np.nan
    )  # no object mentioned: nothing (and no random set) to cut
    return {
        "ok": ok,
        "types": types,
        "mean": np.nanmean(scores[ok], axis=0),
        "by_type": np.stack(
            [np.nanmean(scores[[i for i in kept if test[i].qtype == t]], axis=0) for t in types]
        ),
        "patch_sets": np.nanmean(patch, axis=0),
        "lens_with_norm": np.nanmean(sw["lens_norm"][ok], 0),
        "lens_without_norm": np.nanmean(sw["lens_raw"][ok], 0),
        "intervals": layer_intervals(scores[ok], patch, config.n_bootstrap, config.seed),
    }


def _type_means(test, kept: list[int], types: list[str], values: np.ndarray) -> dict[str, float]:
    """Mean of per-sample ``values`` over the analysed samples of each question type (2 decimals)."""
    return {
        t: round(float(np.nanmean(values[[i for i in kept if test[i].qtype == t]])), 2)
        for t in types
    }


# ---------------------------------------------------------------- run
@register(
    "crossmodal",
    Config,
    title="Cross-modal information flow (attention knockout in a VLM)",
    paper="Zhang et al. 2024, Cross-modal Information Flow in Multimodal Large Language Models",
    figure_order=(
        "knockout_edges",
        "knockout_by_type",
        "object_vs_nonobject",
        "logit_lens",
        "last_attention_image",
    ),
)
def run(config: Config) -> Result:
    """Attention knockout between image, question and last positions of a tiny VLM."""
    from interp.utils import seed_everything

    seed_everything(config.seed)
    if config.model.startswith("hf-llava:"):
        return run_llava(config)
    m = load_vlm(config)
    test, keys = unseen_questions(config)
    clean = clean_answers(m, test, config)
    sw = knockout_sweeps(m, test, clean, config)
    fast_gap64, oracle_gap64 = fast_vs_full_float64(m, sw["checks"], config.window)
    summary = summarise(test, clean, sw, config)
    result = Result("crossmodal")
    add_metrics(result, m, config, test, keys, clean, sw, summary, fast_gap64, oracle_gap64)
    add_criteria(result, clean, sw, summary, fast_gap64, oracle_gap64)
    add_arrays(result, m, config, test, sw, summary)
    add_figures(result, config, summary)
    return result


def add_metrics(
    result: Result,
    m,
    config: Config,
    test,
    keys,
    clean: dict,
    sw: dict,
    s: dict,
    fast_gap64: float,
    oracle_gap64: float,
) -> None:
    """The run's metrics: accuracy, mean curves, peaks and onsets with their intervals, the patch
    sets against their controls, the lens, the checks' gaps and the sweep's timing."""
    L, k, ok = m.n_layers, config.window, s["ok"]
    edge = {name: s["mean"][e] for e, name in enumerate(EDGE_NAMES)}
    iv = s["intervals"]
    timing = sw["timing"]
    result.metrics.update(
        {
            "model": m.model_id,
            "n_layers": L,
            "window": k,
            "n_test": len(test),
            "n_correct": len(clean["kept"]),
            "accuracy": clean["accuracy"],
            "accuracy_by_type": clean["accuracy_by_type"],
            "types_at_chance": clean["types_at_chance"],
            "test_scenes_disjoint_verified": keys is not None,
            "mean_score_by_edge": {n: v.round(3).tolist() for n, v in edge.items()},
            "peak_layer": {n: int(np.argmin(v)) for n, v in edge.items()},
            "peak_layer_ci95": {n: v["ci95"] for n, v in iv["peak"].items()},
            "onset_layer": {n: v["estimate"] for n, v in iv["onset"].items()},
            "onset_layer_ci95": {n: v["ci95"] for n, v in iv["onset"].items()},
            "largest_drop_by_type": {
                t: {
                    n: round(float(-np.nanmin(s["by_type"][ti, e])), 2)
                    for e, n in enumerate(EDGE_NAMES)
                }
                for ti, t in enumerate(s["types"])
            },
            "patch_set_scores": {
                n: s["patch_sets"][j].round(3).tolist() for j, n in enumerate(PATCH_SETS)
            },
            "patch_set_excess_drop": iv["excess"],
            "logit_lens_with_norm": s["lens_with_norm"].round(4).tolist(),
            "logit_lens_without_norm": s["lens_without_norm"].round(4).tolist(),
            "fast_vs_full_max_logit_gap": sw["fast_gap"],
            "fast_vs_full_max_logit_gap_float64": fast_gap64,
            "all_to_last_oracle_max_logit_gap": sw["oracle_gap"],
            "all_to_last_oracle_max_logit_gap_float64": oracle_gap64,
            # a fully blocked last row is exactly zero, so this is ~0 by construction (a unit test, not a criterion)
            "all_to_last_cut_spread_relative": sw["cut_spread"] / sw["cut_scale"],
            "question_types": s["types"],
            "all_to_last_every_layer_score": float(np.nanmean(sw["all_layers"][ok])),
            "all_to_last_every_layer_by_type": _type_means(
                test, clean["kept"], s["types"], sw["all_layers"]
            ),
            "sweep_timing": {
                **{key: round(v, 4) for key, v in timing.items()},
                "edges_into_last": sum(d == "last" for _, d in EDGES),
                "windows": L,
                "fast_sweep_over_clean_forward": timing["fast_sweep_s"]
                / max(timing["clean_forward_s"], 1e-9),
                "full_over_fast": timing["full_sweep_s"] / max(timing["fast_sweep_s"], 1e-9),
            },
        }
    )


def add_criteria(
    result: Result, clean: dict, sw: dict, s: dict, fast_gap64: float, oracle_gap64: float
) -> None:
    """The sanity and claim criteria (:mod:`interp.results`)."""
    edge = {name: s["mean"][e] for e, name in enumerate(EDGE_NAMES)}
    iv = s["intervals"]
    peak_iq, peak_ql = (
        int(np.argmin(edge["image->question"])),
        int(np.argmin(edge["question->last"])),
    )
    result.add_criterion(
        "vlm_test_accuracy",
        clean["accuracy"],
        ">=",
        0.9,
        kind="sanity",
        description="fraction of test questions (scenes unseen in training) answered correctly",
    )
    result.add_criterion(
        "all_to_last_equals_oracle",
        oracle_gap64,
        "<=",
        1e-5,
        kind="sanity",
        description="max |last-position logits with every position->last edge blocked in every "
        "layer (fast path) - an independent forward with the last position's attention "
        f"output removed in every layer|, float64 (float32: {sw['oracle_gap']:.2e})",
    )
    result.add_criterion(
        "nothing_blocked_is_zero",
        sw["none_gap"],
        "==",
        0.0,
        kind="sanity",
        description="max |logit change| when the knockout edit runs in every layer with nothing blocked",
    )
    result.add_criterion(
        "kv_reuse_equals_full_recompute",
        fast_gap64,
        "<=",
        1e-5,
        kind="sanity",
        description="max |last-position logits, key/value-reusing sweep - full recompute| over "
        "every edge into last and every window, both run in float64 (float32: "
        f"{sw['fast_gap']:.2e}, rounding only)",
    )
    result.add_criterion(
        "lens_final_equals_logits",
        sw["lens_gap"],
        "<=",
        1e-4,
        kind="sanity",
        description="max |logit lens (with final norm) at the last layer - model logits|",
    )

    def at(kind: str, name: str) -> str:
        v = iv[kind][name]
        return f"{v['estimate']:.0f} [{v['ci95'][0]:.1f}, {v['ci95'][1]:.1f}]"

    result.add_criterion(
        "image_to_question_peaks_before_question_to_last",
        float(peak_ql - peak_iq),
        ">",
        0.0,
        kind="claim",
        description=f"layer of the question->last drop minus layer of the image->question "
        f"drop; peaks (95% bootstrap interval): question->last "
        f"{at('peak', 'question->last')}, image->question "
        f"{at('peak', 'image->question')}; onsets (half the largest drop): "
        f"{at('onset', 'question->last')} and {at('onset', 'image->question')}",
    )
    result.add_criterion(
        "image_to_last_small",
        float(np.max(np.abs(edge["image->last"]))),
        "<",
        20.0,
        kind="claim",
        description="max over layers |mean score| of image->last (%)",
    )
    result.add_criterion(
        "question_to_last_large",
        float(-np.min(edge["question->last"])),
        ">=",
        50.0,
        kind="claim",
        description="largest drop (%) of question->last over windows",
    )
    ob, non = iv["excess"]["object_vs_random"], iv["excess"]["nonobject_vs_rest"]
    result.add_criterion(
        "object_patches_matter_more_than_random",
        ob["ci95"][0],
        ">",
        0.0,
        kind="claim",
        description=f"lower end of the 95% bootstrap interval of (largest drop of object->question - "
        f"largest drop of a size-matched random patch set->question): {ob['estimate']:.2f} "
        f"{ob['ci95']} points; non-object patches against the rest of the image around "
        f"a random set: {non['estimate']:.2f} {non['ci95']}",
    )


def add_arrays(result: Result, m, config: Config, test, sw: dict, s: dict) -> None:
    """Arrays: the means, and for a few samples (the dashboard's) their images, questions,
    per-sample curves and last-row attention over the image."""
    from interp.data.crossmodal import encode

    ok = s["ok"]
    rng = np.random.default_rng(config.seed)
    pick = sorted(rng.choice(ok, min(config.n_dashboard_samples, len(ok)), replace=False).tolist())
    attn = np.zeros((len(pick), m.n_layers, 64), np.float32)
    for j, i in enumerate(pick):
        attn[j] = last_row_attention(m, encode(m.tokenizer, [test[i]]))[0]
    result.arrays.update(
        {
            "edge_scores": s["mean"],
            "edge_scores_by_type": s["by_type"],
            "patch_set_scores": s["patch_sets"],
            "patch_set_names": np.array(PATCH_SETS),
            "lens_with_norm": s["lens_with_norm"],
            "lens_without_norm": s["lens_without_norm"],
            "sample_scores": sw["scores"][pick].astype(np.float32),
            "sample_images": np.stack([test[i].image for i in pick]).astype(np.float32),
            "sample_questions": np.array([test[i].question for i in pick]),
            "sample_answers": np.array([test[i].answer for i in pick]),
            "sample_types": np.array([test[i].qtype for i in pick]),
            "sample_object_patches": np.stack([test[i].object_patches for i in pick]),
            "sample_last_attention": attn,
            "edge_names": np.array(EDGE_NAMES),
            "question_types": np.array(s["types"]),
            "p_base": sw["p_base"][ok].astype(np.float32),
            "all_to_last_every_layer": sw["all_layers"][ok].astype(np.float32),
        }
    )


def add_figures(result: Result, config: Config, s: dict) -> None:
    """The five figures, from the result's arrays."""
    from interp.plotting import crossmodal as plots

    k, a = config.window, result.arrays
    result.figures.update(
        {
            "knockout_edges": plots.edge_curves(s["mean"], EDGE_NAMES, k),
            "knockout_by_type": plots.edges_by_type(s["by_type"], EDGE_NAMES, s["types"], k),
            "object_vs_nonobject": plots.patch_set_curves(s["patch_sets"], PATCH_SETS, k),
            "logit_lens": plots.logit_lens(s["lens_with_norm"], s["lens_without_norm"]),
            "last_attention_image": plots.attention_on_image(
                a["sample_images"][0], a["sample_last_attention"][0], str(a["sample_questions"][0])
            ),
        }
    )


# ---------------------------------------------------------------- Hugging Face LLaVA
def run_llava(config: Config) -> Result:
    """The knockout sweep on a Hugging Face LLaVA (``model: hf-llava:<hub name | directory | tiny-random>``).

    Every window is a full recompute with the paper's additive-mask edit
    (:mod:`interp.models.llava`); no fast path. Questions are the synthetic VQA test set
    (upscaled by the processor for a real LLaVA). On ``tiny-random`` (untrained) the
    model's own answers are analysed whatever ``only_correct`` says."""
    import interp
    from interp.data.crossmodal import QUESTION_TYPES, make_samples
    from interp.models.llava import decoder_layers, load_llava

    name = config.model.split(":", 1)[1]
    model, processor, tok = load_llava(name, config.device, config.seed)
    m = interp.wrap(model, tokenizer=tok, model_id=config.model)  # nnsight-traceable handle
    L, k = len(decoder_layers(model)), config.window
    test, _ = make_samples(config.n_test, config.seed, "test")
    # no random patch sets on this path (its position groups come from interp.models.llava)
    edges = [
        (s, d) for s, d in EDGES if (s, d) != ("all", "last") and s not in ("random", "nonrandom")
    ]
    edges += [("allbutlast", "last")]
    names = [f"{s}->{d}" for s, d in edges]
    scores, correct = llava_sweep(model, processor, tok, test, edges, config)
    use = [
        i
        for i in range(len(test))
        if correct[i] or not config.only_correct or name == "tiny-random"
    ]
    if not use:
        raise ValueError(f"{config.model} answered none of the {len(test)} questions correctly")
    mean = np.nanmean(scores[use], axis=0)
    types = [t for t in QUESTION_TYPES if any(test[i].qtype == t for i in use)]
    by_type = np.stack(
        [np.nanmean(scores[[i for i in use if test[i].qtype == t]], axis=0) for t in types]
    )
    edge = {n: mean[e] for e, n in enumerate(names)}
    result = Result("crossmodal")
    result.metrics.update(
        {
            "model": config.model,
            "n_layers": L,
            "window": k,
            "n_test": len(test),
            "n_analysed": len(use),
            "accuracy": float(correct.mean()),
            "backend": "hf-llava",
            "n_hooks": len(m.hook_names),
            "mean_score_by_edge": {n: v.round(3).tolist() for n, v in edge.items()},
        }
    )
    if name != "tiny-random":
        result.add_criterion(
            "vlm_test_accuracy",
            float(correct.mean()),
            ">=",
            0.9,
            kind="sanity",
            description="fraction of synthetic test questions answered correctly",
        )
    result.add_criterion(
        "all_but_self_to_last_is_minus_100",
        float(np.max(np.abs(edge["allbutlast->last"] + 100))),
        "<=",
        5.0,
        kind="claim" if name == "tiny-random" else "sanity",
        description="max over layers |mean score + 100| blocking every other position -> last "
        "(an untrained model need not depend on its input)",
    )
    result.add_criterion(
        "image_to_last_small",
        float(np.max(np.abs(edge["image->last"]))),
        "<",
        20.0,
        kind="claim",
        description="max over layers |mean score| of image->last (%)",
    )
    result.add_criterion(
        "question_to_last_large",
        float(-np.min(edge["question->last"])),
        ">=",
        50.0,
        kind="claim",
        description="largest drop (%) of question->last over windows",
    )
    result.arrays.update(
        {
            "edge_scores": mean,
            "edge_scores_by_type": by_type,
            "edge_names": np.array(names),
            "question_types": np.array(types),
        }
    )
    from interp.plotting import crossmodal as plots

    result.figures.update(
        {
            "knockout_edges": plots.edge_curves(mean, names, k),
            "knockout_by_type": plots.edges_by_type(by_type, names, types, k),
        }
    )
    return result


def llava_sweep(
    model, processor, tok, test, edges: list, config: Config
) -> tuple[np.ndarray, np.ndarray]:
    """Scores ``[n_test, E, L]`` of every edge and window (full recomputes with the additive-mask
    edit) and whether each of the model's own answers is correct ``[n_test]``."""
    from interp.methods.knockout import answer_prob, edge_block, relative_change, window
    from interp.models.llava import decoder_layers, hf_knockout_logits, synthetic_inputs

    L, k = len(decoder_layers(model)), config.window
    by_len: dict[int, list[int]] = {}
    for i, s in enumerate(test):
        by_len.setdefault(len(s.question.split()), []).append(i)
    scores = np.full((len(test), len(edges), L), np.nan)
    correct = np.zeros(len(test), bool)
    for _, idx in sorted(by_len.items()):
        for part in _batches(idx, config.batch_size):
            samples = [test[i] for i in part]
            inputs, groups = synthetic_inputs(model, processor, tok, samples, config.device)
            groups["allbutlast"] = groups["all"] & ~groups["last"]
            B, T = inputs["input_ids"].shape
            clean = hf_knockout_logits(model, inputs, torch.zeros(B, T, T, dtype=torch.bool), [])
            answer = clean.argmax(-1).cpu()
            words = [tok.decode([int(a)]).strip().lower() for a in answer]
            correct[part] = [w == s.answer for w, s in zip(words, samples)]
            p_base = answer_prob(clean.cpu(), answer)
            for e, (src, dst) in enumerate(edges):
                block = edge_block(groups[dst], groups[src])
                for l in range(L):
                    p = answer_prob(
                        hf_knockout_logits(model, inputs, block, window(l, k, L)).cpu(), answer
                    )
                    scores[part, e, l] = relative_change(p, p_base).numpy()
    return scores, correct
