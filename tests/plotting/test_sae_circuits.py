"""Figures of the SAE circuit comparison, each built from small synthetic data: the numbers
drawn are the numbers given."""

from __future__ import annotations

import numpy as np
import pytest

from interp.plotting import sae_circuits as plots

# the labels the analysis passes (its scorer registry's, interp.methods.sae_scores.family)
LABELS = {
    "paper_node": "SAE node (paper)",
    "ours": "SAE code shift (ours)",
    "flip": "SAE paired code flip (ours)",
    "act_patch": "activation patching, other prompts (retest ceiling)",
    "ties": "all tied",
}


def test_head_heatmaps_scale_each_panel_and_keep_raw_values():
    truth = np.array([[0.0, 2.0], [1.0, 4.0]])  # [layer, head]
    scores = {
        "ours": np.array([[5.0, 5.0], [5.0, 5.0]]),
        "act_patch": np.array([[-1.0, 0.0], [1.0, 3.0]]),
    }
    fig = plots.head_heatmaps(scores, truth, "m / t", LABELS)
    assert [a.text for a in fig.layout.annotations] == [
        "ground truth |effect|",
        "SAE code shift (ours)",
        "activation patching, other prompts (retest ceiling)",
    ]
    gt, ours, act = fig.data
    np.testing.assert_allclose(np.asarray(gt.z), truth / 4)  # min-max scaled
    np.testing.assert_allclose(np.asarray(gt.customdata), truth)  # hover shows the raw value
    np.testing.assert_array_equal(
        np.asarray(ours.z), np.zeros((2, 2))
    )  # constant: no division by zero
    np.testing.assert_allclose(np.asarray(act.z), (scores["act_patch"] + 1) / 4)
    assert [t.showscale for t in fig.data] == [
        True,
        False,
        False,
    ] and "m / t" in fig.layout.title.text
    many = plots.head_heatmaps({f"s{i}": truth for i in range(5)}, truth)  # 6 panels: 4 per row
    assert many.layout.height == 600


def test_roc_figure_draws_each_curve_and_chance():
    curves = {
        "ours": (np.array([0, 0.5, 1]), np.array([0, 1, 1])),
        "random": (np.array([0, 1]), np.array([0, 1])),
    }
    fig = plots.roc_figure(curves, "x", LABELS)
    assert [t.name for t in fig.data] == ["SAE code shift (ours)", "random", "chance"]
    assert list(fig.data[0].x) == [0, 0.5, 1] and list(fig.data[0].y) == [0, 1, 1]
    assert fig.data[0].line.shape == "hv"  # a step curve: thresholds are discrete


def test_auc_summary_groups_bars_by_threshold():
    auc = {"paper_node": [0.6, 0.7], "ours": [0.9, 0.8]}
    fig = plots.auc_summary(auc, [0.25, 0.5], LABELS)
    assert [t.name for t in fig.data] == ["top 25% heads", "top 50% heads"]
    assert list(fig.data[0].x) == ["SAE node (paper)", "SAE code shift (ours)"]
    assert list(fig.data[0].y) == [0.6, 0.9] and list(fig.data[1].y) == [0.7, 0.8]
    assert sorted(s.y0 for s in fig.layout.shapes) == [0.5, 0.8]  # chance and the paper's claim


def test_auc_vs_prompts_one_line_per_scorer():
    fig = plots.auc_vs_prompts(
        [5, 10, 20], {"paper_node": [0.5, 0.6, 0.7], "ours": [0.6, 0.7, 0.9]}, LABELS
    )
    assert [t.name for t in fig.data] == ["SAE node (paper)", "SAE code shift (ours)"]
    assert list(fig.data[1].x) == [5, 10, 20] and list(fig.data[1].y) == [0.6, 0.7, 0.9]


def test_null_control_puts_true_and_shuffled_side_by_side():
    fig = plots.null_control(
        {"paper_node": 0.8, "ours": 0.9}, {"paper_node": 0.52, "ours": 0.47}, LABELS
    )
    assert [t.name for t in fig.data] == ["true labels", "shuffled labels (null)"]
    assert list(fig.data[0].y) == [0.8, 0.9] and list(fig.data[1].y) == [0.52, 0.47]
    (band,) = fig.layout.shapes
    assert (band.y0, band.y1) == (0.35, 0.65)


def test_runtime_bars_on_a_log_axis():
    fig = plots.runtime_bars({"ours": 2.0, "act_patch": 0.5, "random": 1e-3}, LABELS)
    assert list(fig.data[0].x) == [
        "SAE code shift (ours)",
        "activation patching, other prompts (retest ceiling)",
        "random",
    ]
    assert list(fig.data[0].y) == pytest.approx([2.0, 0.5, 1e-3]) and fig.layout.yaxis.type == "log"


def test_labels_name_the_feature_mode_and_planted_bars_keep_values():
    fig = plots.planted_control(
        {"flip.position": 0.95, "paper_node.mean": 0.6, "ties": 0.5}, LABELS
    )
    assert list(fig.data[0].x) == [
        "SAE paired code flip (ours) [position]",
        "SAE node (paper) [mean]",
        "all tied",
    ]
    assert list(fig.data[0].y) == [0.95, 0.6, 0.5]
