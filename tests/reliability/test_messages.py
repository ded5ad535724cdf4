"""Inputs a careless or hostile user gives: each is a clear message (exit 2 on the CLI), never a
traceback, and is found before any heavy work where it can be."""

from __future__ import annotations

import errno
import json
import tempfile

import pytest
import torch
import transformers as T
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

import interp
from interp import runs, utils
from interp.analyses import check, sae
from interp.cli import app
from interp.data.corpus import load_corpus
from interp.fields import ConfigError
from interp.models import zoo
from interp.models.io import save_model
from interp.results import Result
from interp.seeds import parse_seeds

runner = CliRunner()


@pytest.fixture
def model_dir(tmp_path, tiny_gpt):
    tiny_gpt.save(tmp_path / "tiny")
    return tmp_path / "tiny"


# ------------------------------------------------------------------ config fields
@pytest.mark.parametrize(
    "corpus, says",
    [
        ("", "corpus is empty"),
        ("{tmp}/nope", "neither 'stdlib' nor an existing file"),
        ("{tmp}/empty.txt", "holds 0 bytes of text; at least 2000"),
        ("{tmp}/tiny.txt", "holds 6 bytes of text"),
        ("{tmp}/folder", "has no .py/.txt/.md/.rst files"),
    ],
)
def test_corpus_is_checked_before_any_work(tmp_path, corpus, says):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "tiny.txt").write_text("x = 1\n")
    (tmp_path / "folder").mkdir()
    with pytest.raises(ValueError, match=says):
        runs.build_config("model_report", "quick", [f"corpus={corpus.format(tmp=tmp_path)}"])
    res = runner.invoke(
        app, ["run", "model_report", "--set", f"corpus={corpus.format(tmp=tmp_path)}"]
    )
    assert res.exit_code == 2 and says.split(";")[0] in res.output


def test_empty_corpus_never_reads_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "private.txt").write_text("secret " * 1000)
    with pytest.raises(ValueError, match="corpus is empty"):
        load_corpus("")


def test_boolean_is_not_a_count():
    with pytest.raises(ValueError, match="expected a number, got the boolean True"):
        runs.build_config("model_report", "quick", ["n_prompts=true"])
    assert runs.build_config("model_report", "quick", ["n_prompts=3"]).n_prompts == 3


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_device_on_a_cpu_torch_is_a_config_error():
    res = runner.invoke(app, ["run", "model_report", "--set", "device=cuda:0"])
    assert res.exit_code == 2 and "has no CUDA device" in res.output and "'cpu'" in res.output
    res = runner.invoke(app, ["check", "zoo:code-lm-tiny", "--device", "cuda"])
    assert res.exit_code == 2 and "has no CUDA device" in res.output
    with pytest.raises(ValueError, match="no CUDA device"):
        interp.load_model("zoo:code-lm-tiny", device="cuda")


def test_failed_move_leaves_the_model_where_it_was(tiny_gpt, monkeypatch):
    with pytest.raises(ValueError):
        tiny_gpt.to("mps" if not torch.backends.mps.is_available() else "cuda:99")
    monkeypatch.setattr(utils, "_check_available", lambda dev: None)  # let the move itself fail
    real_apply = torch.nn.Module._apply

    def broken(self, fn, *a, **k):
        raise RuntimeError("device lost half-way")

    monkeypatch.setattr(torch.nn.Module, "_apply", broken)
    with pytest.raises(RuntimeError, match="half-way"):
        tiny_gpt.to("cuda")
    monkeypatch.setattr(torch.nn.Module, "_apply", real_apply)
    assert str(tiny_gpt.cfg.device) == "cpu" and tiny_gpt.device.type == "cpu"
    assert tiny_gpt(torch.zeros(1, 3, dtype=torch.long)).shape == (1, 3, 50)


# ------------------------------------------------------------------ memory
def test_counts_that_exhaust_memory_fail_before_allocating(model_dir, monkeypatch):
    res = runner.invoke(
        app,
        [
            "run",
            "model_report",
            "--set",
            f"model={model_dir}",
            "--set",
            "seq_len=16",
            "--set",
            "n_prompts=1000000000",
        ],
    )
    assert (
        res.exit_code == 2 and "this machine has" in res.output and "Lower n_prompts" in res.output
    )


def test_in_memory_collect_checks_its_buffers_fit(tiny_gpt, monkeypatch):
    monkeypatch.setattr(utils, "memory_bytes", lambda: 10_000)
    with pytest.raises(ConfigError, match=r"blocks.0.hook_resid_post \[64, 5, 32\].*out=<dir>"):
        interp.collect(
            tiny_gpt, torch.zeros(64, 5, dtype=torch.long), hooks=["blocks.0.hook_resid_post"]
        )


