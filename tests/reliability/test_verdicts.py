"""Verdicts are recomputed from value, op and threshold on load, never trusted from disk; one
damaged run never hides the others (CLI and dashboard)."""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest
from typer.testing import CliRunner

from interp import runs
from interp.cli import app
from interp.results import Result
from tests.app.test_app import HOME, TIMEOUT, frames, make_run

runner = CliRunner()


def _edit_criteria(run, edit):
    m = json.loads((run / "metrics.json").read_text())
    edit(m["criteria"])
    (run / "metrics.json").write_text(json.dumps(m))


def _forge(run):
    """holds: true on a NaN value and on 3.0 <= 1e-6 (both sanity checks)."""

    def edit(crit):
        crit[0].update(value=3.0, holds=True)  # exact_identity: 3.0 <= 1e-6
        crit.append({**crit[0], "name": "nan_check", "value": float("nan"), "holds": True})

    _edit_criteria(run, edit)


def test_result_load_recomputes_stored_verdicts(roots):
    run = make_run(roots)
    _forge(run)
    r = Result.load(run)
    by = {c.name: c for c in r.criteria}
    assert not by["exact_identity"].holds and not by["nan_check"].holds
    assert r.verdict_mismatches == ["exact_identity", "nan_check"]
    assert "stored verdicts disagreed" in r.summary() and "FAILS" in r.summary()


def test_seeds_run_counts_are_recomputed(tmp_path):
    crit = {
        "name": "c",
        "value": 0.5,
        "threshold": 0.9,
        "op": ">=",
        "holds": True,
        "kind": "claim",
        "seeds_held": 3,
        "seeds_run": 3,
        "values": [0.95, 0.5, None],
    }
    Result("x", metrics={"criteria": [crit]}).save(tmp_path / "r")
    c = Result.load(tmp_path / "r").criteria[0]
    assert (c.holds, c.seeds_held) == (False, 1) and c.verdict() == "holds in 1 of 3 seeds"


def test_runs_list_and_show_flag_a_forged_run(roots):
    run = make_run(roots)
    _forge(run)
    info = runs.list_runs()[0]
    assert info.mismatched == ("exact_identity", "nan_check") and info.sanity_failures == 2
    res = runner.invoke(app, ["runs"])
    assert (
        res.exit_code == 0
        and "STORED VERDICTS WERE WRONG" in res.output
        and "SANITY FAILURES: 2" in res.output
    )
    res = runner.invoke(app, ["runs", "show", "fake_exp"])
    assert res.exit_code == 0 and "WARNING: stored verdicts disagreed" in res.output


@pytest.mark.parametrize(
    "damage, file",
    [
        (lambda r: _edit_criteria(r, lambda c: c.__setitem__(0, "oops")), "metrics.json"),
        (lambda r: _edit_criteria(r, lambda c: c[0].pop("op")), "metrics.json"),
        (lambda r: (r / "config.json").write_text("[1, 2]"), "config.json"),
        (lambda r: (r / "run.json").write_text('["x"]'), "run.json"),
        (lambda r: (r / "metrics.json").write_text('{"criteria": {"a": 1}}'), "metrics.json"),
    ],
    ids=[
        "criterion-string",
        "criterion-missing-op",
        "config-list",
        "run-json-list",
        "criteria-dict",
    ],
)
def test_one_damaged_run_hides_nothing(roots, fake_analysis, damage, file):
    good = make_run(roots, "20240101-000000-aaaaaa")
    bad = make_run(roots, "20240102-000000-bbbbbb")
    damage(bad)
    res = runner.invoke(app, ["runs"])
    assert res.exit_code == 0, res.output
    assert good.name in res.output and "DAMAGED" in res.output and file in res.output
    res = runner.invoke(app, ["runs", "show", f"fake_exp/{good.name}"])
    assert res.exit_code == 0 and "exact_identity" in res.output
    res = runner.invoke(app, ["runs", "show", f"fake_exp/{bad.name}"])
    # a readable result with a damaged run.json is shown with a warning; otherwise exit 2
    assert res.exit_code == (0 if file == "run.json" else 2) and file in res.output
    assert "Traceback" not in res.output
    at = AppTest.from_file(HOME, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert list(frames(at)[0]["run"]) == [f"fake_exp/{good.name}"]
    assert any(str(bad) in e.value and file in e.value for e in at.error)


def test_dashboard_warns_about_recomputed_verdicts(roots, fake_analysis):
    _forge(make_run(roots))
    at = AppTest.from_file(HOME, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert list(frames(at)[0]["sanity failures"]) == [2]
    assert any(
        "disagreed with their own values" in w.value and "nan_check" in w.value for w in at.warning
    )
