"""The VLM recipe's two-stage training (choose_side alone, then the mixture) at toy size."""

from __future__ import annotations

import pytest

from interp.models.recipes.crossmodal import VLMRecipe, train_vlm
from interp.models.train import TrainConfig


def _tiny(**kw) -> VLMRecipe:
    return VLMRecipe(name="vlm-test", n_layers=1, d_model=16, n_heads=2, d_vision=8, n_train=70, n_test=12,
                     patch_aux_weight=1.0, image_norm_gain=0.2,
                     train=TrainConfig(steps=4, batch_size=4, warmup=1, log_every=1), **kw)


def test_side_stage_runs_first_and_an_interrupted_build_resumes_after_it(tmp_path, monkeypatch):
    import interp.models.recipes.crossmodal as vr
    from interp.models.zoo import scratch_dir

    monkeypatch.setenv("INTERP_CACHE", str(tmp_path))
    cfg = _tiny(side_questions=True, side_stage=TrainConfig(steps=3, batch_size=4, warmup=1, log_every=1))
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
    assert ["side" in c for c in calls] == [True, False, False]  # the finished first stage was not rerun
    stages = [e.get("stage") for e in model.train_log]
    assert stages == ["side"] * 3 + [None] * 4
    assert "test_accuracy" in model.train_log[-1]
    assert model.module.original_model.vision.out_norm is not None
    assert not (scratch_dir(cfg.name, cfg) / "side_stage.pt").exists()  # cleaned up after a complete build


def test_side_stage_needs_side_questions(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_CACHE", str(tmp_path))
    with pytest.raises(ValueError, match="side_questions"):
        train_vlm(_tiny(side_stage=TrainConfig(steps=2, batch_size=4)))