def test_huge_seed_range_is_refused_before_the_list_is_built():
    with pytest.raises(ValueError, match="at most 100"):
        parse_seeds("0-1000000000000000")  # a list this long could not be built at all
    res = runner.invoke(app, ["run", "model_report", "--seeds", "0-100000000"])
    assert res.exit_code == 2 and "at most 100" in res.output


# ------------------------------------------------------------------ model files
def _spec_edit(model_dir, edit):
    meta = json.loads((model_dir / "interp_model.json").read_text())
    edit(meta)
    (model_dir / "interp_model.json").write_text(json.dumps(meta))


@pytest.mark.parametrize(
    "edit, says",
    [
        (lambda m: m.pop("builder"), "needs a 'builder'"),
        (
            lambda m: m.update(builder="transfromer"),
            "unknown model builder 'transfromer'.*Did you mean: transformer",
        ),
        (lambda m: m["spec"].update(d_model=64), "does not fit the spec"),
        (
            lambda m: m["spec"].update(d_model=8192, n_layers=20, n_heads=64, d_vocab=50000),
            "does not describe these",
        ),
        (lambda m: m["spec"].update(n_layers="two"), "its spec cannot build a model"),
    ],
    ids=["no-builder", "unknown-builder", "shape-mismatch", "17GB-spec", "bad-spec"],
)
def test_bad_interp_model_json_is_a_clear_error(model_dir, edit, says):
    _spec_edit(model_dir, edit)
    with pytest.raises(ValueError, match=says):
        interp.load_model(str(model_dir))
    res = runner.invoke(app, ["check", str(model_dir)])
    assert res.exit_code == 2 and (
        "interp_model.json" in res.output or "model.safetensors" in res.output
    )


def test_nan_weights_are_named_not_blamed_on_the_implementation(model_dir, tmp_path):
    state = load_file(str(model_dir / "model.safetensors"))
    key = sorted(state)[3]
    state[key][0] = float("nan")
    save_file(state, str(model_dir / "model.safetensors"))
    with pytest.raises(ValueError, match=f"NaN or infinite values.*{key}"):
        interp.load_model(str(model_dir))
    res = runner.invoke(app, ["check", str(model_dir)])
    assert res.exit_code == 2 and "NaN" in res.output and "implementation" not in res.output


def test_check_names_nan_weights_of_a_hugging_face_model(tmp_path):
    hf = T.GPT2LMHeadModel(
        T.GPT2Config(vocab_size=50, n_embd=32, n_layer=1, n_head=4, n_positions=16)
    )
    with torch.no_grad():
        hf.transformer.h[0].mlp.c_fc.weight[0, 0] = float("nan")
    hf.save_pretrained(tmp_path / "hf")
    res = runner.invoke(app, ["check", str(tmp_path / "hf"), "--device", "cpu"])
    assert res.exit_code == 2 and "NaN or infinite" in res.output and "mlp" in res.output


def test_truncated_zoo_model_says_rebuild_and_is_not_listed_built(tmp_path, monkeypatch, tiny_gpt):
    monkeypatch.setenv("INTERP_CACHE", str(tmp_path / "cache"))
    path = zoo.get("code-lm-tiny").path
    save_model(tiny_gpt, path)
    assert zoo.is_built("code-lm-tiny")
    w = path / "model.safetensors"
    w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
    assert not zoo.is_built("code-lm-tiny") and "truncated" in zoo.damaged("code-lm-tiny")
    with pytest.raises(ValueError, match="interp zoo build code-lm-tiny --rebuild"):
        zoo.load("code-lm-tiny")
    res = runner.invoke(app, ["zoo", "list"])
    assert (
        res.exit_code == 0 and "code-lm-tiny: DAMAGED" in res.output and "--rebuild" in res.output
    )
    res = runner.invoke(app, ["zoo", "build", "code-lm-tiny"])
    assert res.exit_code == 2 and "truncated" in res.output and "--rebuild" in res.output


def test_layer_beyond_the_model_is_a_config_error(tiny_gpt, monkeypatch):
    tiny_gpt.tokenizer = object()  # sae.load only asks whether there is one
    monkeypatch.setattr(interp, "load_model", lambda *a, **k: tiny_gpt)
    cfg = sae.Config(model="zoo:code-lm-tiny", layer=7, seq_len=16)
    with pytest.raises(ConfigError, match=r"layer=7: tiny_gpt has 2 layers; valid: 0..1"):
        sae.load(cfg)
    assert sae.load(cfg.model_copy(update={"layer": -2}))[1] == "blocks.0.hook_resid_post"


