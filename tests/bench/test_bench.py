"""The benchmark: its timing helpers, and a run at tiny size that names every target.

Timings are never asserted (a shared machine); the tests check that every measuring part
runs, on a transformer and an RNN, and that metrics.json lists every performance target
(docs/performance.md).
"""

from __future__ import annotations

import math

import pytest
import torch
from typer.testing import CliRunner

import interp
from interp import bench
from interp.bench.collection import HF_COLLECT, HF_COLLECT_TARGETS
from interp.bench.core import _resid_hooks, _tf_hooks
from interp.bench.methods import KNOCKOUT_HF, KNOCKOUT_TARGETS, _count_host_syncs
from interp.cli import app

TINY = dict(
    n_layers=2,
    d_model=32,
    n_heads=4,
    n_ctx=16,
    d_vocab=40,
    rnn_hidden=8,
    repeats=1,
    compute_batch=(2, 16),
    overhead_batch=(1, 4),
    compute_batches=1,
    overhead_batches=2,
    overhead_repeats=1,
    memory_items=8,
    feature_items=8,
    sae_steps=3,
    sae_batch=16,
    fp_states=6,
    fp_iters=3,
    import_runs=1,
    real_model="spec",
    real_batch=(2, 16),
)


def test_interleaved_runs_rounds_in_order_and_pairs_ratios():
    calls = []
    times = bench.interleaved(
        {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=3, warmup=1
    )
    assert calls == ["a", "b"] * 4  # one warm-up round, then A B A B A B
    assert [len(t) for t in times.values()] == [3, 3]
    fake = {"a": [2.0, 9.0, 3.0], "b": [1.0, 3.0, 3.0]}  # paired ratios 2, 3, 1 -> median 2
    assert bench.paired_ratio(fake, "a", "b") == 2.0


def test_host_sync_counter_counts_reads_of_tensor_data():
    class Out:
        meta = {"iterations": 7}

    def fn():
        t = torch.ones(3)
        t.sum().item()
        t.tolist()
        bool(t[0] > 0)
        return Out()

    assert _count_host_syncs(fn) == (3, 7)


@pytest.mark.slow
def test_bench_emits_every_target_at_tiny_size():
    result = bench.run(bench.Config(**TINY))
    crit = {c.name: c for c in result.criteria}
    assert set(bench.TARGETS) <= set(crit), set(bench.TARGETS) - set(crit)
    for name, (op, threshold) in bench.TARGETS.items():
        assert (crit[name].op, crit[name].threshold, crit[name].kind) == (op, threshold, "target")
    assert {"early_stop_layer0_over_full"} <= set(crit)
    for name, (
        op,
        threshold,
    ) in bench.REAL_TARGETS.items():  # the real-model item, run on the bench transformer
        assert (crit[name].op, crit[name].threshold) == (op, threshold)
        assert crit[name].value is not None and crit[name].value > 0, name
    sanity = [c for c in result.criteria if c.kind == "sanity"]
    assert len(sanity) == 6 and all(c.holds for c in sanity), result.summary()

    for arch in HF_COLLECT:  # Hugging Face shapes: exact, and on the plain-module path
        assert crit[f"collect_equals_trace_hf_{arch}"].holds
        assert result.metrics[f"hf_{arch}_collect_path"] == "plain modules"
        for name, base, _ in HF_COLLECT_TARGETS:
            c = crit[name.format(arch=arch)]
            assert (
                (c.op, c.threshold) == bench.TARGETS[base] and c.value is not None and c.value > 0
            )
    measured = [
        n
        for n, c in crit.items()
        if c.kind == "target" and n.startswith(("collect_over", "tl_", "early_stop", "disk_"))
    ]
    for name in measured:  # measurable on any CPU: a real, positive ratio
        assert (
            crit[name].value is not None
            and crit[name].value > 0
            and math.isfinite(crit[name].value)
        ), name
    held = crit["memory_held_over_selected_bytes"].value  # tiny here: may be below one page of RSS
    assert held is not None and held >= 0 and result.metrics["memory"]["selected_bytes"] > 0
    cases = {r["case"].split()[0] for r in result.metrics["table"] if r["item"] == "collection"}
    assert cases == {"transformer", "rnn"}
    assert crit["cuda_collect_to_host_over_bare"].value is None or torch.cuda.is_available()


def test_unknown_item_is_refused():
    with pytest.raises(ValueError, match="collection"):
        bench.run(bench.Config(**TINY, only=["colection"]))


def test_cli_bench_runs_one_item():

    out = CliRunner().invoke(app, ["bench", "import", "--set", "import_runs=1"])
    assert out.exit_code == 0, out.output
    assert "import_seconds_interp_help" in out.output and "run written to" in out.output


def test_bench_is_not_an_analysis_and_writes_runs_bench(tmp_path):
    assert "bench" not in interp.analyses.names()
    assert "bench" not in interp.runs.experiments()
    path = bench.run_bench("quick", ["only=[import]", "import_runs=1"], root=tmp_path)
    assert path.parent == tmp_path / "bench"
    crit = interp.Result.load(path).criteria
    assert [c.kind for c in crit] == ["target"]


def test_benchmark_hooks_come_from_the_model(tiny_gpt, tiny_rnn):
    assert _tf_hooks(tiny_gpt) == [
        "blocks.0.attn.hook_z",
        "blocks.0.hook_resid_post",
        "blocks.1.attn.hook_z",
        "blocks.1.hook_resid_post",
    ]
    assert _resid_hooks(tiny_gpt) == ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post"]
    assert tiny_rnn.module.rnn.hook_h.name in tiny_rnn.hook_names  # the RNN item's hook


def test_knockout_item_measures_the_bench_transformer_and_hf_shapes():
    """The knockout item reports its three targets on the bench transformer and, suffixed, on a
    GPT-2- and a Llama-shaped Hugging Face model; only the logit error is checked (a value, not a
    time)."""
    result = bench.run(bench.Config(**TINY, only=["knockout"]))
    crit = {c.name: c for c in result.criteria}
    for suffix in [""] + [f"_{a}" for a in KNOCKOUT_HF]:
        for base, _ in KNOCKOUT_TARGETS:
            c = crit[base + suffix]
            assert c.kind == "target" and (c.op, c.threshold) == bench.TARGETS[base], c.name
            assert c.value is not None and math.isfinite(c.value) and c.value >= 0, (
                c.name,
                c.description,
            )
        assert crit["knockout_max_abs_logit_error" + suffix].value < 1e-5
    cases = [r["case"] for r in result.metrics["table"] if r["item"] == "knockout"]
    assert {c.split()[0] for c in cases} == {"transformer", *KNOCKOUT_HF} and all(
        "x32]" in c for c in cases[3:]
    )


def test_generation_item_compares_with_hf_generate():
    """The generation item names its target and checks, without an edit, the same tokens as the
    Hugging Face model's own generate (a value, not a time)."""
    result = bench.run(bench.Config(**TINY, only=["generation"]))
    crit = {c.name: c for c in result.criteria}
    c = crit["generate_with_edits_over_hf_generate"]
    assert c.kind == "target" and (c.op, c.threshold) == bench.TARGETS[c.name]
    assert c.value is not None and math.isfinite(c.value) and c.value > 0
    assert crit["generate_equals_hf_generate"].holds
    assert {r["variant"] for r in result.metrics["table"] if r["item"] == "generation"} == {
        "interp_edit",
        "interp",
        "hf_generate",
    }
