"""The helpers every page shares (interp/plotting/common.py): verdicts in plain words, criteria
tables sanity first, flat metrics, figure order, run rows."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np

from interp.plotting import common
from interp.results import Criterion


def _crit(name, kind, holds):
    return Criterion.check(name, 1.0 if holds else 0.0, ">", 0.5, kind=kind)


def test_verdicts_and_the_strip_say_what_failed():
    crit = [
        _crit("c1", "claim", False),
        _crit("s1", "sanity", True),
        _crit("s2", "sanity", True),
        _crit("t1", "target", False),
        _crit("c2", "claim", True),
    ]
    assert [common.verdict(c) for c in crit[:2]] == [
        common.VERDICT_CLAIM_FAILS,
        common.VERDICT_HOLDS,
    ]
    assert common.verdict(_crit("s", "sanity", False)) == common.VERDICT_SANITY_FAILS
    assert common.verdict(crit[3].model_dump()) == common.VERDICT_TARGET_MISSED  # the dict form too
    assert [r["name"] for r in common.criteria_rows(crit)] == ["s1", "s2", "c1", "c2", "t1"]
    assert [s["text"] for s in common.verdict_strip(crit)] == [
        "sanity checks: all 2 hold",
        "paper claims: 1 of 2 hold",
        "performance targets: 0 of 1 met",
    ]
    assert common.criteria_counts(crit) == {
        "n": 5,
        "hold": 3,
        "sanity_failures": 0,
        "claims_not_holding": 1,
        "targets_missed": 1,
    }
    assert list(common.criteria_frame([]).columns) == list(common.CRITERIA_COLUMNS)


def test_seeds_rows_spread_each_seeds_value():
    c = _crit("c", "claim", True).model_copy(
        update={"seeds_held": 2, "seeds_run": 3, "values": [1.0, 0.0, 1.0]}
    )
    (row,) = common.seeds_rows([c], [0, 1, 2])
    assert row["seeds held"] == "2 of 3" and [row[f"seed {s}"] for s in range(3)] == [1.0, 0.0, 1.0]


def test_flatten_metrics_keeps_numbers_only():
    flat = common.flatten_metrics(
        {
            "a": 1,
            "b": {"c": 2.5, "d": "text", "e": True},
            "f": [1, 2],
            "g": np.float32(0.5),
            "h": math.nan,
            "criteria": [{"x": 1}],
        }
    )
    assert set(flat) == {"a", "b.c", "g", "h"} and flat["b.c"] == 2.5 and math.isnan(flat["h"])
    assert list(common.metrics_frame({"a": 1}).columns) == ["metric", "value"]


def test_figure_order_and_stamps_and_run_rows():
    assert common.ordered_figures(["z", "b", "a"], order=["b", "missing"]) == ["b", "a", "z"]
    assert common.headline_figure([], order=["a"]) is None
    assert common.format_stamp("20240131-094501-abc") == "2024-01-31 09:45:01"
    assert common.format_stamp("latest") == "latest"
    run = SimpleNamespace(
        experiment="e",
        analysis="a",
        preset="quick",
        seeds=[0, 1, 2],
        created="20240131-094501",
        n_hold=2,
        n_criteria=3,
        sanity_failures=0,
        id="e/x",
    )
    (row,) = common.run_rows([run])
    assert (
        row["preset"] == "quick, seeds 0-2"
        and row["criteria held"] == "2/3"
        and row["date"].startswith("2024")
    )
    assert common.preset_label(SimpleNamespace(preset="full")) == "full"
