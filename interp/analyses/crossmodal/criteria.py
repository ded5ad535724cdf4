"""The crossmodal criteria: sanity checks of the machinery, and the paper's claims at our
scale, each with its number and, where it rests on a layer, a bootstrap interval."""

from __future__ import annotations

import numpy as np

from interp.analyses.crossmodal.types import CleanAnswers, Float64Checks, Summary, Sweeps
from interp.results import Result


def add_sanity(result: Result, clean: CleanAnswers, sw: Sweeps, f64: Float64Checks) -> None:
    """The identities that must hold, or the model or the knockout code is wrong."""
    result.add_criterion(
        "vlm_test_accuracy",
        clean.accuracy,
        ">=",
        0.9,
        kind="sanity",
        description="fraction of test questions (scenes unseen in training) answered correctly",
    )
    result.add_criterion(
        "all_to_last_equals_oracle",
        f64.oracle_gap,
        "<=",
        1e-5,
        kind="sanity",
        description="max |last-position logits with every position->last edge blocked in every "
        "layer (fast path) - an independent forward with the last position's attention "
        f"output removed in every layer|, float64 (float32: {sw.oracle_gap:.2e})",
    )
    result.add_criterion(
        "nothing_blocked_is_zero",
        sw.none_gap,
        "==",
        0.0,
        kind="sanity",
        description="max |logit change| when the knockout edit runs in every layer with nothing "
        "blocked",
    )
    result.add_criterion(
        "kv_reuse_equals_full_recompute",
        f64.fast_gap,
        "<=",
        1e-5,
        kind="sanity",
        description="max |last-position logits, key/value-reusing sweep - full recompute| over "
        "every edge into last and every window, both run in float64 (float32: "
        f"{sw.fast_gap:.2e}, rounding only)",
    )
    result.add_criterion(
        "lens_final_equals_logits",
        sw.lens_gap,
        "<=",
        1e-4,
        kind="sanity",
        description="max |logit lens (with final norm) at the last layer - model logits|",
    )


def add_claims(result: Result, s: Summary) -> None:
    """Zhang et al.'s findings: image->question before question->last, image->last small,
    question->last large, object patches matter more than a random set of their size."""
    edge = s.edge_means()
    iv = s.intervals
    peak_iq = int(np.argmin(edge["image->question"]))
    peak_ql = int(np.argmin(edge["question->last"]))

    def at(intervals: dict, name: str) -> str:
        v = intervals[name]
        return f"{v.estimate:.0f} [{v.ci95[0]:.1f}, {v.ci95[1]:.1f}]"

    result.add_criterion(
        "image_to_question_peaks_before_question_to_last",
        float(peak_ql - peak_iq),
        ">",
        0.0,
        kind="claim",
        description=f"layer of the question->last drop minus layer of the image->question "
        f"drop; peaks (95% bootstrap interval): question->last "
        f"{at(iv.peak, 'question->last')}, image->question "
        f"{at(iv.peak, 'image->question')}; onsets (half the largest drop): "
        f"{at(iv.onset, 'question->last')} and {at(iv.onset, 'image->question')}",
    )
    add_flow_claims(result, edge)
    ob, non = iv.excess["object_vs_random"], iv.excess["nonobject_vs_rest"]
    result.add_criterion(
        "object_patches_matter_more_than_random",
        ob.ci95[0],
        ">",
        0.0,
        kind="claim",
        description="lower end of the 95% bootstrap interval of (largest drop of "
        "object->question - largest drop of a size-matched random patch set->question): "
        f"{ob.estimate:.2f} {ob.ci95} points; non-object patches against the rest of the image "
        f"around a random set: {non.estimate:.2f} {non.ci95}",
    )


def add_flow_claims(result: Result, edge: dict[str, np.ndarray]) -> None:
    """The two claims every backend makes (the zoo VLM and a Hugging Face LLaVA): the image
    reaches the last position only through the question, whose flow to it matters."""
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
