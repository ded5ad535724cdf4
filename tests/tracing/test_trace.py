"""trace and edits: invariants on tiny models (identity edit, ablation, patching, names)."""

from __future__ import annotations

import pytest
import torch

import interp
from interp.tracing.trace import mean_ablate, patch, patch_heads, zero_ablate, zero_heads


def test_hook_names_in_execution_order(tiny_gpt):
    names = tiny_gpt.hook_names
    assert names.index("hook_embed") < names.index("blocks.0.hook_resid_pre")
    assert names.index("blocks.0.attn.hook_pattern") < names.index("blocks.0.attn.hook_z")
    assert names.index("blocks.0.hook_resid_post") < names.index("blocks.1.hook_resid_pre")
    assert names.index("blocks.1.mlp.hook_post") < names.index("blocks.1.hook_resid_post")
    for expected in ["blocks.0.attn.hook_q", "blocks.1.mlp.hook_pre", "blocks.0.hook_resid_mid"]:
        assert expected in names


def test_capture_shapes_and_values_match_manual_recompute(tiny_gpt, tokens):
    out, acts = interp.trace(
        tiny_gpt,
        tokens,
        capture=["blocks.1.hook_resid_post", "blocks.0.attn.hook_z", "blocks.0.attn.hook_pattern"],
    )
    assert acts["blocks.0.attn.hook_z"].shape == (6, 12, 4, 8)
    assert acts["blocks.0.attn.hook_pattern"].shape == (6, 4, 12, 12)
    # golden identity: the output is the unembedded final residual stream
    b = tiny_gpt.module
    torch.testing.assert_close(
        b.unembed(b.ln_final(acts["blocks.1.hook_resid_post"])), out, atol=1e-6, rtol=0
    )
    # causal attention: nothing above the diagonal
    p = acts["blocks.0.attn.hook_pattern"]
    assert p.triu(diagonal=1).abs().max() == 0


def test_identity_edit_changes_nothing(tiny_gpt, tokens):
    clean, _ = interp.trace(tiny_gpt, tokens)
    names = [n for n in tiny_gpt.hook_names if n.startswith("blocks.")]
    edited, _ = interp.trace(tiny_gpt, tokens, edits={n: (lambda a: a) for n in names})
    assert torch.equal(clean, edited)


def test_zero_ablation_changes_output_and_is_seen_downstream(tiny_gpt, tokens):
    clean, _ = interp.trace(tiny_gpt, tokens)
    out, acts = interp.trace(
        tiny_gpt,
        tokens,
        capture=["blocks.0.attn.hook_z"],
        edits={"blocks.0.attn.hook_z": zero_heads([1])},
    )
    assert acts["blocks.0.attn.hook_z"][:, :, 1].abs().max() == 0  # captured after the edit
    assert acts["blocks.0.attn.hook_z"][:, :, 0].abs().max() > 0
    assert not torch.allclose(clean, out)


def test_patching_from_own_run_is_identity(tiny_gpt, tokens):
    clean, acts = interp.trace(
        tiny_gpt, tokens, capture=["blocks.0.hook_resid_post", "blocks.1.attn.hook_z"]
    )
    out, _ = interp.trace(
        tiny_gpt,
        tokens,
        edits={
            "blocks.0.hook_resid_post": patch(acts["blocks.0.hook_resid_post"]),
            "blocks.1.attn.hook_z": patch_heads([0, 2], acts["blocks.1.attn.hook_z"]),
        },
    )
    torch.testing.assert_close(out, clean, atol=1e-6, rtol=0)


def test_patching_resid_from_other_input_gives_other_output(tiny_gpt, tokens):
    other = tokens.flip(0)
    ref, acts = interp.trace(tiny_gpt, other, capture=["blocks.1.hook_resid_post"])
    out, _ = interp.trace(
        tiny_gpt,
        tokens,
        edits={"blocks.1.hook_resid_post": patch(acts["blocks.1.hook_resid_post"])},
    )
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)


