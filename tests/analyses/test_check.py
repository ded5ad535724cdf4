"""The checkpoint check: it passes on every architecture we support, and it can fail.

Each checkpoint is tiny (2 layers, d_model 32), random, and saved to a directory in the test
(``save_pretrained`` for the Hugging Face ones, ``Model.save`` for the zoo-style one), so
the check loads it the way a user's checkpoint is loaded."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import interp
from interp.analyses import check
from interp.results import Result

ARCHS = ["zoo", "gpt2", "neox", "llama_gqa", "bert_mlm", "bert_headless"]
NORMED_LAST = {
    "zoo": False,
    "gpt2": True,
    "neox": True,
    "llama_gqa": True,
    "bert_mlm": False,
    "bert_headless": False,
}
SMALL = dict(n_prompts=2, seq_len=8, timing_batch=(2, 8), timing_batches=1, repeats=1, device="cpu")


def save_checkpoint(arch: str, path) -> str:
    """A tiny random checkpoint of ``arch`` saved in ``path``; returns the directory."""
    import transformers as T

    torch.manual_seed(0)
    small = dict(
        vocab_size=50,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=32,
    )
    if arch == "zoo":
        from interp.models.transformer import build_transformer
        from interp.tracing.model import Model
        from tests.conftest import build_spec

        spec = build_spec()
        Model(
            build_transformer(spec),
            backend="tl",
            kind="transformer",
            model_id="tiny",
            spec={"builder": "transformer", "spec": spec.model_dump(mode="json")},
        ).save(path)
        return str(path)
    hf = {
        "gpt2": lambda: T.GPT2LMHeadModel(
            T.GPT2Config(vocab_size=50, n_embd=32, n_layer=2, n_head=4, n_positions=32)
        ),
        "neox": lambda: T.GPTNeoXForCausalLM(T.GPTNeoXConfig(**small)),
        "llama_gqa": lambda: T.LlamaForCausalLM(T.LlamaConfig(**small, num_key_value_heads=2)),
        "bert_mlm": lambda: T.BertForMaskedLM(T.BertConfig(**small)),
        "bert_headless": lambda: T.BertModel(T.BertConfig(**small)),
    }[arch]()
    hf.eval().save_pretrained(path)
    return str(path)


def run_check(model: str, **overrides) -> Result:
    return interp.analyses.get("check").run({"model": model, **SMALL, **overrides})


@pytest.mark.parametrize("arch", ARCHS)
def test_check_passes_on_every_architecture(tmp_path, arch):
    result = run_check(save_checkpoint(arch, tmp_path))
    crit = {c.name: c for c in result.criteria}
    assert all(c.holds for c in result.criteria), result.summary()
    headless = arch == "bert_headless"
    assert ("logits_match" in crit) is not headless  # a headless encoder: hidden states only
    assert set(crit) - {"logits_match"} == {"hidden_states_match", "layer_hooks_resolve"}
    m = result.metrics
    assert m["reference"] == ("plain native module" if arch == "zoo" else "Hugging Face forward")
    assert m["final_hidden_is_normed"] is NORMED_LAST[arch]
    assert (
        len(m["compared_hooks"]) == 3 and len(result.arrays["hidden_max_abs_error"]) == 3
    )  # embedding + 2 blocks
    for kind in check.REQUIRED_KINDS:
        assert m["hook_kinds"][kind] == [0, 1], kind
    assert (
        m["n_hooks"] > 20
        and sum(m["hooks_per_layer"]) + m["n_hooks_outside_blocks"] == m["n_hooks"]
    )
    assert m["collect_over_bare"] > 0 and len(result.arrays["collect_seconds"]) == SMALL["repeats"]
    assert {"parity", "timing"} <= set(result.figures)
    # every resid_post has a checked plain route, so collect takes the fast path; patterns never
    # do on HF
    assert m["collect_path"] == "plain modules" and m["plain_routed_hooks"] > 2 * 3
    if arch != "zoo":
        assert "attn.hook_pattern" in m["bridge_only_hook_kinds"]


def test_check_in_bfloat16_holds_to_the_looser_tolerance(tmp_path):
    result = run_check(save_checkpoint("gpt2", tmp_path), dtype="bfloat16")
    crit = {c.name: c for c in result.criteria}
    assert all(c.holds for c in result.criteria), result.summary()
    scale = crit["hidden_states_match"].threshold / check.TOLERANCE["bfloat16"]
    assert scale >= 1.0 and result.metrics["dtype"] == "bfloat16"


@pytest.mark.parametrize("arch", ["gpt2", "llama_gqa"])
def test_a_bridge_that_computes_something_else_fails_the_check(tmp_path, monkeypatch, arch):
    """Planted: after loading, the bridge's first norm adds 1 to its output (a forward hook
    on the bridge's wrapper); the reference, the model's own modules under the wrappers, is
    untouched. Block 0's output and everything after it differ."""
    load = check.load_checked_model

    def wrong(config):
        m = load(config)
        m.module.blocks[0].ln1.register_forward_hook(lambda mod, args, out: out + 1.0)
        return m

    monkeypatch.setattr(check, "load_checked_model", wrong)
    result = run_check(save_checkpoint(arch, tmp_path))
    crit = {c.name: c for c in result.criteria}
    assert not crit["hidden_states_match"].holds and not crit["logits_match"].holds
    errors = result.arrays["hidden_max_abs_error"]
    assert errors[0] == 0 and errors[1] > 0  # the embedding still matches; block 0 on does not