# ------------------------------------------------------------ experiments, runs folder, CLI options
def test_broken_experiment_yaml_hides_no_other_experiment(tmp_path, monkeypatch, fake_analysis):
    exps = tmp_path / "experiments"
    exps.mkdir()
    (exps / "good.yaml").write_text("analysis: fake_analysis\npresets:\n  quick: {seed: 1}\n")
    (exps / "broken.yaml").write_text("analysis: [unclosed\n")
    (exps / "alist.yaml").write_text("- analysis\n")
    monkeypatch.setenv("INTERP_EXPERIMENTS", str(exps))
    res = runner.invoke(app, ["list"])
    assert res.exit_code == 2 and "good" in res.output
    assert (
        "broken.yaml is not valid YAML" in res.output
        and "alist.yaml has no 'analysis" in res.output
    )
    assert runs.build_config("good", "quick").seed == 1
    res = runner.invoke(app, ["run", "broken"])
    assert res.exit_code == 2 and "broken.yaml" in res.output


def test_read_only_runs_folder_fails_before_the_run(roots, fake_analysis, monkeypatch):
    called = []
    monkeypatch.setattr(runs, "_run_logged", lambda *a: called.append(1))

    def erofs(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "TemporaryFile", erofs)
    res = runner.invoke(app, ["run", "fake_exp"])
    assert (
        res.exit_code == 2 and "Read-only file system" in res.output and "INTERP_RUNS" in res.output
    )
    assert not called


def test_full_disk_keeps_the_result_and_says_where_it_went(
    roots, fake_analysis, monkeypatch, tmp_path
):

    real_write = Result._write

    def full(self, directory):
        if "interp-unsaved" not in str(directory):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(self, directory)

    monkeypatch.setattr(Result, "_write", full)
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path / "spare"))
    cfg = runs.build_config("fake_exp")
    with pytest.raises(runs.RunNotSaved) as err:
        runs.write_run(
            "fake_exp",
            "quick",
            None,
            cfg,
            lambda c: Result("fake_analysis", metrics={"x": 1}),
            "fake_analysis",
        )
    assert err.value.result.metrics["x"] == 1 and err.value.errno == errno.ENOSPC
    assert not list((roots / "fake_exp").iterdir())  # nothing half-written, no .tmp left
    res = runner.invoke(app, ["run", "fake_exp"])
    assert (
        res.exit_code == 2 and "No space left on device" in res.output and "saved to" in res.output
    )
    spare = next((tmp_path / "spare" / "interp-unsaved" / "fake_exp").iterdir())
    assert Result.load(spare).analysis == "fake_analysis"


def test_bad_port_unknown_experiment_filters_exit_2(roots, fake_analysis):
    for args in (["app", "--port", "99999"], ["demo", "--port", "0", "--no-serve"]):
        res = runner.invoke(app, args)
        assert res.exit_code == 2 and "--port" in res.output
    res = runner.invoke(app, ["runs", "-e", "bogus"])
    assert (
        res.exit_code == 2
        and "unknown experiment 'bogus'" in res.output
        and "fake_exp" in res.output
    )
    res = runner.invoke(app, ["runs", "-e", "fake_exp"])
    assert res.exit_code == 0 and "no runs of fake_exp yet" in res.output
    res = runner.invoke(app, ["demo", "--only", "bogus", "--no-serve"])
    assert res.exit_code == 2 and "unknown experiment 'bogus'" in res.output


def test_sae_and_check_bound_their_buffers_before_any_work(model_dir, monkeypatch, tiny_gpt):
    monkeypatch.setattr(utils, "memory_bytes", lambda: 2**30)
    with pytest.raises(ConfigError, match="prompt tokens.*Lower n_prompts"):
        check.run(check.Config(model=str(model_dir), n_prompts=10**6, device="cpu"))
    cfg = sae.Config(model="zoo:code-lm-tiny", n_train=10**8, seq_len=16)
    with pytest.raises(ConfigError, match="training tokens.*Lower n_train"):
        sae._check_sizes(tiny_gpt, cfg)
    monkeypatch.setattr(utils, "memory_bytes", lambda: 2**40)
    monkeypatch.setattr("shutil.disk_usage", lambda p: type("U", (), {"free": 1000})())
    with pytest.raises(ConfigError, match="needs .* on disk"):
        sae._check_sizes(tiny_gpt, cfg)


def test_an_allocator_failure_mid_run_is_one_line(monkeypatch):
    def oom(*a, **k):
        raise RuntimeError(
            "[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: "
            "you tried to allocate 128000000000 bytes"
        )

    monkeypatch.setattr(runs, "run_experiment", oom)
    res = runner.invoke(app, ["run", "model_report"])
    assert (
        res.exit_code == 2
        and "ran out of memory" in res.output
        and "lower its counts" in res.output
    )
