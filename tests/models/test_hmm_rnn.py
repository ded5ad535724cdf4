"""The noise-driven RNN that emulates an HMM (interp/models/hmm_rnn.py)."""

from __future__ import annotations

import torch

from interp.models.hmm_rnn import HMMRNN, HMMRNNSpec, build_hmm_rnn, sinkhorn_loss


def test_cell_is_the_hooked_forward_step():
    m = HMMRNN(HMMRNNSpec(d_hidden=8, d_input=3, d_out=2))
    x = m.noise(4, 5, generator=torch.Generator().manual_seed(0))
    _, hs = m(x, return_hidden=True)
    torch.testing.assert_close(m.cell(hs[:, 1], x[:, 2]), hs[:, 2])
    torch.testing.assert_close(m.cell(torch.zeros(4, 8), x[:, 0]), hs[:, 0])
    assert m.W_hh is m.rnn.W_hh and m.W_out.shape == (2, 8)


def test_outputs_are_one_hot_with_a_straight_through_gradient():
    m = build_hmm_rnn({"d_hidden": 8, "d_input": 3, "d_out": 3})
    x = m.noise(16, 6, generator=torch.Generator().manual_seed(1))
    y = m.sample_outputs(x, generator=torch.Generator().manual_seed(2))
    assert y.shape == (16, 6, 3)
    assert torch.equal(y.detach().sum(-1), torch.ones(16, 6)) and set(
        y.detach().unique().tolist()
    ) <= {0.0, 1.0}
    y[..., 0].mean().backward()  # the soft sample carries the gradient to the weights
    assert m.W_out.grad is not None and m.W_out.grad.abs().sum() > 0


def test_the_sinkhorn_divergence_separates_batches():
    loss = sinkhorn_loss()
    a = torch.nn.functional.one_hot(torch.randint(0, 3, (64, 5)), 3).float()
    b = torch.nn.functional.one_hot(torch.zeros(64, 5, dtype=torch.long), 3).float()
    assert float(loss(a, a)) < 1e-4 < float(loss(a, b))
