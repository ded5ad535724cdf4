"""Residency times, kick-neuron selection and continuation spread against planted answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interp.methods.dynamics import (
    cluster_populations,
    continuation_spread,
    kick_neurons,
    pre_switch_activity,
    residency_times,
)


def _readout(h):
    """Two outputs: output 1 when the first coordinate is positive."""
    return torch.stack([-h[:, 0], h[:, 0]], -1)


def test_residency_of_a_deterministic_countdown_is_exact():
    # h -> h - 1 (noise ignored): from h0 = c + 0.5 the output flips after ceil(c + 0.5) steps
    def cell(h, x):
        return h - 1.0

    H = torch.tensor([[0.5], [2.5], [7.5], [100.0]])
    rt, p = residency_times(cell, _readout, H, d_input=2, n_samples=5, max_steps=50)
    np.testing.assert_array_equal(
        rt, [1.0, 3.0, 8.0, 50.0]
    )  # capped at max_steps when it never flips
    assert p.shape == (4,) and (p > 0.5).all()


def test_residency_averages_fresh_noise_continuations():
    # h -> x (the state is the fresh noise): every step flips the output with probability 1/2, so
    # the time to the first change is geometric with mean 2 (cap 50 is never reached in practice)
    def cell(h, x):
        return x[:, :1]

    H = torch.ones(200, 1)
    g = torch.Generator().manual_seed(0)
    rt, _ = residency_times(
        cell, _readout, H, d_input=1, n_samples=20, max_steps=50, generator=g, chunk=64
    )
    assert abs(rt.mean() - 2.0) < 0.1
    assert (
        len(np.unique(rt)) > 5
    )  # the continuations differ: fresh noise per continuation and state
    # a different stream gives different values, the same stream the same
    rt2, _ = residency_times(
        cell, _readout, H, d_input=1, generator=torch.Generator().manual_seed(0), chunk=64
    )
    np.testing.assert_array_equal(rt, rt2)


def test_residency_rejects_bad_shapes():
    with pytest.raises(ValueError, match="H must be"):
        residency_times(lambda h, x: h, _readout, torch.zeros(3), d_input=1)
    with pytest.raises(ValueError, match="n_samples"):
        residency_times(lambda h, x: h, _readout, torch.zeros(3, 1), d_input=1, n_samples=0)


def _planted_circuit():
    """Units 0-3: population of output 0; 4-7: population of output 2; unit 8 projects onto
    population 2's rows (a kick into 2), unit 9 onto population 0's; 10, 11 bystanders."""
    y = np.array([[0] * 12 + [2] * 12] * 6)
    H = np.zeros(y.shape + (12,))
    H[..., :4] = (y == 0)[..., None] * 1.0
    H[..., 4:8] = (y == 2)[..., None] * 1.0
    H[..., 10:] = 0.3
    W = np.zeros((12, 12))
    W[4:8, 4:8] = 2.0  # self-excitation of population 2: larger than the kick, but it is not one
    W[4:8, 8] = 1.0
    W[:4, 9] = 1.0
    W[4:8, 10] = 0.2
    return H, y, W


def test_kick_neurons_are_the_top_presynaptic_units_of_the_destination_rows():
    H, y, W = _planted_circuit()
    pop0, pop2 = cluster_populations(H, y, np.ones(y.shape, bool), 0, 2, size=4)
    assert sorted(pop0.tolist()) == [0, 1, 2, 3] and sorted(pop2.tolist()) == [4, 5, 6, 7]
    into2, score = kick_neurons(W, pop2, 2)
    assert into2 == [8, 10] and np.isnan(score[4:8]).all()
    assert kick_neurons(W, pop0, 1)[0] == [9]
    # a wrong population (the source instead of the destination) does not find the planted kick
    assert 8 not in kick_neurons(W, pop0, 2)[0]


def test_pre_switch_activity_ranks_a_unit_that_fires_before_switches():
    H, y, _ = _planted_circuit()
    H = H.copy()
    H[:, 9:12, 11] = 1.0  # fires in the 3 steps before the 0 -> 2 switch at t = 12
    base0, base2 = H[y == 0].mean(0), H[y == 2].mean(0)
    score, n = pre_switch_activity(H, y, 0, 2, base0, base2)
    assert n == 6 and int(np.argmax(score)) == 11


def test_continuation_spread_is_zero_without_noise_and_grows_with_it():
    H0 = torch.ones(3, 2)
    assert continuation_spread(lambda h, x: h, H0, 2, 8) == 0.0
    loud = continuation_spread(
        lambda h, x: h + 2 * x, H0, 2, 8, generator=torch.Generator().manual_seed(0)
    )
    quiet = continuation_spread(
        lambda h, x: h + 0.1 * x, H0, 2, 8, generator=torch.Generator().manual_seed(0)
    )
    assert loud > 10 * quiet > 0
    assert np.isnan(continuation_spread(lambda h, x: h, torch.zeros(0, 2), 2, 8))
