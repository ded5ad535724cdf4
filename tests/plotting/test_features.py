"""Feature-page figures and HTML from small synthetic data: the numbers drawn are the numbers
given."""

from __future__ import annotations

import re

import numpy as np

from interp.plotting import features as plots
from interp.sae.features import histogram_edges


def test_histogram_draws_the_counts_on_log_bins():
    edges = histogram_edges(4, (-2.0, 2.0))  # 0.01, 0.1, 1, 10, 100
    counts = np.array([0, 3, 5, 1])
    fig = plots.histogram_figure(edges, counts, 0.25, "latent 7")
    bar = fig.data[0]
    np.testing.assert_array_equal(np.asarray(bar.y), counts)
    np.testing.assert_allclose(np.asarray(bar.x), [10**-1.5, 10**-0.5, 10**0.5, 10**1.5])
    assert fig.layout.xaxis.type == "log"
    assert "density 0.25" in fig.layout.title.text and "latent 7" in fig.layout.title.text


def test_logit_figure_has_both_panels_in_order():
    fig = plots.logit_figure(["a", " b"], [2.0, 1.0], ["\n"], [-3.0])
    up, down = fig.data
    assert list(up.y) == ["a", " b"] and list(up.x) == [2.0, 1.0]
    assert list(down.y) == ["\\n"] and list(down.x) == [-3.0]  # newline shown, not drawn
    assert [a.text for a in fig.layout.annotations] == ["promoted", "suppressed"]


def test_context_html_escapes_tokens_and_scales_the_highlight():
    out = plots.context_html(["<b>", "x", "&"], [0.0, 2.0, 1.0], 2.0, center=1)
    assert "&lt;b&gt;" in out and "&amp;" in out
    alphas = [float(a) for a in re.findall(r"rgba\([^)]*, ([0-9.]+)\)", out)]
    assert alphas == [0.0, 1.0, 0.5]
    assert out.count("underline") == 1 and 'title="2"' in out
    assert "rgba" in plots.context_html(["a"], [1.0], 0.0)  # a dead latent: no division by zero
