"""The real-model bench item: its layer choice, and its targets measured on the bench transformer
(the real model itself is measured by hand: docs/performance.md)."""

from __future__ import annotations

import pytest

from interp import bench
from interp.bench.real import REAL_TARGETS, spread_layers
from interp.models import pretrained
from tests.bench.test_bench import TINY


def test_spread_layers_include_the_last():
    assert spread_layers(30) == [7, 14, 22, 29]
    assert spread_layers(2) == [0, 1]
    assert spread_layers(4) == [0, 1, 2, 3]


@pytest.mark.slow
def test_real_item_reports_every_target():
    result = bench.run(bench.Config(**TINY, only=["real_model"]))
    crit = {c.name: c for c in result.criteria}
    for name, (op, threshold) in REAL_TARGETS.items():
        assert (crit[name].op, crit[name].threshold, crit[name].kind) == (op, threshold, "target")
        assert crit[name].value is not None and crit[name].value > 0, name
    assert result.metrics["real_collect_tokens_per_s"] > 0


def test_a_missing_real_model_is_reported_not_raised(monkeypatch):
    monkeypatch.setattr(pretrained.importlib.util, "find_spec", lambda name: None)

    result = bench.run(
        bench.Config(**{**TINY, "real_model": "pretrained:smollm2-135m"}, only=["real_model"])
    )
    crit = {c.name: c for c in result.criteria}
    assert all(
        crit[name].value is None and "pip install" in crit[name].description
        for name in REAL_TARGETS
    )
