"""Figures of the RNN-emulates-HMM analysis, built from small synthetic data: traces and values."""

from __future__ import annotations

import numpy as np

from interp.plotting import rnn_hmm as plots


def _orbit(n=50, seed=0):
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(n, 3))
    outputs = np.where(np.arange(n) < 30, 0, 2)
    rt = np.concatenate([np.full(10, 1.0), np.full(10, 5.0), np.full(25, 20.0), np.full(5, np.nan)])
    return Z, outputs, rt


def test_orbit_by_output_and_by_region():
    Z, outputs, rt = _orbit()
    fig = plots.orbit_figure(
        Z, outputs, rt, switch_paths=(np.array([0.5, 1.0]), np.array([-0.5, -1.0]))
    )
    names = [t.name for t in fig.data]
    assert names == [
        "output 0",
        "output 2",
        *plots.REGION_NAMES,
        "switch a->b (mean)",
        "switch b->a (mean)",
    ]
    assert len(fig.data[0].x) == 30 and len(fig.data[1].x) == 20
    assert [len(t.x) for t in fig.data[2:5]] == [
        10,
        10,
        25,
    ]  # the 5 censored (NaN) states are in no region
    np.testing.assert_array_equal(fig.data[2].x, Z[:10, 0])
    assert list(fig.data[5].x) == [0.5] and list(fig.data[6].y) == [-1.0]
    assert len(plots.orbit_figure(Z, outputs, rt).data) == 5
    # given regions (the paper's rule can leave a slow state in none) override the thresholds
    reg = np.where(np.arange(len(Z)) < 40, 2, -1)
    assert [len(t.x) for t in plots.orbit_figure(Z, outputs, rt, regions=reg).data[2:5]] == [
        0,
        0,
        40,
    ]


def test_transition_matrices_side_by_side():
    P = np.array([[0.9, 0.1], [0.2, 0.8]])
    fig = plots.transition_matrices_figure(P, P.T)
    assert len(fig.data) == 2
    np.testing.assert_array_equal(fig.data[0].z, P)
    np.testing.assert_array_equal(fig.data[1].z, P.T)


def test_fixed_points_one_trace_per_stability():
    Z, _, _ = _orbit()
    fp = np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 0.0], [3.0, 4.0, 0.0]])
    fig = plots.fixed_points_figure(Z, fp, ["stable", "saddle", "stable"])
    assert [t.name for t in fig.data] == ["orbit", "saddle", "stable"]
    assert list(fig.data[2].x) == [0.0, 3.0] and fig.data[2].marker.symbol == "circle"
    assert fig.data[1].marker.symbol == "x"


def test_speed_colours_are_log_speed():
    Z, _, _ = _orbit()
    q = np.logspace(-6, 0, len(Z))
    fig = plots.speed_figure(Z, q)
    np.testing.assert_allclose(fig.data[0].marker.color, np.log10(q + 1e-12))


def test_spectra_top_three_eigenvalues_per_region():
    ev = np.array([[1.2 + 0.1j, 0.5, 0.1, 0.0], [0.9, 0.3j, -0.3j, 0.0], [0.8, 0.1, 0.0, 0.0]])
    fig = plots.spectra_figure(ev, np.array([0, 0, 2]))
    assert [t.name for t in fig.data] == [
        "|lambda| = 1",
        plots.REGION_NAMES[0],
        plots.REGION_NAMES[2],
    ]
    np.testing.assert_allclose(fig.data[1].x, ev[:2, :3].reshape(-1).real)
    np.testing.assert_allclose(fig.data[1].y, ev[:2, :3].reshape(-1).imag)
    assert len(fig.data[2].x) == 3


def test_residency_histogram_clips_and_drops_censored():
    fig = plots.residency_figure(np.array([1.0, 3.0, 100.0, np.nan]))
    assert list(fig.data[0].x) == [1.0, 3.0, 60.0]
    assert [s.x0 for s in fig.layout.shapes] == [2, 8]


def test_ablation_and_training():
    abl = {
        "kick_deltas": {"0->2": -0.4, "2->0": -0.2},
        "activity_delta": 0.1,
        "random_deltas": [0.0, 0.05],
        "base_switch_rate": 0.02,
    }
    bar = plots.ablation_figure(abl).data[0]
    assert list(bar.y) == [-0.4, -0.2, 0.1, 0.0, 0.05] and list(bar.x[:3]) == [
        "kick 0->2",
        "kick 2->0",
        "activity top",
    ]
    rows = [{"step": 1, "row_error": 0.5, "pc1": 0.3}, {"step": 5, "row_error": 0.1, "pc1": 0.6}]
    fig = plots.training_figure(rows)
    assert len(fig.data) == 7
    by_name = {t.name: t for t in fig.data}
    assert list(by_name["row_error"].x) == [1, 5] and list(by_name["row_error"].y) == [0.5, 0.1]
    assert list(by_name["switch_error"].y) == [None, None]