def test_mean_and_zero_ablate_helpers(tiny_gpt, tokens):
    _, acts = interp.trace(tiny_gpt, tokens, capture=["blocks.0.hook_resid_post"])
    mean = acts["blocks.0.hook_resid_post"].mean(dim=(0, 1))
    _, a2 = interp.trace(
        tiny_gpt,
        tokens,
        capture=["blocks.0.hook_resid_post"],
        edits={"blocks.0.hook_resid_post": mean_ablate(mean)},
    )
    torch.testing.assert_close(a2["blocks.0.hook_resid_post"], mean.expand(6, 12, -1))
    _, a3 = interp.trace(
        tiny_gpt,
        tokens,
        capture=["blocks.0.hook_mlp_out"],
        edits={"blocks.0.hook_mlp_out": zero_ablate()},
    )
    assert a3["blocks.0.hook_mlp_out"].abs().max() == 0


def test_unknown_hook_name_lists_close_matches(tiny_gpt, tokens):
    with pytest.raises(KeyError, match="blocks.0.hook_resid_post"):
        interp.trace(tiny_gpt, tokens, capture=["blocks.0.hook_resid_pots"])
    with pytest.raises(KeyError, match="Did you mean"):
        interp.trace(tiny_gpt, tokens, edits={"blocks.0.attn.hook_zz": zero_ablate()})


def test_edit_with_wrong_shape_is_a_clear_error(tiny_gpt, tokens):
    with pytest.raises(ValueError, match="returned shape"):
        interp.trace(tiny_gpt, tokens, edits={"blocks.0.hook_resid_post": lambda a: a[:, :1]})


def test_grad_mode_keeps_graph(tiny_gpt, tokens):
    out, acts = interp.trace(tiny_gpt, tokens, capture=["blocks.0.hook_resid_post"], grad=True)
    assert acts["blocks.0.hook_resid_post"].requires_grad
    out.sum().backward()


# ------------------------------------------------------------------ RNN
def test_rnn_per_step_hooks_stack_over_time(tiny_rnn, tokens):
    assert tiny_rnn.hook_names == ["hook_embed", "rnn.hook_pre", "rnn.hook_h", "hook_logits"]
    out, acts = interp.trace(tiny_rnn, tokens, capture=["rnn.hook_h", "rnn.hook_pre"])
    assert acts["rnn.hook_h"].shape == (6, 12, 16)
    torch.testing.assert_close(acts["rnn.hook_h"], torch.tanh(acts["rnn.hook_pre"]))
    # the readout of the captured hidden states is the output
    torch.testing.assert_close(tiny_rnn.module.readout(acts["rnn.hook_h"]), out)


def test_rnn_edit_at_one_step_propagates_to_later_steps(tiny_rnn, tokens):
    clean, c = interp.trace(tiny_rnn, tokens, capture=["rnn.hook_h"])
    calls = {"n": 0}

    def kick_at_step_3(h):
        calls["n"] += 1
        return h + 1.0 if calls["n"] == 4 else h

    out, e = interp.trace(
        tiny_rnn, tokens, capture=["rnn.hook_h"], edits={"rnn.hook_h": kick_at_step_3}
    )
    torch.testing.assert_close(e["rnn.hook_h"][:, :3], c["rnn.hook_h"][:, :3])
    assert (e["rnn.hook_h"][:, 4:] - c["rnn.hook_h"][:, 4:]).abs().max() > 1e-3
    identity, _ = interp.trace(tiny_rnn, tokens, edits={"rnn.hook_h": lambda h: h})
    assert torch.equal(identity, clean)


