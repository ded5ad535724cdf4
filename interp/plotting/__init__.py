"""Plotting: figures and tables made from results (never from a model).

Shared helpers live in :mod:`interp.plotting.common` and are re-exported here.
Analysis-specific figure modules (e.g. ``interp.plotting.model_report``) are imported by
their full path, so ``import interp.plotting`` stays light (no torch, no streamlit).
"""

from __future__ import annotations

from interp.plotting.common import (
    CRITERIA_COLUMNS,
    RUN_COLUMNS,
    VERDICT_CLAIM_FAILS,
    VERDICT_HOLDS,
    VERDICT_SANITY_FAILS,
    VERDICT_TARGET_MET,
    VERDICT_TARGET_MISSED,
    criteria_counts,
    criteria_frame,
    criteria_rows,
    flatten_metrics,
    format_stamp,
    headline_figure,
    metrics_frame,
    ordered_figures,
    run_rows,
    runs_frame,
    verdict,
    verdict_strip,
)

__all__ = [
    "CRITERIA_COLUMNS",
    "RUN_COLUMNS",
    "VERDICT_CLAIM_FAILS",
    "VERDICT_HOLDS",
    "VERDICT_SANITY_FAILS",
    "VERDICT_TARGET_MET",
    "VERDICT_TARGET_MISSED",
    "criteria_counts",
    "criteria_frame",
    "criteria_rows",
    "flatten_metrics",
    "format_stamp",
    "headline_figure",
    "metrics_frame",
    "ordered_figures",
    "run_rows",
    "runs_frame",
    "verdict",
    "verdict_strip",
]
