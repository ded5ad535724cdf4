"""The CLI: fast help, clear errors with valid choices, and a real run end to end."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel
from typer.testing import CliRunner

import interp.runs as runs_module
from interp.cli import app
from interp.models import pretrained
from interp.runs import find_run, list_runs

runner = CliRunner()


def test_help_does_not_import_torch():
    code = (
        "import sys, interp.cli; assert 'torch' not in sys.modules, 'torch imported'; "
        "assert 'transformer_lens' not in sys.modules; assert 'nnsight' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0 and "run" in res.output and "zoo" in res.output


def test_list_shows_registered_experiments():
    res = runner.invoke(app, ["list"])
    assert res.exit_code == 0 and "model_report" in res.output


def test_bad_set_key_fails_with_valid_keys():
    res = runner.invoke(app, ["run", "model_report", "--set", "sed=3"])
    assert res.exit_code == 2
    assert "seed" in res.output and "n_prompts" in res.output


def test_bad_set_value_and_unknown_experiment():
    res = runner.invoke(app, ["run", "model_report", "--set", "n_prompts=lots"])
    assert res.exit_code == 2 and "n_prompts" in res.output
    res = runner.invoke(app, ["run", "model_reprot"])
    assert res.exit_code == 2 and "model_report" in res.output
    res = runner.invoke(app, ["run", "model_report", "--preset", "huge"])
    assert res.exit_code == 2 and "quick" in res.output


def test_bad_seeds_fail_before_any_work():
    res = runner.invoke(app, ["run", "model_report", "--seeds", "2-0"])
    assert res.exit_code == 2 and "0-2" in res.output
    res = runner.invoke(app, ["run", "model_report", "--seeds", "0-1", "--set", "seed=3"])
    assert res.exit_code == 2 and "drop --set seed" in res.output
    res = runner.invoke(app, ["run", "model_report", "--set", "model=zoo:code-lm-tiny@x"])
    assert res.exit_code == 2 and "training seed" in res.output


def test_zoo_list_and_unknown_recipe():
    res = runner.invoke(app, ["zoo", "list"])
    assert res.exit_code == 0 and "code-lm-tiny" in res.output
    res = runner.invoke(app, ["zoo", "build", "code-lm-tinny"])
    assert res.exit_code == 2 and "code-lm-tiny" in res.output


@pytest.mark.slow
def test_run_model_report_quick_writes_a_complete_run_directory():
    """The real quick preset: trains zoo:code-lm-tiny (once per session cache) and reports."""
    res = runner.invoke(app, ["run", "model_report", "--preset", "quick", "--set", "n_prompts=8"])
    assert res.exit_code == 0, res.output
    path = find_run("model_report")
    names = {p.name for p in path.iterdir()}
    assert {"config.json", "metrics.json", "arrays", "figures", "log.txt", "run.json"} <= names
    assert {p.stem for p in (path / "figures").iterdir()} >= {
        "logit_lens",
        "head_ablation",
        "attention",
    }
    assert "done in" in (path / "log.txt").read_text()
    run = list_runs("model_report")[0]
    assert run.sanity_failures == 0
    res = runner.invoke(app, ["runs", "show", "model_report"])
    assert res.exit_code == 0 and "lens_final_equals_logits" in res.output
    res = runner.invoke(app, ["runs"])
    assert res.exit_code == 0 and "model_report/" in res.output


def test_check_runs_on_a_saved_checkpoint_and_refuses_a_bad_name(tmp_path):
    """`interp check DIR` on a tiny random GPT-2 saved with save_pretrained: a run with its
    criteria held; a bad name exits 2 naming the field."""
    torch.manual_seed(0)
    GPT2LMHeadModel(
        GPT2Config(vocab_size=50, n_embd=32, n_layer=2, n_head=4, n_positions=32)
    ).save_pretrained(tmp_path)
    res = runner.invoke(app, ["check", str(tmp_path), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert (
        "hidden_states_match" in res.output
        and "logits_match" in res.output
        and "collect of every" in res.output
    )
    assert (find_run("check") / "metrics.json").exists()
    res = runner.invoke(app, ["check", str(tmp_path / "nowhere")])
    assert res.exit_code == 2 and "model" in res.output and "directory" in res.output
    res = runner.invoke(app, ["check", str(tmp_path), "--dtype", "int8"])
    assert res.exit_code == 2 and "dtype" in res.output


def test_demo_runs_the_real_check_after_the_quick_presets(monkeypatch):
    """`interp demo` runs the real model's check after the quick presets (what `make demo` does),
    every real preset with --real all, none with --real none; a bad --real value is refused."""
    calls = []

    def fake_run(name, preset, *a, **k):
        calls.append((name, preset))
        raise RuntimeError("not run in this test")

    monkeypatch.setattr(runs_module, "run_experiment", fake_run)
    monkeypatch.setattr(pretrained, "is_installed", lambda name: True)
    runner = CliRunner()
    runner.invoke(app, ["demo", "--only", "check", "--only", "model_report", "--no-serve"])
    assert calls == [("model_report", "quick"), ("check", "quick"), ("check", "real")] or calls == [
        ("check", "quick"),
        ("model_report", "quick"),
        ("check", "real"),
    ]
    calls.clear()
    runner.invoke(app, ["demo", "--only", "model_report", "--real", "all", "--no-serve"])
    assert calls == [("model_report", "quick"), ("model_report", "real")]
    calls.clear()
    runner.invoke(app, ["demo", "--only", "check", "--real", "none", "--no-serve"])
    assert calls == [("check", "quick")]
    res = runner.invoke(app, ["demo", "--real", "some", "--no-serve"])
    assert res.exit_code == 2 and "'check', 'all' and 'none'" in res.output
