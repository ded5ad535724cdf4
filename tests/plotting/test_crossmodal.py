"""Figures of the cross-modal knockout analysis carry the numbers they are given."""

from __future__ import annotations

import numpy as np

from interp.plotting import crossmodal as plots

EDGES = ("image->question", "question->last", "all->last")


def test_edge_curves_draw_one_line_per_edge():
    scores = np.array([[-1.0, -50.0, 0.0], [0.0, -80.0, -10.0], [-100.0, -100.0, -100.0]])  # [E, L]
    fig = plots.edge_curves(scores, EDGES, window=3)
    assert [t.name for t in fig.data] == list(EDGES)
    for e, t in enumerate(fig.data):
        assert list(t.x) == [0, 1, 2] and np.allclose(t.y, scores[e])
    assert fig.data[2].line.dash == "dot" and "window 3" in fig.layout.title.text


def test_edges_by_type_leaves_out_the_sanity_edge():
    scores = np.arange(2 * 3 * 4, dtype=float).reshape(2, 3, 4)  # [type, E, L]
    fig = plots.edges_by_type(scores, EDGES, ["query_attr", "choose_rel"], window=1)
    assert len(fig.data) == 2 * 2  # two types x two edges (all->last left out)
    assert np.allclose(fig.data[3].y, scores[1, 1]) and fig.data[3].name == "question->last"
    assert [a.text for a in fig.layout.annotations] == ["query_attr", "choose_rel"]
    assert [t.showlegend for t in fig.data] == [True, True, False, False]


def test_patch_set_and_logit_lens_curves():
    names = ("object->question", "random->question", "nonobject->question", "nonrandom->question")
    scores = np.array([[-20.0, -5.0], [-2.0, -1.0], [-1.0, 0.0], [-9.0, -3.0]])
    fig = plots.patch_set_curves(scores, names, window=1)
    assert [t.name for t in fig.data] == list(names) and np.allclose(fig.data[3].y, scores[3])
    assert [t.line.dash for t in fig.data] == [
        None,
        "dash",
        None,
        "dash",
    ]  # the random controls dashed
    assert fig.data[0].line.color == fig.data[1].line.color
    with_norm, without = np.array([0.1, 0.4, 0.9]), np.array([0.05, 0.2, 0.3])
    fig = plots.logit_lens(with_norm, without)
    assert list(fig.data[0].x) == ["embed", "L0", "L1"]
    assert np.allclose(fig.data[0].y, with_norm) and np.allclose(fig.data[1].y, without)
    assert tuple(fig.layout.yaxis.range) == (0, 1)


def test_attention_on_image_overlays_patch_attention():
    image = np.zeros((32, 32, 3))
    image[:8, :8] = 1.0
    att = np.zeros((2, 64))
    att[0, 0], att[1, 9] = 1.0, 0.5
    obj = np.zeros(64, bool)
    obj[[0, 1]] = True
    fig = plots.attention_on_image(
        image, att, "what color is the square ?", layer=None, object_patches=obj
    )
    img, heat = fig.data
    assert np.asarray(img.z).shape == (32, 32, 3) and np.asarray(img.z)[0, 0, 0] == 255
    z = np.asarray(heat.z)
    assert z.shape == (32, 32)
    assert np.allclose(z[:4, :4], 0.5) and np.allclose(
        z[4:8, 4:8], 0.25
    )  # mean over layers, 4x4 pixels a patch
    assert len(fig.layout.shapes) == 2  # one box per object patch
    assert "mean over layers" in fig.layout.title.text and "square" in fig.layout.title.text
    one = plots.attention_on_image(image, att, "q", layer=1)
    assert (
        np.allclose(np.asarray(one.data[1].z)[4:8, 4:8], 0.5) and "layer 1" in one.layout.title.text
    )
