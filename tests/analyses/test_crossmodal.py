"""The crossmodal analysis: the tiny VLM (image in hook_embed, fast path on it), the analysis
end to end with its dashboard panel, its statistics, and the Hugging Face LLaVA path. The
knockout method itself is tested in tests/methods/test_knockout.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interp.methods import knockout as ko


# ------------------------------------------------------------ the VLM and the analysis
@pytest.fixture(scope="module")
def tiny_vlm_dir(tmp_path_factory):
    from interp.data.crossmodal import vqa_tokenizer
    from interp.models.transformer import TransformerSpec
    from interp.models.vlm import VLMSpec, build_vlm, wrap_vlm

    tok = vqa_tokenizer()
    spec = VLMSpec(
        decoder=TransformerSpec(n_layers=2, d_model=32, n_heads=4, n_ctx=80, d_vocab=len(tok)),
        d_vision=16,
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        image_norm_gain=0.2,
    )
    path = tmp_path_factory.mktemp("vlm") / "tiny-vlm"
    wrap_vlm(build_vlm(spec, tok), tok, model_id="tiny-vlm").save(path)
    return path


def test_vlm_image_reaches_hook_embed_and_roundtrips(tiny_vlm_dir):
    import interp
    from interp.data.crossmodal import encode, make_samples

    m = interp.load_model(str(tiny_vlm_dir))
    assert m.kind == "vlm" and "blocks.1.attn.hook_pattern" in m.hook_names
    assert (
        m.module.original_model.vision.out_norm is not None
    )  # the projector's LayerNorm survived the round trip
    samples, _ = make_samples(3, 0, "test")
    b = encode(m.tokenizer, samples)
    out, acts = interp.trace(
        m, {"tokens": b["tokens"], "pixels": b["pixels"]}, capture=["hook_embed"]
    )
    # the LayerNorm keeps image embeddings at a fixed scale: ~gain * sqrt(d_model) at init
    assert torch.allclose(
        acts["hook_embed"][:, 1:65].norm(dim=-1), torch.full((3, 64), 0.2 * 32**0.5), rtol=0.05
    )
    out_text, acts_text = interp.trace(m, b["tokens"], capture=["hook_embed"])
    diff = (acts["hook_embed"] - acts_text["hook_embed"]).abs().amax(-1)
    assert (diff[:, 1:65] > 0).all() and (diff[:, 65:] == 0).all() and (diff[:, 0] == 0).all()
    # a different image changes the answer logits
    out2, _ = interp.trace(m, {"tokens": b["tokens"], "pixels": b["pixels"].flip(0)})
    assert (out2 - out).abs().max() > 1e-4
    # the fast path works on the VLM too
    one = encode(m.tokenizer, samples[:1])
    inputs = {"tokens": one["tokens"], "pixels": one["pixels"]}
    T = one["tokens"].shape[1]
    assert int(one["last"][0]) == T - 1
    cache = ko.clean_cache(m, inputs)
    img = torch.zeros(1, T, dtype=torch.bool)
    img[:, 1:65] = True
    last = torch.zeros(1, T, dtype=torch.bool)
    last[:, -1] = True
    for layers in ([0], [1], [0, 1]):
        fast = ko.last_row_knockout(m, cache, img, layers)
        full = ko.knockout_logits(m, inputs, ko.edge_block(last, img), layers)[:, -1]
        assert (fast - full).abs().max() < 1e-5


def test_everything_cut_into_last_ignores_the_input(tiny_vlm_dir):
    """With every position->last edge blocked in every layer, the last position's logits are the
    same for every image and question of one length (a fully blocked row attends to nothing, so
    its attention output is exactly zero; this was the sanity criterion
    ``all_to_last_output_ignores_input``, which could not fail on a correct knockout). Leaving
    one edge open (the image) lets the input through, so the check can fail."""
    import interp
    from interp.data.crossmodal import encode, make_samples, position_groups

    m = interp.load_model(str(tiny_vlm_dir))
    samples, _ = make_samples(40, 0, "test")
    lengths = [len(s.question.split()) for s in samples]
    common = max(set(lengths), key=lengths.count)
    same = [s for s, n in zip(samples, lengths, strict=True) if n == common][:6]
    assert len(same) >= 3
    b = encode(m.tokenizer, same)
    inputs = {"tokens": b["tokens"], "pixels": b["pixels"]}
    groups = position_groups(b, same)
    cache = ko.clean_cache(m, inputs)
    cut = ko.last_row_knockout(m, cache, groups["all"], range(m.n_layers))
    assert (cut - cut[0]).abs().max() <= 1e-5 * max(1.0, float(cut.abs().max()))
    leak = ko.last_row_knockout(m, cache, groups["all"] & ~groups["image"], range(m.n_layers))
    assert (leak - leak[0]).abs().max() > 1e-4


def test_crossmodal_runs_end_to_end_on_a_tiny_vlm(tiny_vlm_dir, tmp_path):
    import interp.analyses as analyses

    r = analyses.get("crossmodal").run(
        {
            "model": str(tiny_vlm_dir),
            "n_test": 24,
            "only_correct": False,
            "n_dashboard_samples": 2,
            "window": 1,
            "seed": 1,
        }
    )
    crit = {c.name: c for c in r.criteria}
    assert crit["nothing_blocked_is_zero"].holds
    assert crit["kv_reuse_equals_full_recompute"].holds
    assert crit["lens_final_equals_logits"].holds
    assert (
        "all_to_last_output_ignores_input" not in crit
        and r.metrics["all_to_last_cut_spread_relative"] <= 1e-5
    )
    assert crit["all_to_last_equals_oracle"].holds and "all_to_last_is_minus_100" not in crit
    assert crit["object_patches_matter_more_than_random"].kind == "claim"
    assert r.arrays["edge_scores"].shape == (9, 2) and r.arrays["patch_set_scores"].shape == (4, 2)
    assert r.arrays["sample_images"].shape == (2, 32, 32, 3)
    assert r.arrays["sample_scores"].shape == (2, 9, 2)
    lo, hi = r.metrics["onset_layer_ci95"]["image->question"]
    assert set(r.metrics["peak_layer_ci95"]) == set(r.metrics["onset_layer"]) and (
        np.isnan(lo) or lo <= hi
    )
    assert {
        "knockout_edges",
        "knockout_by_type",
        "object_vs_nonobject",
        "logit_lens",
        "last_attention_image",
    } <= set(r.figures)
    assert np.isfinite(r.arrays["edge_scores"]).all()
    # the dashboard panel reads the saved result and draws the chosen sample's curves
    from unittest.mock import MagicMock

    from tests.conftest import load_panel

    dashboard = load_panel("crossmodal")
    from interp.results import Result

    r.save(tmp_path / "run")
    loaded = Result.load(tmp_path / "run")
    st = MagicMock()
    st.selectbox.side_effect = lambda label, options, index=0: options[1]
    col = MagicMock()
    col.slider.return_value = 1
    st.columns.return_value = [col, col]
    dashboard(loaded, st)
    assert st.warning.called == bool(
        loaded.metrics["types_at_chance"]
    )  # an untrained model guesses
    assert any("Onset layer" in str(c.args[0]) for c in st.caption.call_args_list)
    figs = [c.args[0] for c in col.plotly_chart.call_args_list]
    assert len(figs) == 2
    curves = figs[1]
    assert np.allclose(
        np.asarray(curves.data[0].y, float), loaded.arrays["sample_scores"][1, 0], equal_nan=True
    )


def test_types_at_chance_flags_only_guessing_types():
    from types import SimpleNamespace

    from interp.analyses.crossmodal import types_at_chance

    samples = [SimpleNamespace(qtype="choose_rel")] * 100 + [
        SimpleNamespace(qtype="query_attr")
    ] * 100
    correct = torch.tensor([i % 2 == 0 for i in range(100)] + [i % 10 != 0 for i in range(100)])
    assert types_at_chance(samples, correct) == [
        "choose_rel"
    ]  # 50% of a yes/no-like choice; 90% of colours


def test_peaks_onsets_and_their_bootstrap_intervals_recover_planted_curves():
    from interp.analyses.crossmodal import (
        EDGE_NAMES,
        excess_drops,
        layer_intervals,
        peaks_and_onsets,
    )

    curves = np.array([[-10.0, -60.0, -100.0, -20.0], [0.0, 5.0, 1.0, 0.0]])  # [E, L]
    peak, onset = peaks_and_onsets(curves)
    assert (
        peak.tolist() == [2.0, 0.0] and onset[0] == 1.0 and np.isnan(onset[1])
    )  # half of 100 first reached at 1
    patch = np.array(
        [[-50.0, -80.0], [-10.0, -5.0], [-20.0, -30.0], [-40.0, -10.0]]
    )  # PATCH_SETS order, [4, L]
    assert np.allclose(excess_drops(patch), [80 - 10, 30 - 40])
    # 200 noisy questions: every edge drops most in layer 3 (onset 2); object patches beat random
    # by ~30 points
    rng = np.random.default_rng(0)
    n, E, L = 200, len(EDGE_NAMES), 5
    scores = rng.normal(0, 5, (n, E, L)) + np.array([0, -10, -60, -100, -20])
    p = rng.normal(0, 5, (n, 4, L)) + np.array([[-50.0], [-20.0], [-30.0], [-30.0]])
    p[:10] = np.nan  # questions that mention no object
    iv = layer_intervals(scores, p, 300, seed=0)
    assert (
        iv.peak["image->question"].ci95 == [3.0, 3.0] and iv.onset["question->last"].estimate == 2.0
    )
    lo, hi = iv.excess["object_vs_random"].ci95
    assert 20 < lo < 30 < hi < 40  # the planted 30 points, an interval that excludes 0
    lo, hi = iv.excess["nonobject_vs_rest"].ci95
    assert lo < 0 < hi  # planted equal: the interval covers 0 (the claim would not hold)


# ------------------------------------------------------------ Hugging Face LLaVA path
@pytest.fixture(scope="module")
def llava():
    pytest.importorskip("transformers")
    from interp.models.llava import load_llava

    return load_llava("tiny-random")


def test_llava_knockout_mask_cuts_the_last_position_off(llava):
    from interp.data.crossmodal import make_samples
    from interp.models.llava import hf_knockout_logits, synthetic_inputs

    model, processor, tok = llava
    samples, _ = make_samples(12, 0, "test")
    same = [s for s in samples if s.qtype == "query_attr"][:2]
    inputs, groups = synthetic_inputs(model, processor, tok, same)
    B, T = inputs["input_ids"].shape
    assert groups["image"].sum(1).tolist() == [64, 64] and groups["last"][:, -1].all()
    assert not (groups["question"] & groups["image"]).any() and groups["question"].sum(
        1
    ).tolist() == [5, 5]
    L = 3
    clean = hf_knockout_logits(model, inputs, torch.zeros(B, T, T, dtype=torch.bool), [])
    assert (
        clean[0] - clean[1]
    ).abs().max() > 1e-4  # different images and questions, different answers
    others = groups["all"] & ~groups["last"]
    cut = hf_knockout_logits(model, inputs, ko.edge_block(groups["last"], others), list(range(L)))
    # the last position sees only itself: its logits no longer depend on the image or question
    assert (cut[0] - cut[1]).abs().max() < 1e-5
    part = hf_knockout_logits(model, inputs, ko.edge_block(groups["last"], groups["image"]), [0])
    assert (part - clean).abs().max() > 1e-6


@pytest.mark.slow
def test_crossmodal_runs_on_tiny_random_llava():
    import interp.analyses as analyses

    r = analyses.get("crossmodal").run(
        {"model": "hf-llava:tiny-random", "n_test": 4, "batch_size": 4}
    )
    assert r.arrays["edge_scores"].shape == (7, 3) and np.isfinite(r.arrays["edge_scores"]).all()
    assert r.metrics["backend"] == "hf-llava"
