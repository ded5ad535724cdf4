"""Figures of the n-gram heads analysis, built from small synthetic data: traces and values."""

from __future__ import annotations

import numpy as np

from interp.plotting import ngram_heads as plots


def test_accuracy_tvd_bars_show_each_value():
    fig = plots.accuracy_tvd_bars(
        {"transformer": 0.8, "LSTM": 0.6}, {"transformer": 0.2, "LSTM": 0.4}
    )
    assert len(fig.data) == 2
    assert list(fig.data[0].x) == ["transformer", "LSTM"] and list(fig.data[0].y) == [0.8, 0.6]
    assert list(fig.data[1].y) == [0.2, 0.4] and list(fig.data[1].text) == ["0.200", "0.400"]


def test_by_position_smooths_over_the_scored_positions():
    acc = {"a": np.array([1.0, 0.0, np.nan, 1.0]), "b": np.ones(4)}
    tvd = {"a": np.zeros(4), "b": np.full(4, 0.5)}
    fig = plots.by_position(acc, tvd, window=2)
    assert len(fig.data) == 4 and [t.showlegend for t in fig.data] == [True, True, False, False]
    np.testing.assert_allclose(fig.data[0].y, [1.0, 0.5, 0.0, 1.0])  # NaN left out of each window
    np.testing.assert_allclose(fig.data[3].y, 0.5)
    raw = plots.by_position(acc, tvd, window=1)
    np.testing.assert_array_equal(raw.data[0].y, acc["a"])


def test_head_score_heatmaps_one_per_n_and_score():
    rng = np.random.default_rng(0)
    scores = {n: {"mass": rng.random((2, 3)), "ratio": 5 * rng.random((2, 3))} for n in (3, 2)}
    fig = plots.head_score_heatmaps(scores)
    assert len(fig.data) == 4
    np.testing.assert_array_equal(fig.data[0].z, scores[2]["mass"])  # sorted by n, mass then ratio
    np.testing.assert_array_equal(fig.data[3].z, scores[3]["ratio"])
    assert list(fig.data[0].x) == ["H0", "H1", "H2"] and list(fig.data[0].y) == ["L0", "L1"]
    assert fig.data[1].zmax == max(3.0, float(scores[2]["ratio"].max()))


def test_attention_marks_every_match():
    pattern = np.tril(np.ones((4, 4))) / np.arange(1, 5)[:, None]
    matches = np.zeros((4, 4), dtype=bool)
    matches[2, 1] = matches[3, 2] = True
    fig = plots.attention_with_matches(pattern, matches, list("abab"), "L1H0")
    heat, marks = fig.data
    np.testing.assert_array_equal(heat.z, pattern)
    assert list(marks.x) == ["1:b", "2:a"] and list(marks.y) == ["2:a", "3:b"]
    assert "L1H0" in fig.layout.title.text


def test_ablation_bars_top_then_random():
    fig = plots.ablation_bars(0.3, [0.1, 0.05], [(1, 2), (0, 3)])
    bar = fig.data[0]
    assert list(bar.y) == [0.3, 0.1, 0.05] and bar.x[0] == "top n-gram heads (L1H2, L0H3)"
    assert fig.layout.shapes[0].y0 == np.mean([0.1, 0.05])


def test_probe_r2_one_line_per_model():
    fig = plots.probe_r2(
        {"LSTM": {"hook_embed": 0.1, "blocks.0.hook_out": 0.4}, "transformer": {"x": 0.2}}
    )
    assert len(fig.data) == 2 and [t.name for t in fig.data] == ["LSTM", "transformer"]
    assert list(fig.data[0].x) == ["hook_embed", "blocks.0.hook_out"] and list(fig.data[0].y) == [
        0.1,
        0.4,
    ]
