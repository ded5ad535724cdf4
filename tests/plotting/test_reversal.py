"""Figures of the reversal-curse probes, built from small synthetic data: traces and values."""

from __future__ import annotations

import numpy as np

from interp.data.reversal import DIRECTIONS, GROUPS, SPLITS
from interp.plotting import reversal as plots

PROBE_KINDS = ("trained", "untrained")


def test_accuracy_grid_mean_over_seeds_and_reverse_cells_marked():
    rng = np.random.default_rng(0)
    acc = rng.random((2, 3, 2, len(DIRECTIONS), len(GROUPS), len(SPLITS)))  # [V, O, seed, D, G, S]
    acc[0, 0, 1] = np.nan  # a missing seed is left out of the mean
    fig = plots.accuracy_grid(
        acc, ["token", "text"], ["clm", "mlm15", "mlmu"], GROUPS, DIRECTIONS, SPLITS
    )
    assert len(fig.data) == 4  # variant x split
    z = np.asarray(fig.data[0].z)  # token, train: rows objectives, columns direction x group
    assert z.shape == (3, len(DIRECTIONS) * len(GROUPS))
    np.testing.assert_allclose(z[0], acc[0, 0, 0, :, :, 0].reshape(-1))
    np.testing.assert_allclose(z[1], acc[0, 1, :, :, :, 0].mean(0).reshape(-1))
    np.testing.assert_allclose(
        np.asarray(fig.data[3].z)[2], acc[1, 2, :, :, :, 1].mean(0).reshape(-1)
    )
    x = list(fig.data[0].x)
    assert sum("(reverse)" in c for c in x) == 2  # name_first asked d2n, desc_first asked n2d
    assert list(fig.data[0].y) == ["causal LM", "masked LM 15%", "MLM-U"]


def test_logprob_boxes_split_trained_and_reverse_pairs():
    n_objectives, n_seeds, n_pairs = 2, 2, 6
    correct = np.zeros((n_objectives, n_seeds, len(DIRECTIONS), len(SPLITS), n_pairs))
    rand = np.zeros_like(correct)
    correct[..., 0, :] = np.arange(n_pairs)  # difference = pair index on training templates
    pair_group = np.array([0, 0, 1, 1, 2, 2])  # name_first, desc_first, both
    fig = plots.logprob_figure(
        {"token": (correct, rand, pair_group)}, ["clm", "mlmu"], GROUPS, DIRECTIONS
    )
    trained, reverse = fig.data
    assert trained.name == "trained direction" and reverse.name == "reverse (never trained)"
    # per objective: n2d is trained by pairs 0, 1, 4, 5 and d2n by 2, 3, 4, 5
    assert sorted(trained.y) == sorted([0, 1, 4, 5, 2, 3, 4, 5] * 2)
    assert sorted(reverse.y) == sorted([2, 3, 0, 1] * 2)
    assert list(reverse.x).count("causal LM") == 4


def test_probe_lines_per_model_and_kind_with_chance():
    rng = np.random.default_rng(1)
    probe = rng.random(
        (1, 2, 3, len(DIRECTIONS), len(PROBE_KINDS), 3)
    )  # [V, O, seed, D, kind, layer+1]
    fig = plots.probe_figure(
        probe, ["token"], ["clm", "mlmu"], DIRECTIONS, PROBE_KINDS, {"token": 0.25}
    )
    assert [t.name for t in fig.data] == [
        "causal LM, trained",
        "causal LM, untrained",
        "MLM-U, trained",
        "MLM-U, untrained",
    ]
    assert list(fig.data[0].x) == ["embed", "L0", "L1"]
    np.testing.assert_allclose(fig.data[3].y, probe[0, 1, :, :, 1].mean(axis=(0, 1)))
    assert fig.data[1].line.dash == "dash" and fig.data[0].line.dash == "solid"
    assert fig.layout.shapes[0].y0 == 0.25
