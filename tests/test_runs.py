"""Run directories: config building, --set validation, atomic writes, listing."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

import interp.analyses as analyses
from interp import runs
from interp.results import Criterion, Result
from interp.utils import read_json, write_json


def test_criterion_check_decides_holds():
    assert Criterion.check("a", 0.95, ">=", 0.9, kind="claim").holds
    assert not Criterion.check("a", 0.85, ">=", 0.9, kind="claim").holds
    assert not Criterion.check("a", float("nan"), "<=", 1.0, kind="sanity").holds
    assert Criterion.check("a", 0.0, "<=", 0.0, kind="sanity").holds


def test_result_round_trip(tmp_path):
    r = Result(
        "model_report",
        {"seed": 1},
        {"x": 1.5},
        {"a": np.arange(6).reshape(2, 3)},
        {"f": go.Figure(go.Scatter(x=[1, 2], y=[3, 4]))},
    )
    r.add_criterion("c", 1.0, ">", 0.5, kind="claim", description="d")
    r.save(tmp_path / "res")
    back = Result.load(tmp_path / "res")
    assert back.analysis == "model_report" and back.config == {"seed": 1}
    assert back.metrics["x"] == 1.5 and back.criteria[0].holds
    np.testing.assert_array_equal(back.arrays["a"], r.arrays["a"])
    assert list(back.figure("f").data[0].y) == [3, 4]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp leftovers


def test_corrupted_metrics_is_a_clear_error(tmp_path):
    Result("model_report").save(tmp_path / "r")
    (tmp_path / "r" / "metrics.json").write_text("{not json")
    with pytest.raises(ValueError, match="corrupted"):
        Result.load(tmp_path / "r")


def test_build_config_applies_sets_and_rejects_bad_ones():
    cfg = runs.build_config("model_report", "quick", ["seed=7", "n_prompts=4"])
    assert cfg.seed == 7 and cfg.n_prompts == 4
    with pytest.raises(KeyError, match="seed"):
        runs.build_config("model_report", "quick", ["seeed=7"])
    with pytest.raises(ValueError, match="n_prompts"):
        runs.build_config("model_report", "quick", ["n_prompts=many"])
    with pytest.raises(KeyError, match="quick"):
        runs.build_config("model_report", "quik")
    with pytest.raises(ValueError, match="key=value"):
        runs.parse_sets(["seed"])


def test_every_experiment_preset_is_valid_and_seedable():
    for name, exp in runs.experiments().items():
        assert exp.analysis in analyses.names()
        assert {"quick", "full"} <= set(exp.presets), name
        for preset in exp.presets:
            assert runs.build_config(name, preset, ["seed=123"]).seed == 123


def test_failed_run_leaves_no_run_directory(tmp_path, monkeypatch):
    def boom(cfg):
        raise RuntimeError("boom")

    a = analyses.get("model_report")
    monkeypatch.setitem(
        analyses._REGISTRY, "model_report", type(a)(a.name, a.Config, boom, a.title, a.description)
    )
    with pytest.raises(RuntimeError):
        runs.run_experiment("model_report", "quick", root=tmp_path)
    leftovers = (
        list((tmp_path / "model_report").iterdir()) if (tmp_path / "model_report").exists() else []
    )
    assert runs.list_runs(root=tmp_path) == []
    assert all(p.name.startswith(".") is False for p in leftovers) and not leftovers


def test_list_and_find_runs(tmp_path):
    for stamp in ["20260101-000000-aaaaaa", "20260102-000000-bbbbbb"]:
        d = tmp_path / "exp" / stamp
        r = Result("model_report", metrics={"criteria": []})
        r.add_criterion("ok", 1, ">", 0, kind="sanity")
        r.add_criterion("bad", 0, ">", 1, kind="sanity")
        r.save(d)
        (d / "run.json").write_text(
            json.dumps({"experiment": "exp", "preset": "quick", "analysis": "model_report"})
        )
    (tmp_path / "exp" / ".half.tmp").mkdir()
    rows = runs.list_runs(root=tmp_path)
    assert [r.path.name for r in rows] == ["20260102-000000-bbbbbb", "20260101-000000-aaaaaa"]
    assert rows[0].n_hold == 1 and rows[0].sanity_failures == 1
    assert runs.find_run("exp", root=tmp_path).name == "20260102-000000-bbbbbb"
    assert runs.find_run("exp/20260101-000000-aaaaaa", root=tmp_path).name.startswith("20260101")
    with pytest.raises(KeyError, match="run"):
        runs.find_run("nope", root=tmp_path)


def test_write_json_takes_numpy_and_torch_scalars_and_arrays(tmp_path):

    write_json(
        tmp_path / "x.json",
        {"np": np.float32(0.5), "arr": np.arange(2), "t": torch.tensor(1.5), "tv": torch.ones(2)},
    )
    assert read_json(tmp_path / "x.json") == {"np": 0.5, "arr": [0, 1], "t": 1.5, "tv": [1.0, 1.0]}
    with pytest.raises(TypeError, match="cannot serialise"):
        write_json(tmp_path / "y.json", {"bad": object()})


def test_a_damaged_run_is_listed_as_damaged_and_never_skipped_silently(tmp_path):
    for stamp in ["20260101-000000-aaaaaa", "20260102-000000-bbbbbb"]:
        d = tmp_path / "exp" / stamp
        Result("model_report", metrics={"criteria": []}).save(d)
        (d / "run.json").write_text(
            json.dumps({"experiment": "exp", "preset": "quick", "analysis": "model_report"})
        )
    (tmp_path / "exp" / "20260102-000000-bbbbbb" / "metrics.json").write_text("{not json")
    assert [r.path.name for r in runs.list_runs(root=tmp_path)] == ["20260101-000000-aaaaaa"]
    rows = runs.list_runs(root=tmp_path, include_damaged=True)
    assert [r.path.name for r in rows] == ["20260102-000000-bbbbbb", "20260101-000000-aaaaaa"]
    assert "metrics.json" in rows[0].damaged and "not valid JSON" in rows[0].damaged
    with pytest.raises(
        ValueError, match=r"latest run of 'exp'.*is damaged.*20260101-000000-aaaaaa"
    ):
        runs.find_run("exp", root=tmp_path)  # an older run is never passed off as the latest


def test_a_seeds_run_with_fewer_run_ids_than_seeds_is_damaged(tmp_path):
    """The dashboard pairs each seed with its run id: a run.json whose lists differ in length is
    reported as damaged, naming the file, instead of pairing the wrong runs."""
    d = tmp_path / "exp" / "20260101-000000-aaaaaa"
    Result("model_report", metrics={"criteria": []}).save(d)
    meta = {"experiment": "exp", "analysis": "model_report", "seeds": [0, 1], "runs": ["r0"]}
    (d / "run.json").write_text(json.dumps(meta))
    (row,) = runs.list_runs(root=tmp_path, include_damaged=True)
    assert "run.json" in row.damaged and "same length" in row.damaged
    meta["runs"] = ["r0", "r1"]
    (d / "run.json").write_text(json.dumps(meta))
    (row,) = runs.list_runs(root=tmp_path, include_damaged=True)
    assert not row.damaged and row.seed_runs == ("r0", "r1")


def test_two_identical_runs_started_together_both_land(tmp_path):
    code = textwrap.dedent(f"""
        from pydantic import BaseModel
        from interp.results import Result
        from interp.runs import write_run

        class C(BaseModel):
            seed: int = 0

        def run(cfg):
            return Result("twin")

        print(write_run("twin", "quick", None, C(), run, "twin", root={str(tmp_path)!r}))
    """)
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    paths = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0] * 4
    assert len(set(paths)) == 4 and len(runs.list_runs(root=tmp_path)) == 4
