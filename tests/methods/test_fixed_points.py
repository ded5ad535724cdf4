"""The fixed-point finder against systems with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interp.methods.fixed_points import (
    FixedPoints,
    eigenvalues_by_modulus,
    find_fixed_points,
    finder_recovery,
    jacobians,
    planted_tanh_map,
    speed,
    stability_labels,
)


def _grid(lo, hi, n, d, seed=0):
    g = torch.Generator().manual_seed(seed)
    return lo + (hi - lo) * torch.rand(n, d, generator=g, dtype=torch.float64)


def test_linear_map_single_fixed_point_with_known_eigenvalues():
    g = torch.Generator().manual_seed(1)
    Q, _ = torch.linalg.qr(torch.randn(4, 4, generator=g, dtype=torch.float64))
    lam = torch.tensor([1.5, 0.9, -0.5, 0.2], dtype=torch.float64)
    A = Q @ torch.diag(lam) @ Q.T
    b = torch.tensor([0.3, -0.2, 0.1, 0.5], dtype=torch.float64)

    def F(h, x):
        return h @ A.T + b

    fps = find_fixed_points(F, _grid(-3, 3, 64, 4), dedup_tol=1e-4, max_iters=300)
    expected = torch.linalg.solve(torch.eye(4, dtype=torch.float64) - A, b).numpy()
    assert len(fps) == 1
    assert np.allclose(fps.points[0], expected, atol=1e-6)
    assert fps.counts[0] == 64 and fps.is_fixed.all()
    assert np.allclose(np.sort(np.abs(fps.eigenvalues[0])), np.sort(np.abs(lam.numpy())), atol=1e-8)
    assert np.allclose(fps.jacobians[0], A.numpy(), atol=1e-10)
    assert list(fps.stability) == ["saddle"]


def test_stable_linear_map_is_stable_and_unique():
    A = torch.tensor([[0.5, 0.2], [-0.2, 0.5]], dtype=torch.float64)  # eigenvalues 0.5 +- 0.2i

    def F(h, x):
        return h @ A.T + x

    x = torch.tensor([1.0, 0.0], dtype=torch.float64)
    fps = find_fixed_points(F, _grid(-5, 5, 40, 2), x, max_iters=300)
    assert len(fps) == 1 and fps.stability[0] == "stable"
    assert np.allclose(fps.points[0], np.linalg.solve(np.eye(2) - A.numpy(), x.numpy()), atol=1e-7)
    ev = np.sort_complex(fps.eigenvalues[0])
    assert np.allclose(ev, [0.5 - 0.2j, 0.5 + 0.2j], atol=1e-8)


def test_two_unit_system_all_fixed_points_and_no_extras():
    # F(h) = h + 0.1 * (h1 - h1^3, h1 - h2): fixed points (-1,-1), (0,0), (1,1).
    # Jacobian [[1 + 0.1(1 - 3 h1^2), 0], [0.1, 0.9]]: eigenvalues {1.1, 0.9} at 0 (saddle),
    # {0.8, 0.9} at +-1 (stable).
    def F(h, x):
        h1, h2 = h[:, 0], h[:, 1]
        return h + 0.1 * torch.stack([h1 - h1**3, h1 - h2], -1)

    fps = find_fixed_points(F, _grid(-2, 2, 200, 2, seed=3))
    order = np.argsort(fps.points[:, 0])
    assert len(fps) == 3, fps.points
    assert np.allclose(fps.points[order], [[-1, -1], [0, 0], [1, 1]], atol=1e-6)
    assert list(fps.stability[order]) == ["stable", "saddle", "stable"]
    want = {0: [1.1, 0.9], 1: [0.9, 0.8]}
    for i, p in zip(order, fps.points[order], strict=True):
        ev = np.sort(fps.eigenvalues[i].real)[::-1]
        assert np.allclose(ev, want[0] if abs(p[0]) < 0.5 else want[1], atol=1e-8)
        assert np.allclose(fps.eigenvalues[i].imag, 0, atol=1e-10)
    assert fps.counts.sum() <= 200 and (fps.q <= fps.fixed_tol).all()


def test_relu_rnn_without_input_has_fixed_point_at_zero():
    from interp.models.hmm_rnn import HMMRNN, HMMRNNSpec

    m = HMMRNN(HMMRNNSpec(d_hidden=12, d_input=3, init_seed=0))
    with torch.no_grad():
        m.rnn.W_hh.mul_(0.5)  # contracting: zero is the only fixed point
    fps = find_fixed_points(lambda h, x: m.cell(h, x), torch.rand(30, 12) * 2, max_iters=500)
    assert len(fps) == 1 and np.abs(fps.points[0]).max() < 1e-4
    assert fps.stability[0] == "stable"


def test_slow_points_outliers_and_io(tmp_path):
    # F(h) = h + 0.01 + h^2 has no fixed point: q >= 5e-5 everywhere, minimum at h = 0.
    def F(h, x):
        return h + 0.01 + h**2

    fps = find_fixed_points(
        F,
        _grid(-1, 1, 20, 1),
        slow_tol=1e-4,
        fixed_tol=1e-10,
        max_iters=400,
        lr=0.05,
        dedup_tol=0.02,
    )
    assert len(fps) == 1 and not fps.is_fixed.any()
    assert abs(fps.points[0, 0]) < 1e-2 and abs(fps.q[0] - 5e-5) < 1e-8
    none = find_fixed_points(F, _grid(-1, 1, 20, 1), slow_tol=1e-6, max_iters=200)
    assert len(none) == 0

    # a map whose only fixed point lies far outside the initial cloud: removed as an outlier
    far = find_fixed_points(lambda h, x: 0.5 * h + 500.0, _grid(-1, 1, 10, 2), outlier_scale=10)
    assert len(far) == 0 and far.meta["n_outliers"] == 10

    def G(h, x):
        h1, h2 = h[:, 0], h[:, 1]
        return h + 0.1 * torch.stack([h1 - h1**3, h1 - h2], -1)

    fps = find_fixed_points(G, _grid(-2, 2, 50, 2))
    path = fps.save(tmp_path / "fps.npz")
    back = FixedPoints.load(path)
    assert np.array_equal(back.points, fps.points) and np.array_equal(
        back.eigenvalues, fps.eigenvalues
    )
    assert list(back.stability) == list(fps.stability) and back.meta == fps.meta
    one = fps[0]
    assert len(one) == 1 and np.array_equal(one.points[0], fps.points[0])
    assert len(fps[fps.stability == "stable"]) == 2


def test_helpers_and_errors():
    h = torch.tensor([[1.0, 2.0]])
    assert torch.allclose(speed(lambda h, x: 2 * h, h), torch.tensor([2.5]))
    J = jacobians(lambda h, x: h @ torch.tensor([[1.0, 2.0], [3.0, 4.0]]).T, torch.zeros(3, 2))
    assert J.shape == (3, 2, 2) and torch.allclose(J[1], torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    assert stability_labels(np.array([[0.5, 0.2], [1.2, 0.3], [2.0, 1.5], [1.0, 0.1]])) == [
        "stable",
        "saddle",
        "unstable",
        "marginal",
    ]
    with pytest.raises(ValueError, match="h0 must be"):
        find_fixed_points(lambda h, x: h, torch.zeros(3))
    with pytest.raises(ValueError, match="same shape"):
        find_fixed_points(lambda h, x: h[:, :1], torch.zeros(3, 2))


def test_eigenvalues_by_modulus_of_known_matrices():
    rot = torch.tensor([[0.0, -2.0], [2.0, 0.0]])  # eigenvalues +-2i
    diag = torch.diag(torch.tensor([0.1, -3.0]))
    ev = eigenvalues_by_modulus(torch.stack([rot, diag]))
    assert ev.dtype == np.complex128 and ev.shape == (2, 2)
    np.testing.assert_allclose(np.abs(ev[0]), [2.0, 2.0])
    np.testing.assert_allclose(ev[1], [-3.0, 0.1])


def test_planted_map_has_the_fixed_points_it_claims():
    p = planted_tanh_map(d=3, gain=2.0, seed=1)
    h = torch.from_numpy(p.points)
    assert len(p.points) == 27
    assert torch.allclose(p.F(h), h, atol=1e-12)  # each listed point is fixed
    J = jacobians(p.F, h)
    np.testing.assert_allclose(eigenvalues_by_modulus(J), p.eigenvalues, atol=1e-10)
    assert p.stability.count("stable") == 8 and p.stability.count("unstable") == 1
    with pytest.raises(ValueError, match="gain"):
        planted_tanh_map(gain=0.9)


def test_finder_recovers_the_planted_fixed_points():
    p = planted_tanh_map(d=3, gain=2.0, seed=0)
    out = finder_recovery(p.F, p, max_iters=500)
    assert out["n_found"] == out["n_known"] == 27
    assert out["point_error"] < 1e-8 and out["eig_error"] < 1e-8 and out["label_mismatches"] == 0


def test_finder_recovery_fails_for_a_broken_finder_or_a_wrong_map():
    p = planted_tanh_map(d=2, gain=2.0, seed=0)

    def no_descent(F, h0, x, **kw):  # reports its starting points as fixed
        fps = find_fixed_points(
            F, h0, x, max_iters=1, newton_steps=0, slow_tol=np.inf, dedup_tol=1e-3
        )
        fps.q[:] = 0.0
        return fps

    broken = finder_recovery(p.F, p, no_descent)
    assert broken["point_error"] > 1e-2
    lost = finder_recovery(
        p.F, p, lambda F, h0, x, **kw: find_fixed_points(F, h0[:3], x)
    )  # too few starts
    assert lost["point_error"] > 1e-2 and lost["label_mismatches"] > 0
    wrong = finder_recovery(planted_tanh_map(d=2, gain=2.3, seed=0).F, p, max_iters=500)
    assert wrong["point_error"] > 1e-3 and wrong["eig_error"] > 1e-3
    empty = finder_recovery(lambda h, x: h + 1.0, p, max_iters=50)  # no fixed point at all
    assert empty["point_error"] == np.inf and empty["n_found"] == 0
