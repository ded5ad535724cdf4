"""The Model: its hook-name scheme, its input checks, its hooks context, wrap, save, and the
edit check both backends share (interp/tracing/model.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import interp
from interp.tracing.model import Model, StopForward, wrap


def test_hook_resolves_short_names_and_counts_negative_layers(tiny_gpt):
    m = tiny_gpt
    assert m.n_layers == 2 and m.d_vocab == 50
    assert m.hook("resid_post", 1) == m.hook("resid_post", -1) == "blocks.1.hook_resid_post"
    assert (
        m.hook("embed") == "hook_embed"
        and m.hook("ln_final.hook_normalized") == "ln_final.hook_normalized"
    )
    with pytest.raises(IndexError, match="out of range: tiny_gpt has 2 layers"):
        m.hook("resid_post", 2)
    with pytest.raises(KeyError, match="resid_post"):  # the closest valid kinds are named
        m.hook("resid_pst", 0)
    with pytest.raises(KeyError):
        m.hook("no_such_hook")


def test_every_layer_hook_kind_fires_with_its_documented_rank(tiny_gpt, tokens):
    """LAYER_HOOKS promises a shape per kind: [batch, pos, d] or [batch, pos, head, d_head] or
    [batch, head, query, key]; each kind the model offers comes back with that many dims."""
    m = tiny_gpt
    rank = {"q": 4, "k": 4, "v": 4, "z": 4, "result": 4, "scores": 4, "pattern": 4}
    names = {
        kind: f"blocks.0.{hook}"
        for kind, hook in Model.LAYER_HOOKS.items()
        if f"blocks.0.{hook}" in m.hook_names
    }
    assert {"resid_pre", "resid_post", "z", "pattern", "mlp_post"} <= set(names)
    _, acts = interp.trace(m, tokens, capture=list(names.values()))
    for kind, name in names.items():
        assert acts[name].ndim == rank.get(kind, 3), (kind, tuple(acts[name].shape))
        assert acts[name].shape[0] == tokens.shape[0]


def test_resid_names_and_layer_of(tiny_gpt, tiny_rnn):
    assert tiny_gpt.resid_names() == [
        "blocks.0.hook_resid_pre",
        "blocks.0.hook_resid_post",
        "blocks.1.hook_resid_post",
    ]
    assert [tiny_gpt.layer_of(n) for n in tiny_gpt.resid_names()] == [0, 0, 1]
    assert tiny_gpt.layer_of("hook_embed") is None and tiny_gpt.layer_of("blocks.x.y") is None
    assert tiny_rnn.resid_names()[0] == "hook_embed"
    assert tiny_rnn.per_step("rnn.hook_h") and not tiny_rnn.per_step("hook_embed")


def test_prepare_checks_token_ids_before_the_forward(tiny_gpt):
    m = tiny_gpt
    assert m.prepare([[1, 2, 3]]).tolist() == [[1, 2, 3]]
    with pytest.raises(ValueError, match=r"\[0, 50\)"):
        m.prepare(torch.tensor([[1, 50]]))
    with pytest.raises(TypeError, match="token ids"):
        m.prepare(torch.zeros(1, 3))
    with pytest.raises(ValueError, match="empty"):
        m.prepare([])
    with pytest.raises(ValueError, match="no tokenizer"):
        m.prepare("text needs a tokenizer")


def test_device_dtype_and_repr(tiny_gpt):
    m = tiny_gpt
    assert m.device == torch.device("cpu") and m.dtype == torch.float32
    assert m.eval() is m and m.to("cpu") is m
    assert repr(m).startswith("Model('tiny_gpt', kind=transformer, backend=tl, hooks=")
    with pytest.raises(ValueError, match="backend must be 'tl' or 'nnsight'"):
        Model(nn.Linear(2, 2), backend="jax")


def test_hooked_stops_after_the_named_hook_and_refuses_nnsight(tiny_gpt, tokens):
    m = tiny_gpt
    with m.hooked(["blocks.0.hook_resid_post"], stop_after="blocks.0.hook_resid_post") as store:
        with pytest.raises(StopForward):
            m.module(tokens % 50)
    assert store["blocks.0.hook_resid_post"].shape == (6, 12, 32)
    with pytest.raises(RuntimeError, match="TransformerLens-backed"):
        with wrap(nn.Linear(2, 2)).hooked(["hook_in"]):
            pass


def test_wrap_names_every_submodule_in_definition_order():
    m = wrap(nn.Sequential(nn.Linear(4, 3), nn.ReLU()), model_id="seq")
    assert m.backend == "nnsight" and m.kind == "module" and m.d_vocab is None
    assert m.hook_names == ["0.hook_in", "0.hook_out", "1.hook_in", "1.hook_out"]


def test_save_and_load_round_trip(tiny_gpt, tokens, tmp_path):
    tiny_gpt.save(tmp_path / "m")
    back = interp.load_model(str(tmp_path / "m"), device="cpu")
    assert back.hook_names == tiny_gpt.hook_names
    torch.testing.assert_close(back(tokens), tiny_gpt(tokens))


def _tl_and_nnsight(tiny_gpt, tokens):
    seq = wrap(nn.Sequential(nn.Embedding(50, 8), nn.Linear(8, 8), nn.Linear(8, 5)), model_id="seq")
    return [(tiny_gpt, "blocks.0.hook_resid_post"), (seq, "1.hook_out"), (seq, "1.hook_in")]


@pytest.mark.parametrize("which", [0, 1, 2], ids=["tl", "nnsight-output", "nnsight-input"])
@pytest.mark.parametrize(
    "edit, error, words",
    [
        (lambda a: a[:, :1], ValueError, "returned shape"),
        (lambda a: a.double(), TypeError, "dtype float64, expected float32"),
        (lambda a: a.tolist(), TypeError, "returned list"),
    ],
)
def test_both_edit_paths_check_shape_and_dtype(tiny_gpt, tokens, which, edit, error, words):
    """The nnsight path refuses what the TransformerLens path refuses, with the same message,
    before the rest of the forward sees the bad value."""
    m, name = _tl_and_nnsight(tiny_gpt, tokens)[which]
    with pytest.raises(error, match=words):
        interp.trace(m, tokens % 50, edits={name: edit})


@pytest.mark.parametrize("which", [0, 1, 2], ids=["tl", "nnsight-output", "nnsight-input"])
def test_an_edit_returning_none_keeps_the_activation_on_both_paths(tiny_gpt, tokens, which):
    m, name = _tl_and_nnsight(tiny_gpt, tokens)[which]
    clean, _ = interp.trace(m, tokens % 50)
    kept, _ = interp.trace(m, tokens % 50, edits={name: lambda a: None})
    zeroed, _ = interp.trace(m, tokens % 50, edits={name: torch.zeros_like})
    assert torch.equal(clean, kept) and not torch.equal(clean, zeroed)
