"""The crossmodal result: metrics, criteria, arrays and figures from the typed steps."""

from __future__ import annotations

import numpy as np

from interp.analyses.crossmodal.config import EDGE_NAMES, EDGES, PATCH_SETS, Config
from interp.analyses.crossmodal.stats import type_means
from interp.analyses.crossmodal.sweeps import last_row_attention
from interp.analyses.crossmodal.types import (
    CleanAnswers,
    Float64Checks,
    Questions,
    Summary,
    Sweeps,
)
from interp.data.crossmodal import encode
from interp.plotting import crossmodal as plots
from interp.results import Result
from interp.tracing.model import Model


def add_metrics(
    result: Result,
    m: Model,
    config: Config,
    questions: Questions,
    clean: CleanAnswers,
    sw: Sweeps,
    s: Summary,
    f64: Float64Checks,
) -> None:
    """The run's metrics: accuracy, mean curves, peaks and onsets with their intervals, the patch
    sets against their controls, the lens, the checks' gaps and the sweep's timing."""
    L, ok, test = m.n_layers, s.ok, questions.test
    edge = s.edge_means()
    iv = s.intervals
    timing = sw.timing
    result.metrics.update(
        {
            "model": m.model_id,
            "n_layers": L,
            "window": config.window,
            "n_test": len(test),
            "n_correct": len(clean.kept),
            "accuracy": clean.accuracy,
            "accuracy_by_type": clean.accuracy_by_type,
            "types_at_chance": clean.types_at_chance,
            "test_scenes_disjoint_verified": questions.training_keys is not None,
            "mean_score_by_edge": {n: v.round(3).tolist() for n, v in edge.items()},
            "peak_layer": {n: int(np.argmin(v)) for n, v in edge.items()},
            "peak_layer_ci95": {n: v.ci95 for n, v in iv.peak.items()},
            "onset_layer": {n: v.estimate for n, v in iv.onset.items()},
            "onset_layer_ci95": {n: v.ci95 for n, v in iv.onset.items()},
            "largest_drop_by_type": {
                t: {
                    n: round(float(-np.nanmin(s.by_type[ti, e])), 2)
                    for e, n in enumerate(EDGE_NAMES)
                }
                for ti, t in enumerate(s.types)
            },
            "patch_set_scores": {
                n: s.patch_sets[j].round(3).tolist() for j, n in enumerate(PATCH_SETS)
            },
            "patch_set_excess_drop": iv.excess_dicts(),
            "logit_lens_with_norm": s.lens_with_norm.round(4).tolist(),
            "logit_lens_without_norm": s.lens_without_norm.round(4).tolist(),
            "fast_vs_full_max_logit_gap": sw.fast_gap,
            "fast_vs_full_max_logit_gap_float64": f64.fast_gap,
            "all_to_last_oracle_max_logit_gap": sw.oracle_gap,
            "all_to_last_oracle_max_logit_gap_float64": f64.oracle_gap,
            # a fully blocked last row is exactly zero, so this is ~0 by construction (a unit
            # test, not a criterion)
            "all_to_last_cut_spread_relative": sw.cut_spread / sw.cut_scale,
            "question_types": s.types,
            "all_to_last_every_layer_score": float(np.nanmean(sw.all_layers[ok])),
            "all_to_last_every_layer_by_type": type_means(test, clean.kept, s.types, sw.all_layers),
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


def add_arrays(
    result: Result, m: Model, config: Config, test: list, sw: Sweeps, s: Summary
) -> None:
    """Arrays: the means, and for a few samples (the dashboard's) their images, questions,
    per-sample curves and last-row attention over the image."""
    ok = s.ok
    rng = np.random.default_rng(config.seed)
    pick = sorted(rng.choice(ok, min(config.n_dashboard_samples, len(ok)), replace=False).tolist())
    attn = np.zeros((len(pick), m.n_layers, 64), np.float32)
    for j, i in enumerate(pick):
        attn[j] = last_row_attention(m, encode(m.tokenizer, [test[i]]))[0]
    result.arrays.update(
        {
            "edge_scores": s.mean,
            "edge_scores_by_type": s.by_type,
            "patch_set_scores": s.patch_sets,
            "patch_set_names": np.array(PATCH_SETS),
            "lens_with_norm": s.lens_with_norm,
            "lens_without_norm": s.lens_without_norm,
            "sample_scores": sw.scores[pick].astype(np.float32),
            "sample_images": np.stack([test[i].image for i in pick]).astype(np.float32),
            "sample_questions": np.array([test[i].question for i in pick]),
            "sample_answers": np.array([test[i].answer for i in pick]),
            "sample_types": np.array([test[i].qtype for i in pick]),
            "sample_object_patches": np.stack([test[i].object_patches for i in pick]),
            "sample_last_attention": attn,
            "edge_names": np.array(EDGE_NAMES),
            "question_types": np.array(s.types),
            "p_base": sw.p_base[ok].astype(np.float32),
            "all_to_last_every_layer": sw.all_layers[ok].astype(np.float32),
        }
    )


def add_figures(result: Result, config: Config, s: Summary) -> None:
    """The five figures, from the result's arrays."""
    k, a = config.window, result.arrays
    result.figures.update(
        {
            "knockout_edges": plots.edge_curves(s.mean, EDGE_NAMES, k),
            "knockout_by_type": plots.edges_by_type(s.by_type, EDGE_NAMES, s.types, k),
            "object_vs_nonobject": plots.patch_set_curves(s.patch_sets, PATCH_SETS, k),
            "logit_lens": plots.logit_lens(s.lens_with_norm, s.lens_without_norm),
            "last_attention_image": plots.attention_on_image(
                a["sample_images"][0], a["sample_last_attention"][0], str(a["sample_questions"][0])
            ),
        }
    )
