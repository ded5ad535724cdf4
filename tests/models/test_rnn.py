"""Our hooked RNNs (interp/models/rnn.py): the spec's checks, token or vector input, the
initial state, and seeded weights. Cells against torch's kernels: tests/tracing/test_trace.py."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from interp.models.rnn import HookedRNN, RNNSpec, build_rnn


def test_the_spec_needs_exactly_one_kind_of_input():
    with pytest.raises(ValidationError, match="exactly one of d_vocab"):
        RNNSpec(d_hidden=4)
    with pytest.raises(ValidationError, match="exactly one of d_vocab"):
        RNNSpec(d_hidden=4, d_vocab=5, d_input=3)
    with pytest.raises(ValidationError, match="d_out is required"):
        RNNSpec(d_hidden=4, d_input=3)
    assert RNNSpec(d_hidden=4, d_vocab=5).d_out == 5


@pytest.mark.parametrize("cell", ["tanh", "relu", "gru", "lstm"])
def test_every_cell_has_its_hooks_and_shapes(cell):
    m = build_rnn({"cell": cell, "d_hidden": 6, "d_vocab": 9})
    x = torch.randint(0, 9, (2, 5))
    logits, hs = m(x, return_hidden=True)
    assert logits.shape == (2, 5, 9) and hs.shape == (2, 5, 6)
    names = set(m.hook_dict)
    assert {"hook_embed", "rnn.hook_h", "hook_logits"} <= names
    assert ("rnn.hook_c" in names) == (cell == "lstm")
    assert ("rnn.hook_gates" in names) == (cell in ("gru", "lstm"))
    assert m.hook_dict["rnn.hook_h"].per_step and not getattr(
        m.hook_dict["hook_embed"], "per_step", False
    )


def test_vector_input_initial_state_and_seeds():
    m = HookedRNN(RNNSpec(cell="tanh", d_hidden=4, d_input=3, d_out=2, init_seed=1))
    x = torch.randn(2, 6, 3)
    assert m(x).shape == (2, 6, 2)
    h0 = torch.ones(2, 4)
    _, from_zero = m(x, return_hidden=True)
    _, from_h0 = m(x, h0=h0, return_hidden=True)
    assert not torch.equal(from_zero[:, 0], from_h0[:, 0])
    with pytest.raises(ValueError, match=r"expected input \[batch, time, 3\]"):
        m(torch.randn(2, 6, 4))
    same = HookedRNN(RNNSpec(cell="tanh", d_hidden=4, d_input=3, d_out=2, init_seed=1))
    other = HookedRNN(RNNSpec(cell="tanh", d_hidden=4, d_input=3, d_out=2, init_seed=2))
    assert torch.equal(m(x), same(x)) and not torch.equal(m(x), other(x))
    with pytest.raises(TypeError, match="token ids"):
        build_rnn({"d_hidden": 4, "d_vocab": 5})(torch.zeros(1, 3))
