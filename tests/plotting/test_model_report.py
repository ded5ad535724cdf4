"""Figures of the model report carry the numbers they are given."""

from __future__ import annotations

import numpy as np

from interp.plotting import model_report as plots


def test_logit_lens_figure_plots_loss_and_accuracy_by_layer():
    loss, acc = np.array([5.0, 3.5, 2.25]), np.array([0.1, 0.3, 0.5])
    fig = plots.logit_lens_figure(loss, acc, unigram=4.0)
    assert len(fig.data) == 2
    assert list(fig.data[0].x) == ["embed", "L0", "L1"] and np.allclose(fig.data[0].y, loss)
    assert np.allclose(fig.data[1].y, acc) and fig.data[1].yaxis == "y2"
    assert [s.y0 for s in fig.layout.shapes] == [4.0]  # the unigram line
    assert len(plots.logit_lens_figure(loss, acc).layout.shapes) == 0


def test_head_heatmap_and_head_scores_keep_layer_head_layout():
    values = np.arange(6, dtype=float).reshape(2, 3)  # [layer, head]
    fig = plots.head_heatmap(values, "my title")
    (hm,) = fig.data
    assert np.array_equal(np.asarray(hm.z), values)
    assert list(hm.x) == ["H0", "H1", "H2"] and list(hm.y) == ["L0", "L1"]
    assert fig.layout.title.text == "my title"
    prev, first = values / 10, 1 - values / 10
    fig = plots.head_scores_figure(prev, first)
    assert len(fig.data) == 2
    assert np.allclose(fig.data[0].z, prev) and np.allclose(fig.data[1].z, first)


def test_attention_grid_shows_one_layer_at_a_time():
    L, H, T = 3, 2, 4
    patterns = np.random.default_rng(0).random((L, H, T, T))
    fig = plots.attention_grid(patterns, ["a", "b", "c", "d"])
    assert len(fig.data) == L * H
    assert [t.visible for t in fig.data] == [layer == 0 for layer in range(L) for _ in range(H)]
    assert np.allclose(fig.data[H + 1].z, patterns[1, 1])  # layer 1, head 1
    assert list(fig.data[0].x) == ["0:'a'", "1:'b'", "2:'c'", "3:'d'"]
    buttons = fig.layout.updatemenus[0].buttons
    assert [b.label for b in buttons] == ["layer 0", "layer 1", "layer 2"]
    assert buttons[2].args[0]["visible"] == [layer == 2 for layer in range(L) for _ in range(H)]
    assert len(plots.attention_grid(np.zeros((1, 12, 2, 2)), ["x", "y"], max_heads=8).data) == 8