@pytest.mark.parametrize("cell", ["relu", "gru", "lstm"])
def test_rnn_cells_match_torch_reference(cell):
    """Our unrolled cells compute what torch's fused modules compute with the same weights."""
    from interp.models.rnn import HookedRNN, RNNSpec

    spec = RNNSpec(cell=cell, d_hidden=8, d_input=3, d_out=2)
    m = HookedRNN(spec)
    ref_cls = {
        "relu": lambda: torch.nn.RNN(3, 8, nonlinearity="relu", batch_first=True),
        "gru": lambda: torch.nn.GRU(3, 8, batch_first=True),
        "lstm": lambda: torch.nn.LSTM(3, 8, batch_first=True),
    }[cell]()
    with torch.no_grad():
        ref_cls.weight_ih_l0.copy_(m.rnn.W_ih)
        ref_cls.weight_hh_l0.copy_(m.rnn.W_hh)
        ref_cls.bias_ih_l0.copy_(m.rnn.b_ih)
        ref_cls.bias_hh_l0.copy_(m.rnn.b_hh)
    x = torch.randn(4, 7, 3)
    _, hs = m(x, return_hidden=True)
    ref, _ = ref_cls(x)
    torch.testing.assert_close(hs, ref, atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------ nnsight
def test_wrap_any_module_with_nnsight():
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    m = interp.wrap(net)
    assert m.backend == "nnsight"
    assert m.hook_names == [
        "0.hook_in",
        "0.hook_out",
        "1.hook_in",
        "1.hook_out",
        "2.hook_in",
        "2.hook_out",
    ]
    x = torch.randn(5, 4)
    out, acts = interp.trace(m, x, capture=["0.hook_out", "2.hook_in"])
    torch.testing.assert_close(out, net(x))
    torch.testing.assert_close(acts["0.hook_out"], net[0](x))
    torch.testing.assert_close(acts["2.hook_in"], torch.relu(net[0](x)))
    zeroed, _ = interp.trace(m, x, edits={"1.hook_out": torch.zeros_like})
    torch.testing.assert_close(zeroed, net[2].bias.expand(5, 3))
    same, _ = interp.trace(m, x, edits={"1.hook_out": lambda a: a})
    torch.testing.assert_close(same, out)
    with pytest.raises(KeyError, match="Did you mean"):
        interp.trace(m, x, capture=["3.hook_out"])


def test_wrap_rejects_non_modules():
    with pytest.raises(TypeError, match="nn.Module"):
        interp.wrap(lambda x: x)


H = "blocks.0.hook_resid_post"


@pytest.mark.parametrize(
    "bad, error, words",
    [
        (torch.rand(2, 5), TypeError, "takes token ids"),
        (torch.full((1, 4), 50), ValueError, r"must lie in \[0, 50\)"),
        (torch.full((1, 4), -1), ValueError, r"must lie in \[0, 50\)"),
        (torch.zeros(0, 4, dtype=torch.long), ValueError, "empty batch"),
        ([], ValueError, "empty list"),
    ],
)
def test_bad_inputs_are_named_before_the_forward(tiny_gpt, bad, error, words):
    with pytest.raises(error, match=words):
        interp.trace(tiny_gpt, bad, capture=[H])
    interp.trace(
        tiny_gpt, torch.full((1, 4), 49), capture=[H]
    )  # the last id of the vocabulary is fine


def test_rnn_inputs_are_checked_against_its_vocabulary(tiny_rnn):
    with pytest.raises(ValueError, match=r"\[0, 20\)"):
        interp.trace(tiny_rnn, torch.full((1, 3), 20), capture=["rnn.hook_h"])


@pytest.mark.parametrize(
    "edit, words",
    [(lambda a: a.double(), "dtype float64, expected float32"), (lambda a: 3, "returned int")],
)
def test_an_edit_returning_the_wrong_kind_of_value_is_named(tiny_gpt, tokens, edit, words):
    with pytest.raises(TypeError, match=words):
        interp.trace(tiny_gpt, tokens, edits={H: edit})


def test_a_spliced_sae_adds_hook_names_that_trace_takes(tiny_gpt, tokens):
    from interp.sae.model import SAE, SAEConfig
    from interp.sae.splice import spliced

    host = tiny_gpt.hook("resid_post", 0)
    base = tiny_gpt.hook_names
    with spliced(tiny_gpt, {host: SAE(SAEConfig(d_in=32, d_sae=48))}, error_term=True):
        names = tiny_gpt.hook_names
        added = [n for n in names if n not in base]
        assert added and all(n.startswith(f"{host}.hook_sae_") for n in added)
        assert [n for n in names if n in base] == base  # the model's own names keep their order
        _, acts = interp.trace(tiny_gpt, tokens, capture=added)
        assert set(acts) == set(added)
        with pytest.raises(KeyError, match="hook_sae_recons"):
            tiny_gpt.check_names([f"{host}.hook_sae_recon"])
    assert tiny_gpt.hook_names == base
