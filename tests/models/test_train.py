"""The shared training loop: learns, schedules, and resumes after an interruption."""

from __future__ import annotations

import pytest
import torch

from interp.models.train import TrainConfig, lr_at, train


def _problem():
    torch.manual_seed(0)
    w_true = torch.randn(5, 1)

    def batch_fn(step):
        g = torch.Generator().manual_seed(step)
        x = torch.randn(16, 5, generator=g)
        return x, x @ w_true

    def loss_fn(model, batch):
        x, y = batch
        return ((model(x) - y) ** 2).mean()

    return batch_fn, loss_fn


def test_training_reduces_loss():
    batch_fn, loss_fn = _problem()
    torch.manual_seed(1)
    model = torch.nn.Linear(5, 1)
    log = train(
        model,
        batch_fn,
        loss_fn,
        TrainConfig(steps=200, lr=0.05, warmup=5, log_every=10, weight_decay=0),
    )
    assert log[-1]["loss"] < 0.05 * log[0]["loss"]


def test_schedule_warmup_and_decay():
    cfg = TrainConfig(steps=100, lr=1.0, warmup=10, min_lr_frac=0.1)
    assert lr_at(0, cfg) == pytest.approx(0.1)
    assert lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(99, cfg) == pytest.approx(0.1, abs=0.01)
    assert all(lr_at(s, cfg) >= lr_at(s + 1, cfg) for s in range(10, 99))


def test_interrupted_training_resumes_to_the_same_weights(tmp_path):
    batch_fn, loss_fn = _problem()
    cfg = TrainConfig(steps=40, lr=0.05, warmup=2, checkpoint_every=10)

    torch.manual_seed(1)
    ref = torch.nn.Linear(5, 1)
    train(ref, batch_fn, loss_fn, cfg)

    torch.manual_seed(1)
    model = torch.nn.Linear(5, 1)

    def crash(step, module):
        if step == 25:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(model, batch_fn, loss_fn, cfg, checkpoint_dir=tmp_path, on_step=crash)
    assert (tmp_path / "train_state.pt").exists()
    seen = []
    torch.manual_seed(1)
    resumed = torch.nn.Linear(5, 1)
    train(
        resumed,
        batch_fn,
        loss_fn,
        cfg,
        checkpoint_dir=tmp_path,
        on_step=lambda s, m: seen.append(s),
    )
    assert seen[0] == 20  # restarted from the last checkpoint, not from 0
    torch.testing.assert_close(resumed.weight, ref.weight)
    assert not (tmp_path / "train_state.pt").exists()


class _Planted:
    """Unpickling this object would create a file: a stand-in for code planted in the cache."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        from pathlib import Path

        return (Path.touch, (Path(self.marker),))


def test_a_planted_checkpoint_is_refused_and_never_run(tmp_path):
    batch_fn, loss_fn = _problem()
    marker = tmp_path / "code-ran"
    torch.save({"model": _Planted(str(marker)), "step": 3}, tmp_path / "train_state.pt")
    with pytest.raises(ValueError, match="refusing to read checkpoint"):
        train(
            torch.nn.Linear(5, 1), batch_fn, loss_fn, TrainConfig(steps=5), checkpoint_dir=tmp_path
        )
    assert not marker.exists()
    # the plant is real: the file calls a global outside the allowed set (read without running it)
    assert "builtins.getattr" in torch.serialization.get_unsafe_globals_in_checkpoint(
        tmp_path / "train_state.pt"
    )
