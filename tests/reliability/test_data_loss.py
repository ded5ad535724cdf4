"""Never delete a user's files: saving over a directory replaces only what interp wrote there."""

from __future__ import annotations

import pytest
import torch

import interp
from interp.results import Result
from interp.utils import atomic_path, write_json


def _thesis(d):
    d.mkdir(parents=True, exist_ok=True)
    (d / "thesis.tex").write_text("years of work")
    return d / "thesis.tex"


def test_result_save_refuses_a_user_directory(tmp_path):
    thesis = _thesis(tmp_path / "out")
    with pytest.raises(FileExistsError, match=r"out exists and is not a result directory"):
        Result("x").save(tmp_path / "out")
    assert thesis.read_text() == "years of work"


def test_result_save_refuses_a_result_directory_holding_a_user_file(tmp_path):
    Result("x").save(tmp_path / "r")
    thesis = _thesis(tmp_path / "r")
    with pytest.raises(FileExistsError, match=r"holds files interp did not write \(thesis.tex\)"):
        Result("y").save(tmp_path / "r")
    assert thesis.exists() and Result.load(tmp_path / "r").analysis == "x"


def test_result_save_replaces_its_own_result(tmp_path):
    Result("x", arrays={"a": [1, 2]}).save(tmp_path / "r")
    Result("y", arrays={"b": [3]}).save(tmp_path / "r")
    back = Result.load(tmp_path / "r")
    assert back.analysis == "y" and sorted(back.arrays) == ["b"]


def test_model_save_refuses_a_user_directory(tmp_path, tiny_gpt):
    thesis = _thesis(tmp_path / "m")
    with pytest.raises(FileExistsError, match="is not a saved model"):
        tiny_gpt.save(tmp_path / "m")
    assert thesis.exists()
    tiny_gpt.save(tmp_path / "m2")
    _thesis(tmp_path / "m2")
    with pytest.raises(FileExistsError, match="thesis.tex"):
        tiny_gpt.save(tmp_path / "m2")
    (tmp_path / "m2" / "thesis.tex").unlink()
    tiny_gpt.save(tmp_path / "m2")  # its own saved model: replaced
    assert interp.load_model(str(tmp_path / "m2")).model_id


def test_atomic_path_never_removes_a_directory_without_proof(tmp_path):
    """A file write aimed at a directory by mistake (write_json onto a folder) deletes nothing."""
    thesis = _thesis(tmp_path / "d")
    with pytest.raises(FileExistsError, match="nothing proves interp wrote it"):
        write_json(tmp_path / "d", {"a": 1})
    assert thesis.exists()
    with pytest.raises(FileExistsError):
        with atomic_path(tmp_path / "d", owned=lambda p: "is someone else's") as tmp:
            tmp.mkdir()
    assert thesis.exists() and not list(tmp_path.glob(".*.tmp"))


def test_collect_overwrite_refuses_a_foreign_manifest(tmp_path, tiny_gpt):
    web = tmp_path / "site"
    web.mkdir()
    (web / "manifest.json").write_text('{"name": "my web app", "icons": []}')
    src = web / "index.html"
    src.write_text("<html>")
    toks = torch.randint(0, 50, (4, 5))
    with pytest.raises(ValueError, match="site is not an activation store .*refusing to delete it"):
        interp.collect(tiny_gpt, toks, hooks=["blocks.0.hook_resid_post"], out=web, overwrite=True)
    assert src.exists() and (web / "manifest.json").exists()
    with pytest.raises(
        ValueError, match="not an interp activation-store manifest"
    ):  # resume: no traceback
        interp.collect(tiny_gpt, toks, hooks=["blocks.0.hook_resid_post"], out=web)


def test_collect_overwrite_keeps_user_files_inside_a_store(tmp_path, tiny_gpt):
    toks = torch.randint(0, 50, (4, 5))
    out = tmp_path / "store"
    interp.collect(tiny_gpt, toks, hooks=["blocks.0.hook_resid_post"], out=out)
    (out / "notes.md").write_text("mine")
    with pytest.raises(ValueError, match=r"holds files interp did not write \(notes.md\)"):
        interp.collect(tiny_gpt, toks, hooks=["blocks.0.hook_resid_post"], out=out, overwrite=True)
    (out / "notes.md").unlink()
    store = interp.collect(
        tiny_gpt, toks, hooks=["blocks.1.hook_resid_post"], out=out, overwrite=True
    )
    assert store.hooks == ["blocks.1.hook_resid_post"]


def test_sae_save_never_overwrites_another_programs_cfg(tmp_path):
    from interp.sae import SAE, SAEConfig

    d = tmp_path / "project"
    d.mkdir()
    (d / "cfg.json").write_text('{"server": "prod"}')
    with pytest.raises(FileExistsError, match="is not an SAE config"):
        SAE(SAEConfig(d_in=4, d_sae=8)).save(d)
    assert (d / "cfg.json").read_text() == '{"server": "prod"}'
    SAE(SAEConfig(d_in=4, d_sae=8)).save(tmp_path / "sae")
    SAE(SAEConfig(d_in=4, d_sae=16)).save(tmp_path / "sae")  # its own file: replaced
    assert SAE.load(tmp_path / "sae").cfg.d_sae == 16


def test_sae_checkpoint_pruning_keeps_folders_it_did_not_write(tmp_path):
    from interp.sae import SAEConfig
    from interp.sae.train import SAETrainConfig, train_sae

    mine = tmp_path / "ck" / "step_00000001"
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("mine")
    x = torch.randn(32, 4, generator=torch.Generator().manual_seed(0))
    train_sae(
        x,
        SAEConfig(d_in=4, d_sae=8),
        SAETrainConfig(steps=6, checkpoint_every=2, keep_checkpoints=1),
        checkpoint_dir=tmp_path / "ck",
    )
    assert (mine / "notes.txt").exists()
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["step_00000001", "step_00000006"]
