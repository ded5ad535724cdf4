"""Never run a user's (or a download's) code: a checkpoint's ``auto_map`` files stay unexecuted."""

from __future__ import annotations

import io
import json
import sys

import pytest

import interp

EVIL = """
import pathlib
pathlib.Path(__file__).with_name("RAN").write_text("the checkpoint's code ran")
from transformers import GPT2Config, GPT2LMHeadModel
class EvilConfig(GPT2Config):
    model_type = "evil"
class EvilModel(GPT2LMHeadModel):
    config_class = EvilConfig
"""


def _evil_dir(root, model_type="evil"):
    import transformers as T

    d = root / "ckpt"
    config = T.GPT2Config(vocab_size=50, n_embd=32, n_layer=1, n_head=4, n_positions=16)
    T.GPT2LMHeadModel(config).save_pretrained(d)
    cfg = json.loads((d / "config.json").read_text())
    arch = ["EvilModel"] if model_type == "evil" else cfg["architectures"]
    cfg.update(
        model_type=model_type,
        architectures=arch,
        auto_map={"AutoConfig": "evil.EvilConfig", "AutoModelForCausalLM": "evil.EvilModel"},
    )
    (d / "config.json").write_text(json.dumps(cfg))
    (d / "evil.py").write_text(EVIL)
    return d


def test_auto_map_code_is_never_run_even_when_stdin_says_yes(tmp_path, monkeypatch):
    d = _evil_dir(tmp_path)
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n" * 10))
    with pytest.raises(
        ValueError, match=r"needs its own Python code .*evil\.py.*trust_remote_code=True"
    ):
        interp.load_model(str(d), device="cpu")
    assert not (d / "RAN").exists()


def test_auto_map_beside_a_known_model_type_loads_the_library_class(tmp_path, monkeypatch):
    d = _evil_dir(tmp_path, model_type="gpt2")
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n" * 10))
    m = interp.load_model(str(d), device="cpu")
    assert type(m.module.original_model).__name__ == "GPT2LMHeadModel"
    assert not (d / "RAN").exists()


def test_architectures_must_name_a_model_class(tmp_path):
    d = _evil_dir(tmp_path, model_type="gpt2")
    cfg = json.loads((d / "config.json").read_text())
    cfg.pop("auto_map")
    cfg["architectures"] = ["pipeline"]  # a transformers function, not a model class
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(
        ValueError, match="names 'pipeline', which is not a transformers model class"
    ):
        interp.load_model(str(d), device="cpu")


def test_the_opt_in_is_explicit_and_reaches_the_loader(tmp_path, monkeypatch):
    """Only `--trust-remote-code` (or trust_remote_code=True) lets a checkpoint's code run."""
    from typer.testing import CliRunner

    from interp.cli import app

    d = _evil_dir(tmp_path)
    seen = []

    def fake_load(name, **kwargs):
        seen.append(kwargs.get("trust_remote_code", False))
        raise ValueError("stop here")

    monkeypatch.setattr(interp, "load_model", fake_load)
    for flag in ([], ["--trust-remote-code"]):
        res = CliRunner().invoke(app, ["check", str(d), "--device", "cpu", *flag])
        assert res.exit_code == 2 and "stop here" in res.output
    assert seen == [False, True] and not (d / "RAN").exists()