@pytest.mark.parametrize("arch", ["zoo", "llama_gqa"])
def test_a_perturbed_reference_layer_fails_the_check_at_that_layer(tmp_path, monkeypatch, arch):
    forward = check.reference_forward

    def perturbed(m, ref, source, ids):
        out = forward(m, ref, source, ids)
        hidden = [*out.hidden[:2], out.hidden[2] + 1e-2]  # the last state of a 2-layer model
        return dataclasses.replace(out, hidden=hidden)

    monkeypatch.setattr(check, "reference_forward", perturbed)
    result = run_check(save_checkpoint(arch, tmp_path))
    crit = {c.name: c for c in result.criteria}
    assert not crit["hidden_states_match"].holds and crit["logits_match"].holds
    assert np.argmax(result.arrays["hidden_max_abs_error"]) == 2


def test_a_hook_kind_that_does_not_resolve_on_a_layer_fails(tiny_gpt, monkeypatch):
    hook = tiny_gpt.hook

    def broken(kind, layer=None):
        if (kind, layer) == ("z", 1):
            raise KeyError("no hook_z in block 1")
        return hook(kind, layer)

    monkeypatch.setattr(tiny_gpt, "hook", broken)
    inv = check.hook_inventory(tiny_gpt)
    assert inv.unresolved == ["z@1"] and inv.missing_kinds == []
    assert inv.kinds["resid_mid"] == [0, 1] and inv.kinds["result"] == []  # hook_result is off


def test_a_model_that_is_not_a_transformer_is_a_clear_error(tmp_path, tiny_rnn):
    tiny_rnn.save(tmp_path)
    with pytest.raises(ValueError, match="is a rnn"):
        run_check(str(tmp_path))


def test_the_check_page_renders_from_a_saved_run(tmp_path, monkeypatch):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    from interp.utils import write_json

    result = run_check(save_checkpoint("gpt2", tmp_path / "ckpt"))
    runs = tmp_path / "runs"
    path = runs / "check" / "20240131-094501-abcdef"
    result.save(path)
    write_json(
        path / "run.json",
        {"experiment": "check", "preset": "cli", "analysis": "check", "created": "20240131-094501"},
    )
    monkeypatch.setenv("INTERP_RUNS", str(runs))
    app_dir = str(Path(__file__).resolve().parents[2] / "app")
    at = AppTest.from_function(_check_page, args=(app_dir,), default_timeout=60).run()
    assert not at.exception, at.exception
    shown = "\n".join(
        str(el.value)
        for kind in ("title", "subheader", "markdown", "caption")
        for el in at.get(kind)
    )
    assert "Parity with the model's own forward" in shown and "collect vs a bare forward" in shown
    assert len(at.get("plotly_chart")) >= 2


def _check_page(app_dir: str) -> None:
    import sys

    sys.path.insert(0, app_dir)
    import views

    views.analysis_page("check")
