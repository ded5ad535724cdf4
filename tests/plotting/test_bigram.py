"""Figures and tables of the bigram analysis carry the numbers they are given."""

from __future__ import annotations

import numpy as np

from interp.plotting import bigram as plots


def test_sweep_figure_marks_lambdas_soft_masks_and_the_chosen_point():
    kept, r, soft = [0.2, 0.05, 0.01], [0.95, 0.9, 0.7], [0.96, 0.85, 0.6]
    fig = plots.sweep_figure(kept, r, [1.0, 5.0, 20.0], chosen=1, r_soft=soft)
    assert len(fig.data) == 3
    assert np.allclose(fig.data[0].x, [20.0, 5.0, 1.0]) and np.allclose(fig.data[0].y, r)  # % kept
    assert list(fig.data[0].text) == ["λ=1", "λ=5", "λ=20"]
    assert np.allclose(fig.data[1].y, soft)
    assert list(fig.data[2].x) == [5.0] and list(fig.data[2].y) == [0.9]
    assert len(plots.sweep_figure(kept, r, [1.0, 5.0, 20.0]).data) == 1
    assert not plots.sweep_figure(kept, r, [1.0, 5.0, 20.0]).layout.shapes


def test_sweep_figure_draws_the_zero_mask_floor():
    fig = plots.sweep_figure([0.2, 0.05], [0.95, 0.9], [1.0, 5.0], floor_r=0.61)
    (line,) = fig.layout.shapes
    assert line.y0 == line.y1 == 0.61
    assert "0.610" in fig.layout.annotations[0].text
    assert not plots.sweep_figure([0.2], [0.9], [1.0], floor_r=float("nan")).layout.shapes


def test_density_and_head_density_are_percentages():
    table = np.array([[0.1, 0.2], [np.nan, 0.05]])
    (hm,) = plots.density_heatmap(table, [0, 1], ["W_Q", "W_in"]).data
    assert np.allclose(np.asarray(hm.z, float), table * 100, equal_nan=True)
    assert list(hm.x) == ["W_Q", "W_in"] and list(hm.y) == ["L0", "L1"]
    heads = {"blocks.0.W_Q": np.array([0.5, 0.25]), "blocks.1.W_O": np.array([0.0, 1.0])}
    (hm,) = plots.head_density(heads).data
    assert (
        np.allclose(hm.z, [[50, 25], [0, 100]])
        and list(hm.y) == list(heads)
        and list(hm.x) == ["H0", "H1"]
    )


def test_surprisal_bars_and_rows():
    rows = {"full": 2.5, "subnetwork": 4.0, "random_subnetwork": 7.25}
    fig = plots.surprisal_bars(rows, bigram=3.5)
    (bar,) = fig.data
    assert list(bar.x) == list(rows) and np.allclose(bar.y, list(rows.values()))
    assert list(bar.text) == ["2.50", "4.00", "7.25"] and fig.layout.shapes[0].y0 == 3.5
    assert plots.surprisal_rows(rows)[1] == {
        "condition": "subnetwork",
        "mean surprisal (nats)": 4.0,
    }


def test_residual_figure_draws_two_panels_per_model():
    recall = {"full": np.array([1.0, 0.5, 0.1]), "random": np.array([0.9, 0.2, 0.0])}
    final_r = {"full": np.array([0.2, 0.6, 1.0]), "random": np.array([0.1, 0.3, 0.9])}
    fig = plots.residual_figure(recall, final_r, k=5)
    assert len(fig.data) == 4
    assert np.allclose(fig.data[0].y, recall["full"]) and fig.data[0].xaxis == "x"
    assert np.allclose(fig.data[1].y, final_r["full"]) and fig.data[1].xaxis == "x2"
    assert np.allclose(fig.data[3].y, final_r["random"]) and list(fig.data[2].x) == [0, 1, 2]
    assert fig.layout.annotations[0].text == "current token recall@5"


def test_null_histogram_and_sweep_rows():
    null = np.array([3, 4, 4, 5, 6])
    fig = plots.null_histogram(null, observed=9, p=0.0123)
    assert np.array_equal(np.asarray(fig.data[0].x), null)
    assert fig.layout.shapes[0].x0 == 9 and "p=0.012" in fig.layout.annotations[0].text
    point = {
        "lambda": 5.0,
        "kept_fraction": 0.012345,
        "r": 0.912345,
        "r_soft": 0.8,
        "loss": 3.14159,
        "steps": 10,
        "stopped_early": True,
    }
    assert plots.sweep_rows([point]) == [
        {
            "lambda": 5.0,
            "% kept": 1.234,
            "r": 0.9123,
            "r (soft mask)": 0.8,
            "loss (nats)": 3.142,
            "steps": 10,
            "stopped early": True,
        }
    ]
