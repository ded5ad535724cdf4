"""The live explorer's figures (interp/plotting/explorer.py): the data they are given is what
they draw, in the documented layout."""

from __future__ import annotations

import numpy as np

from interp.plotting import explorer


def test_predictions_list_the_most_likely_token_on_top():
    fig = explorer.predictions_figure(["a", "b", "c"], np.array([0.5, 0.3, 0.2]))
    (bar,) = fig.data
    assert list(bar.y) == ["'c'", "'b'", "'a'"] and list(bar.x) == [
        0.2,
        0.3,
        0.5,
    ]  # plotly draws bottom-up


def test_heads_grid_has_one_panel_per_head_in_rows_of_four():
    patterns = np.random.default_rng(0).random((6, 5, 5))
    fig = explorer.heads_grid(patterns, list("abcde"))
    assert len(fig.data) == 6 and [a.text for a in fig.layout.annotations] == [
        f"head {h}" for h in range(6)
    ]
    assert np.array_equal(fig.data[5].z, patterns[5]) and fig.layout.height == 2 * 260


def test_lens_and_head_effect_figures_label_layers_and_tokens():
    lens = np.random.default_rng(1).random((3, 4))  # embedding + 2 layers, 4 positions
    fig = explorer.lens_figure(lens, ["x", "y", "z", "w"], lens[:, -1], "w")
    heat, curve = fig.data
    assert list(heat.y) == ["embed", "L0", "L1"] and list(heat.x)[0] == "0:'x'"
    assert np.array_equal(curve.x, lens[:, -1])
    effect = np.array([[0.5, -0.25]])
    fig = explorer.head_effect_figure(effect, "w")
    assert (
        list(fig.data[0].x) == ["H0", "H1"]
        and list(fig.data[0].y) == ["L0"]
        and fig.data[0].zmid == 0
    )
    long = explorer.head_pattern(np.eye(2), ["a-very-long-token-indeed", "b"], "L0H0")
    assert all(len(label) <= 16 for label in long.data[0].x)
