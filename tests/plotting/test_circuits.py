"""Figures of the circuits analysis carry the numbers they are given."""

from __future__ import annotations

import numpy as np

from interp.methods.circuits.graph import make_graph, node_dicts
from interp.plotting import circuits as plots


def test_faithfulness_figure_draws_each_curve_and_a_band_for_random():
    curves = [
        {"name": "EAP", "k": [0, 1, 10], "share": [0.0, 0.1, 1.0], "f": [0.0, 0.5, 1.0]},
        {
            "name": "random",
            "k": [0, 1, 10],
            "share": [0.0, 0.1, 1.0],
            "f": [0.0, 0.1, 1.0],
            "f_std": [0.0, 0.05, 0.0],
        },
    ]
    fig = plots.faithfulness_figure(curves)
    lines = [d for d in fig.data if d.mode == "lines+markers"]
    assert [d.name for d in lines] == ["EAP", "random"]
    assert np.allclose(lines[0].x, [0.1, 1.0]) and np.allclose(
        lines[0].y, [0.5, 1.0]
    )  # share 0 is off a log axis
    assert len(fig.data) == 3  # the band of the random curve
    assert fig.layout.xaxis.type == "log"


def test_circuit_figure_draws_one_line_per_edge_between_the_right_components():
    g = make_graph("t", 2, 2, 2, True, False)
    edges = [
        {"writer": 0, "reader": g.logits_reader, "score": 1.0},
        {"writer": g.head_writer(0, 1), "reader": g.attn_readers(1).start + 1, "score": -0.5},
    ]
    fig = plots.circuit_figure(node_dicts(g.writers), node_dicts(g.readers), edges, 2, 2, 2)
    lines = [d for d in fig.data if d.mode == "lines"]
    assert len(lines) == 2
    assert lines[0].x == (0.5, 0.5) and lines[0].y[0] == -1.0  # input (below) to logits (on top)
    assert lines[1].x == (1.0, 1.0) and lines[1].y[0] == 0.0  # a0.h1 up to a1.h1's query
    assert lines[0].line.width > lines[1].line.width


def test_edge_scatter_figure_plots_approximate_against_exact():
    fig = plots.edge_scatter_figure(np.array([1.0, 2.0]), np.array([1.1, 1.9]))
    assert np.allclose(fig.data[0].x, [1.1, 1.9]) and np.allclose(fig.data[0].y, [1.0, 2.0])
