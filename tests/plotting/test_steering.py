"""Figures of the steering experiment and the explorer's steering view, from synthetic data."""

from __future__ import annotations

import numpy as np
import pytest

from interp.plotting import steering as plots


def test_relevance_and_loss_figures_plot_every_coefficient():
    fig = plots.relevance_figure(
        [0, 1, 2], np.array([-9.0, -8.0, -7.0]), np.array([-9.0, -9.1, -9.0]), "x"
    )
    assert [list(t.y) for t in fig.data] == [[-9.0, -8.0, -7.0], [-9.0, -9.1, -9.0]]
    assert list(plots.loss_figure([0, 1], np.array([3.0, 3.5])).data[0].x) == [0, 1]


def test_caa_figure_has_one_line_per_question_and_the_mean():
    fig = plots.caa_figure(
        np.array([0.2, 0.4]), np.array([0.5, 0.5]), np.array([0.8, 0.6]), 2.0, "optimism"
    )
    assert len(fig.data) == 3 and list(fig.data[-1].y) == pytest.approx([0.3, 0.5, 0.7])
    assert list(fig.data[-1].x) == ["-2", "0", "+2"]


def test_token_shift_colours_by_sign_and_tables_show_every_condition():
    fig = plots.token_shift_figure(["a", "b"], [0.5, 0.1], [0.2, 0.3])
    assert list(fig.data[0].y) == pytest.approx([0.3, -0.2])
    assert fig.data[0].marker.color[0] != fig.data[0].marker.color[1]
    table = plots.examples_table([{"prompt": "p", "unsteered": "u", "steered": "s"}])
    assert list(table.data[0].header.values) == ["prompt", "unsteered", "steered"]
    assert plots.examples_table([]).data == ()
    assert "latent 3" in plots.sae_figure(-5.0, -2.0, ["x"], 3).layout.title.text
