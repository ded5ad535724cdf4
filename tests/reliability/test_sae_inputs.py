"""SAEs: impossible sizes and penalties are refused, NaN weights never load silently, and a NaN
training row (or a diverged step) is an error, not an SAE full of NaN."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from interp import runs
from interp.sae import SAE, SAEConfig
from interp.sae.train import SAETrainConfig, train_sae


@pytest.mark.parametrize(
    "fields, says",
    [
        ({"d_in": 8, "d_sae": 0}, "d_sae"),
        ({"d_in": 0}, "d_in"),
        ({"d_in": 8, "d_sae": 16, "kind": "topk", "k": 0}, "k"),
        ({"d_in": 8, "d_sae": 16, "kind": "topk", "k": 17}, "topk k=17 is larger than d_sae=16"),
        ({"d_in": 8, "input_scale": float("nan")}, "input_scale"),
    ],
)
def test_impossible_sae_configs_are_refused(fields, says):
    with pytest.raises(ValidationError, match=says):
        SAEConfig(**fields)


@pytest.mark.parametrize(
    "fields",
    [
        {"steps": -1},
        {"steps": 0},
        {"sparsity": -0.1},
        {"lr": 0.0},
        {"batch_size": 0},
        {"sparsity": float("nan")},
    ],
)
def test_impossible_training_settings_are_refused(fields):
    with pytest.raises(ValidationError, match=next(iter(fields))):
        SAETrainConfig(**fields)


def test_sae_experiment_refuses_k_above_d_sae():
    with pytest.raises(ValueError, match="k=64 is larger than d_sae=32"):
        runs.build_config("sae", "quick", ["d_sae=32", "k=64"])


def test_nan_weights_do_not_load(tmp_path):
    sae = SAE(SAEConfig(d_in=8, d_sae=16))
    with torch.no_grad():
        sae.W_enc[0, 0] = float("nan")
    sae.save(tmp_path / "sae")
    with pytest.raises(ValueError, match="W_enc hold NaN or infinite values"):
        SAE.load(tmp_path / "sae")


@pytest.mark.parametrize("batch_size", [None, 16])
def test_a_nan_training_row_is_named(batch_size):
    x = torch.randn(64, 8, generator=torch.Generator().manual_seed(0))
    x[37, 2] = float("nan")
    with pytest.raises(ValueError, match="row 37 holds NaN or infinite values"):
        train_sae(x, SAEConfig(d_in=8, d_sae=16), SAETrainConfig(steps=5, batch_size=batch_size))


def test_a_diverged_step_stops_training():
    x = torch.randn(64, 8, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="diverged at step"):
        train_sae(
            x, SAEConfig(d_in=8, d_sae=16), SAETrainConfig(steps=20, lr=1e30, normalise=False)
        )


@pytest.mark.parametrize(
    "damage, says",
    [
        (lambda d: (d / "cfg.json").write_text("[1, 2]"), "cfg.json is damaged: a JSON list"),
        (lambda d: (d / "cfg.json").write_text("{oops"), "cfg.json is not valid JSON"),
        (lambda d: (d / "sae_weights.safetensors").write_bytes(b"\x10\x00"), "cannot be read"),
        (lambda d: (d / "sae_weights.safetensors").unlink(), "has no sae_weights.safetensors"),
    ],
)
def test_a_damaged_sae_folder_names_the_file(tmp_path, damage, says):
    SAE(SAEConfig(d_in=4, d_sae=8)).save(tmp_path / "sae")
    damage(tmp_path / "sae")
    with pytest.raises((ValueError, FileNotFoundError), match=says):
        SAE.load(tmp_path / "sae")
