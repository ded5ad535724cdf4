"""Figures of the checkpoint check carry the numbers they are given."""

from __future__ import annotations

import numpy as np

from interp.plotting import check as plots


def test_parity_figure_draws_errors_on_a_log_axis_with_the_tolerance():
    names = ["blocks.0.hook_resid_pre", "blocks.0.hook_resid_post", "ln_final.hook_out"]
    errors = np.array([0.0, 3e-7, 2e-2])
    fig = plots.parity_figure(names, errors, 1e-4, logits_error=5e-8, logits_tolerance=2e-4)
    assert fig.layout.yaxis.type == "log"
    hidden, tol, logits, logits_tol = fig.data
    assert list(hidden.x) == names
    assert np.allclose(hidden.y, [plots.FLOOR, 3e-7, 2e-2])  # an exact match sits on the floor
    assert np.allclose(hidden.customdata, errors)  # the hover shows the true value, 0 included
    assert np.allclose(tol.y, [1e-4] * 3)
    assert (
        list(logits.x) == ["logits"]
        and np.allclose(logits.y, [5e-8])
        and np.allclose(logits_tol.y, [2e-4])
    )


def test_parity_figure_of_a_headless_model_has_no_logits_point():
    fig = plots.parity_figure(["a", "b"], np.array([1e-6, 1e-5]), 1e-4)
    assert [t.name for t in fig.data] == ["hidden states", "tolerance 0.0001"]


def test_timing_figure_shows_each_round_in_ms_and_the_ratio():
    times = {"bare": [0.010, 0.012], "collect": [0.011, 0.013]}
    fig = plots.timing_figure(times, 1.09, "GPT2Model (the body)")
    bare, collect = fig.data
    assert (
        list(bare.x) == [1, 2]
        and np.allclose(bare.y, [10.0, 12.0])
        and np.allclose(collect.y, [11.0, 13.0])
    )
    assert "1.09x" in fig.layout.title.text and "GPT2Model" in fig.layout.title.text
