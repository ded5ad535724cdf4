"""Figures of the sae experiment, built from synthetic data."""

from __future__ import annotations

import numpy as np
import pytest

from interp.plotting import sae as plots


def test_loss_bars_show_the_three_losses_and_the_recovered_fraction():
    fig = plots.loss_bars(2.0, 2.5, 7.0)
    assert (
        list(fig.data[0].y) == [2.0, 2.5, 7.0] and "loss recovered 0.900" in fig.layout.title.text
    )


def test_density_histogram_counts_dead_latents_apart():
    fig = plots.density_histogram(np.array([0.0, 0.0, 0.01, 0.1]))
    assert (
        np.allclose(fig.data[0].x, [-2.0, -1.0])
        and "2 of 4 latents never fire" in fig.layout.title.text
    )


def test_training_curve_plots_the_logged_losses():
    fig = plots.training_curve([{"step": 0, "loss": 3.0}, {"step": 10, "loss": 1.0}, {"step": 20}])
    assert list(fig.data[0].x) == [0, 10] and list(fig.data[0].y) == pytest.approx([3.0, 1.0])
