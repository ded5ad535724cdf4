"""The VLM recipe's two-stage training (choose_side alone, then the mixture) at toy size."""

from __future__ import annotations

import pytest

from interp.models.recipes.crossmodal import VLMRecipe, train_vlm
from interp.models.train import TrainConfig


def _tiny(**kw) -> VLMRecipe:
    return VLMRecipe(
        name="vlm-test",
        n_layers=1,
        d_model=16,
        n_heads=2,
        d_vision=8,
        n_train=70,
        n_test=12,
        patch_aux_weight=1.0,
        image_norm_gain=0.2,
        train=TrainConfig(steps=4, batch_size=4, warmup=1, log_every=1),
        **kw,
    )


def test_side_stage_runs_first_and_an_interrupted_build_resumes_after_it(tmp_path, monkeypatch):
    import interp.models.recipes.crossmodal as vr
    from interp.models.zoo import scratch_dir

    monkeypatch.setenv("INTERP_CACHE", str(tmp_path))
    cfg = _tiny(
        side_questions=True, side_stage=TrainConfig(steps=3, batch_size=4, warmup=1, log_every=1)
    )
    calls = []
    real_train = vr.train

    def flaky_train(*args, desc="", **kw):  # the first main stage is interrupted
        calls.append(desc)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_train(*args, desc=desc, **kw)

    monkeypatch.setattr(vr, "train", flaky_train)
    with pytest.raises(KeyboardInterrupt):
        train_vlm(cfg)
    assert (scratch_dir(cfg.name, cfg) / "side_stage.pt").exists()
    model = train_vlm(cfg)
    assert ["side" in c for c in calls] == [
        True,
        False,
        False,
    ]  # the finished first stage was not rerun
    stages = [e.get("stage") for e in model.train_log]
    assert stages == ["side"] * 3 + [None] * 4
    assert "test_accuracy" in model.train_log[-1]
    assert model.module.original_model.vision.out_norm is not None
    assert not (
        scratch_dir(cfg.name, cfg) / "side_stage.pt"
    ).exists()  # cleaned up after a complete build


def test_side_stage_needs_side_questions(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_CACHE", str(tmp_path))
    with pytest.raises(ValueError, match="side_questions"):
        train_vlm(_tiny(side_stage=TrainConfig(steps=2, batch_size=4)))


def test_question_lm_loss_scores_only_the_question_tokens():
    import torch

    from interp.data.crossmodal import N_PATCHES, encode, make_samples, vqa_tokenizer
    from interp.models.recipes.crossmodal import question_lm_loss

    tok = vqa_tokenizer()
    samples, _ = make_samples(12, 0, "test")
    b = encode(tok, samples[:4])  # mixed lengths: right-padded
    B, T = b["tokens"].shape
    V = len(tok)
    perfect = torch.full((B, T, V), -30.0)
    perfect[:, :-1].scatter_(
        -1, b["tokens"][:, 1:, None], 30.0
    )  # each position predicts the next token
    assert float(question_lm_loss(perfect, b)) < 1e-6
    # wrong predictions at the image, at each row's last token (the answer's place) and past it
    # are ignored
    off = perfect.clone()
    for i in range(B):
        off[i, : 1 + N_PATCHES] = 0.0
        off[i, int(b["last"][i]) :] = 0.0
    assert float(question_lm_loss(off, b)) < 1e-6
    wrong = perfect.clone()
    wrong[:, 1 + N_PATCHES] = 0.0  # the first question token's prediction of the second
    assert float(question_lm_loss(wrong, b)) > 0.1
