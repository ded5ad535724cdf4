"""Result and Criterion (interp/results.py): how a criterion decides, and a result's round trip
through its directory."""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import pytest

from interp.results import Criterion, Result


@pytest.mark.parametrize(
    "value, op, threshold, holds",
    [
        (1.0, ">=", 1.0, True),
        (0.99, ">=", 1.0, False),
        (0.5, "<", 1.0, True),
        (2, "==", 2.0, True),
        (math.nan, "<=", 1.0, False),
        (None, ">", 0.0, False),  # a NaN or missing value never holds
    ],
)
def test_a_criterion_decides_from_the_numbers(value, op, threshold, holds):
    c = Criterion.check("c", value, op, threshold, kind="claim")
    assert c.holds is holds
    if value is None or (isinstance(value, float) and math.isnan(value)):
        assert c.value is None


def test_verdicts_say_what_kind_failed():
    assert Criterion.check("s", 0, ">", 1, kind="sanity").verdict() == "FAILS (implementation?)"
    assert Criterion.check("c", 0, ">", 1, kind="claim").verdict() == "does not hold"
    assert Criterion.check("t", 2, ">", 1, kind="target").verdict() == "met"
    seeds = Criterion.check("c", 1, ">", 0, kind="claim").model_copy(
        update={"seeds_held": 2, "seeds_run": 3}
    )
    assert seeds.verdict() == "holds in 2 of 3 seeds"
    with pytest.raises(ValueError):
        Criterion.check("c", 1, ">", 0, kind="hope")


def test_adding_a_criterion_twice_keeps_the_last():
    r = Result("demo")
    r.add_criterion("x", 0.1, ">=", 0.5, kind="claim")
    r.add_criterion("x", 0.9, ">=", 0.5, kind="claim")
    assert [(c.name, c.value, c.holds) for c in r.criteria] == [("x", 0.9, True)]
    assert "criteria 1/1 hold" in repr(r) and "x" in r.summary()


def test_a_result_round_trips_through_its_directory(tmp_path):
    fig = go.Figure(go.Scatter(x=[0, 1], y=[1, 2]))
    r = Result(
        "demo", {"seed": 3}, {"loss": 0.25}, {"w": np.arange(6).reshape(2, 3)}, {"curve": fig}
    )
    r.add_criterion("loss_small", 0.25, "<", 1.0, kind="sanity")
    back = Result.load(r.save(tmp_path / "run"))
    assert back.analysis == "demo" and back.config == {"seed": 3} and back.metrics["loss"] == 0.25
    assert np.array_equal(back.arrays["w"], r.arrays["w"]) and back.criteria == r.criteria
    assert list(back.figure("curve").data[0].y) == [1, 2]
    with pytest.raises(KeyError, match="curve"):  # the closest figure names are listed
        back.figure("curv")


def test_a_missing_or_corrupted_result_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a result directory"):
        Result.load(tmp_path)
    path = Result("demo", arrays={"a": np.zeros(2)}).save(tmp_path / "r")
    (path / "arrays" / "a.npy").write_bytes(b"not numpy")
    with pytest.raises(ValueError, match="a.npy is corrupted"):
        Result.load(path)
