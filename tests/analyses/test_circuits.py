"""The circuits analysis end to end on the tiny template LM: every sanity criterion holds,
the arrays and curves have the graph's shape, the result saves, loads and feeds the panel."""

from __future__ import annotations

import numpy as np
import pytest

import interp
from interp.analyses.circuits import Config, edge_counts

TEST = dict(
    model="zoo:circuit-lm-tiny",
    n_prompts=8,
    check_prompts=4,
    check_edges=16,
    convergence_steps=[1, 2, 4],
    random_draws=2,
    batch_size=8,
)


def test_edge_counts_cover_both_ends_without_repeats():
    assert edge_counts(100, [0.001, 0.01, 0.011, 0.5]).tolist() == [0, 1, 50, 100]


def test_config_checks_its_prompt_counts():
    with pytest.raises(ValueError, match="check_prompts"):
        Config(n_prompts=4, check_prompts=8)
    with pytest.raises(ValueError, match="increase"):
        Config(convergence_steps=[1, 4, 2])


@pytest.mark.slow
def test_circuits_on_the_tiny_template_lm(tmp_path):
    result = interp.analyses.get("circuits").run(TEST)
    crit = {c.name: c for c in result.criteria}
    sanity = [c for c in result.criteria if c.kind == "sanity"]
    assert len(sanity) == 5 and all(c.holds for c in sanity), result.summary()
    assert {
        "eap_ig_more_faithful_than_eap",
        "small_share_recovers_80pct",
        "random_circuits_near_zero",
        "circuit_keeps_name_mover_heads",
    } <= set(crit)
    m = result.metrics
    g = m["graph"]
    U = 1 + g["n_layers"] * (g["n_heads"] + 1)
    assert (
        result.arrays["scores_eap"].shape
        == (U, m["n_readers"])
        == result.arrays["scores_eap_ig"].shape
    )
    assert np.isfinite(result.arrays["scores_eap"]).sum() == m["n_edges"]  # NaN off the graph
    for name in ("EAP", "EAP-IG", "random"):
        curve = m["curves"][name]
        assert curve["k"][0] == 0 and curve["k"][-1] == m["n_edges"]
        assert curve["f"][0] == pytest.approx(0.0, abs=1e-3) and curve["f"][-1] == pytest.approx(
            1.0, abs=1e-3
        )
    assert result.arrays["head_name_mover"].shape == (g["n_layers"], g["n_heads"])
    result.save(tmp_path / "run")
    back = interp.Result.load(tmp_path / "run")
    for fig in ("faithfulness", "circuit", "eap_vs_exact", "head_roles"):
        assert back.figure(fig) is not None
    seen = []

    class FakeStreamlit:
        def __getattr__(self, name):
            return lambda *a, **k: seen.append(name)

    from tests.conftest import load_panel

    load_panel("circuits")(back, FakeStreamlit())
    assert seen.count("dataframe") == 3 and seen.count("caption") >= 2
