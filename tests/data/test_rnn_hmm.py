"""HMM specs, sampler, forward filter and sequence statistics."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from interp.data.rnn_hmm import (
    HMMSpec,
    cyclic,
    expected_statistics,
    forward_filter,
    fully_connected,
    linear_chain,
    make_hmm,
    output_frequencies,
    output_transitions,
    regions,
    residency,
    sample,
    switch_rate,
)


@pytest.mark.parametrize("M", [2, 3, 4, 5])
def test_linear_chain_matches_the_paper(M):
    h = linear_chain(M)
    A, B = np.asarray(h.transition), np.asarray(h.emission)
    q = 0.05 ** (1 / (M - 1))
    assert np.allclose(A.sum(1), 1) and np.allclose(B.sum(1), 1)
    assert np.isclose(A[0, 0], 1 - q) and np.isclose(A[0, 1], q)
    if M > 2:
        assert np.isclose(A[1, 1], 1 - 2 * q)
    assert np.allclose(B[0], [0.99, 0.01, 0]) and np.allclose(B[-1], [0, 0.01, 0.99])
    assert h.n_states == M and h.n_outputs == 3


def test_other_families():
    fc, cy = fully_connected(), cyclic()
    assert np.allclose(np.diag(fc.transition), 0.95) and np.allclose(np.diag(fc.emission), 0.98)
    assert (
        cy.n_states == 4
        and np.isclose(cy.transition[0][1], 0.025)
        and np.isclose(cy.transition[0][3], 0.025)
    )
    assert make_hmm("cyclic").name == "cyclic" and make_hmm("chain", 3).n_states == 3
    with pytest.raises(ValueError, match="unknown HMM kind"):
        make_hmm("star")


def test_bad_specs_give_clear_errors():
    with pytest.raises(ValueError, match="rows must sum to 1"):
        HMMSpec(transition=[[0.5, 0.4], [0.5, 0.5]], emission=[[1, 0], [0, 1]])
    with pytest.raises(ValueError, match="emission must be"):
        HMMSpec(transition=[[1, 0], [0, 1]], emission=[[1, 0], [0, 1], [0.5, 0.5]])
    with pytest.raises(ValueError, match="square"):
        HMMSpec(transition=[[0.5, 0.5]], emission=[[1.0]])
    with pytest.raises(ValueError, match="negative"):
        HMMSpec(transition=[[1.5, -0.5], [0, 1]], emission=[[1, 0], [0, 1]])
    with pytest.raises(ValueError, match="start must have"):
        HMMSpec(transition=[[1, 0], [0, 1]], emission=[[1, 0], [0, 1]], start=[1.0])
    with pytest.raises(ValueError, match="emission rows"):
        HMMSpec(transition=[[1, 0], [0, 1]], emission=[[0.7, 0], [0, 1]])
    with pytest.raises(ValueError, match="at least 2"):
        linear_chain(1)


@pytest.mark.parametrize(
    "hmm", [linear_chain(2), linear_chain(4), cyclic()], ids=["chain2", "chain4", "cyclic"]
)
def test_sampler_matches_exact_statistics(hmm):
    states, obs = sample(hmm, 4000, 60, seed=1)
    assert obs.shape == (4000, 60) and states.max() < hmm.n_states and obs.max() < hmm.n_outputs
    exp = expected_statistics(hmm)
    assert exp["stationary_error"] < 1e-12
    assert np.abs(output_frequencies(obs, 3) - exp["frequencies"]).max() < 0.02
    P, rows = output_transitions(obs, 3)
    ok = rows > 2000
    assert np.abs(P - exp["transitions"])[ok].max() < 0.02
    assert abs(switch_rate(obs) - float(exp["switch_rate"])) < 0.004
    frequent = [0, 2] if hmm.name.startswith("chain") else [0, 1, 2]
    exp_f = expected_statistics(hmm, among=frequent)
    assert abs(switch_rate(obs, among=frequent) - float(exp_f["switch_rate_among"])) < 0.004
    # state transitions too
    A = np.asarray(hmm.transition)
    Ps, rs = output_transitions(states, hmm.n_states)
    assert np.abs(Ps - A)[rs > 2000].max() < 0.01
    # seeded
    assert torch.equal(sample(hmm, 10, 5, seed=3)[1], sample(hmm, 10, 5, seed=3)[1])
    assert not torch.equal(sample(hmm, 50, 20, seed=3)[1], sample(hmm, 50, 20, seed=4)[1])


def test_forward_filter_matches_brute_force():
    hmm = HMMSpec(
        transition=[[0.8, 0.2], [0.3, 0.7]],
        emission=[[0.6, 0.3, 0.1], [0.1, 0.2, 0.7]],
        start=[0.4, 0.6],
    )
    A, B, s0 = (np.asarray(hmm.transition), np.asarray(hmm.emission), np.asarray(hmm.start))
    obs = torch.tensor([[0, 2, 2, 1], [1, 1, 0, 2]])
    beliefs, ll = forward_filter(hmm, obs)
    assert torch.allclose(beliefs.sum(-1), torch.ones(2, 4, dtype=torch.float64))
    for n in range(2):
        o = obs[n].tolist()
        total, last = 0.0, np.zeros(2)
        for path in itertools.product(range(2), repeat=4):
            p = s0[path[0]] * B[path[0], o[0]]
            for t in range(1, 4):
                p *= A[path[t - 1], path[t]] * B[path[t], o[t]]
            total += p
            last[path[-1]] += p
        assert np.isclose(ll[n].item(), np.log(total))
        assert np.allclose(beliefs[n, -1].numpy(), last / total)


def test_statistics_helpers():
    o = torch.tensor([[0, 0, 2, 2, 0]])
    assert np.allclose(output_frequencies(o, 3), [0.6, 0, 0.4])
    P, rows = output_transitions(o, 3)
    assert rows.tolist() == [2, 0, 2] and np.allclose(P[0], [0.5, 0, 0.5]) and np.isnan(P[1]).all()
    assert switch_rate(o) == 0.5
    assert switch_rate(torch.tensor([[0, 1, 2, 2, 0]]), among=[0, 2]) == 0.5
    exp = expected_statistics(linear_chain(2), among=[0, 2])
    assert 0.045 < float(exp["switch_rate_among"]) < 0.055 < float(exp["switch_rate"])


def test_residency_and_regions():
    y = np.array([[0, 0, 0, 2, 2, 0]])
    rt = residency(y)
    assert rt[0, :5].tolist() == [3, 2, 1, 2, 1] and np.isnan(rt[0, 5])
    assert regions(np.array([1.0, 2, 8, 9, np.nan])).tolist() == [0, 1, 1, 2, -1]
    # the paper's cluster rule: a slow state with an uncertain output is in no region
    assert regions(np.array([9.0, 9.0, 1.0]), np.array([0.9, 0.7, 0.5])).tolist() == [2, -1, 0]


def test_fidelity_of_a_sample_against_itself_is_perfect():
    from interp.data.rnn_hmm import fidelity

    _, y = sample(linear_chain(2), 200, 30, seed=0)
    f = fidelity(y, y, 3, row_min=10, frequent=[0, 2])
    assert f.freq_error == 0 and f.switch_error == 0 and f.row_error == 0
    np.testing.assert_array_equal(f.P_rnn, f.P_hmm)
