"""Synthetic VQA data: shapes land in their boxes, questions are answerable, split by scene."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interp.data import crossmodal as vqa


@pytest.fixture(scope="module")
def data():
    return vqa.make_vqa(n_train=240, n_test=60, seed=3)


def test_every_question_type_and_single_token_answers(data):
    tok = vqa.vqa_tokenizer()
    assert {s.qtype for s in data.train} == set(vqa.QUESTION_TYPES)
    for s in data.train + data.test:
        assert s.answer in vqa.answer_words()
        ids = tok.encode(s.answer, add_special_tokens=False)
        assert len(ids) == 1 and ids[0] != tok.unk_token_id
        assert tok.unk_token_id not in tok.encode(s.question, add_special_tokens=False)
    assert len(tok) <= 60  # ~50-token question vocabulary


def test_split_is_by_scene(data):
    used = {s.scene_id for s in data.test}
    stream = {}
    for sid, scene in vqa.scene_stream(3, "test"):
        if sid > max(used):
            break
        stream[sid] = scene.key()
    assert not {stream[i] for i in used} & data.train_scene_keys
    assert vqa.train_scene_keys(240, 3) == data.train_scene_keys


def test_objects_are_drawn_in_their_boxes_and_answers_follow_the_scene():
    rng = np.random.default_rng(0)
    for _ in range(30):
        scene = vqa.random_scene(rng)
        img = scene.render(noise=0.0)
        assert img.shape == (32, 32, 3)
        covered = np.zeros((32, 32), bool)
        for o in scene.objects:
            x0, y0, x1, y1 = o.box
            covered[y0:y1, x0:x1] = True
            patch = img[y0:y1, x0:x1].reshape(-1, 3)
            assert (
                np.isclose(patch, vqa.COLORS[o.color]).all(-1).sum() >= 12
            )  # the shape has its colour
        assert np.allclose(img[~covered], vqa.BACKGROUND)
        q, a, mentioned = vqa.make_question(scene, "query_attr", rng)
        assert a == mentioned[0].color and mentioned[0].shape in q
        rel = vqa.make_question(scene, "choose_rel", rng)
        if rel is not None:
            o1, o2 = rel[2]
            assert rel[1] == ("left" if o1.slot[1] < o2.slot[1] else "right")


def test_encode_layout_and_patches(data):
    tok = vqa.vqa_tokenizer()
    b = vqa.encode(tok, data.test[:5])
    img_id = tok.convert_tokens_to_ids(vqa.IMAGE_TOKEN)
    assert (b["tokens"][:, 0] == tok.bos_token_id).all()
    assert (b["tokens"][:, 1:65] == img_id).all()
    assert b["pixels"].shape == (5, 64, 48)
    # patch 9 is row 1, col 1 of the 8x8 grid: pixels [4:8, 4:8]
    assert np.allclose(b["pixels"][0, 9].numpy(), data.test[0].image[4:8, 4:8].reshape(-1))
    for i, s in enumerate(data.test[:5]):
        assert tok.decode([int(b["tokens"][i, b["last"][i]])]) == "?"
        assert int(b["last"][i]) == 64 + len(s.question.split())
        assert s.object_patches.sum() in (0, 4, 8)
        shapes = b["patch_shape"][i]
        assert set(shapes[~torch.from_numpy(s.all_object_patches)].tolist()) == {-100}
        words = {
            tok.convert_ids_to_tokens(int(t))
            for t in shapes[torch.from_numpy(s.all_object_patches)]
        }
        assert words <= set(vqa.SHAPES) and len(words) == s.all_object_patches.sum() // 4


def test_training_only_side_questions_stay_out_of_the_test_split():
    d = vqa.make_vqa(n_train=140, n_test=60, seed=3, train_extra=vqa.AUX_QUESTION_TYPES)
    side = [s for s in d.train if s.qtype == "choose_side"]
    assert len(side) == 20 and {s.qtype for s in d.test} <= set(vqa.QUESTION_TYPES)
    for s in side:
        (o,) = [o for o in _scene_objects(s) if o[0] == s.question.split()[2]]
        assert s.answer == (
            "left" if o[1] < 16 else "right"
        )  # object box x0 in pixels: left half of 32
    # the analysis rebuilds the training scenes from the recipe config to keep its test set disjoint
    from interp.analyses.crossmodal import _training_keys  # noqa: F401  (import check)
    from interp.models.recipes.crossmodal import training_extra_types

    extra = training_extra_types({"side_questions": True})
    assert vqa.train_scene_keys(140, 3, (*vqa.QUESTION_TYPES, *extra)) == d.train_scene_keys
    assert vqa.train_scene_keys(140, 3) != d.train_scene_keys


def _scene_objects(s):
    """(shape, x0) of each object of a sample, from its patch labels."""
    out = []
    for k, shape in enumerate(vqa.SHAPES):
        idx = np.where(s.patch_shapes == k)[0]
        if len(idx):
            out.append((shape, int((idx % vqa.GRID).min()) * vqa.PATCH))
    return out


def test_position_groups_partition_an_encoded_batch():
    samples = [s for s in vqa.make_samples(40, 0, "test")[0] if s.qtype == "query_attr"][:3]
    b = vqa.encode(vqa.vqa_tokenizer(), samples)
    g = vqa.position_groups(b, samples)
    B, T = b["tokens"].shape
    bos = torch.zeros(B, T, dtype=torch.bool)
    bos[:, 0] = True
    parts = torch.stack([bos, g["image"], g["question"], g["last"]]).int()
    assert (parts.sum(0) == 1).all() and g[
        "all"
    ].all()  # BOS, image, question, last: each position once
    assert g["image"].sum(1).tolist() == [vqa.N_PATCHES] * B and g["last"][:, -1].all()
    assert not (g["object"] & ~g["image"]).any() and torch.equal(
        g["object"] | g["nonobject"], g["image"]
    )
    assert g["object"][:, 1 : 1 + vqa.N_PATCHES].numpy().tolist() == [
        s.object_patches.tolist() for s in samples
    ]
    with pytest.raises(ValueError, match="one length"):
        mixed = [
            samples[0],
            next(s for s in vqa.make_samples(40, 0, "test")[0] if s.qtype == "logical_obj"),
        ]
        vqa.position_groups(vqa.encode(vqa.vqa_tokenizer(), mixed), mixed)


def test_size_matched_random_patch_sets():
    samples = [s for s in vqa.make_samples(60, 0, "test")[0] if s.qtype == "compare_attr"][:4]
    b = vqa.encode(vqa.vqa_tokenizer(), samples)
    g = vqa.position_groups(b, samples, rng=np.random.default_rng(0))
    assert torch.equal(g["random"].sum(1), g["object"].sum(1))  # as many patches as the object set
    assert torch.equal(g["nonrandom"].sum(1), g["nonobject"].sum(1))
    assert not (g["random"] & ~g["image"]).any() and torch.equal(
        g["random"] | g["nonrandom"], g["image"]
    )
    assert not torch.equal(g["random"], g["object"])  # drawn, not the objects
    again = vqa.position_groups(b, samples, rng=np.random.default_rng(0))
    assert torch.equal(again["random"], g["random"]) and "random" not in vqa.position_groups(
        b, samples
    )
    none = vqa.size_matched_patches(np.zeros((2, vqa.N_PATCHES), bool), np.random.default_rng(1))
    assert not none.any()
