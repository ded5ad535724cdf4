"""Dynamics without input: fixed points found from orbit states, the collapse of no-input runs,
and the checks that the finder and the cell it uses are right."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import numpy as np
import torch

from interp.analyses.rnn_hmm.config import Config
from interp.analyses.rnn_hmm.model import BURN
from interp.analyses.rnn_hmm.types import Collapse, FixedPointSummary, NoInputDynamics, Orbit
from interp.methods.fixed_points import (
    FixedPoints,
    find_fixed_points,
    finder_recovery,
    planted_tanh_map,
)

if TYPE_CHECKING:
    from interp.models.hmm_rnn import HMMRNN


@torch.no_grad()
def collapse(mod_d: HMMRNN, init: torch.Tensor, steps: int = 300) -> Collapse:
    """Run the (float64) cell without input from ``init`` for ``steps`` steps: the spread and
    norm of the end states, the contraction per step over the last 50 steps (< 1: the state
    decays to 0), and the spectral radius at h = 0. The ReLU map is not differentiable there:
    its Jacobian depends on which units are active, so the one seen along the collapse (active
    set of its last step) and the all-active one (W_hh) are both reported."""
    h = init.double()
    norms = []
    for _ in range(steps):
        h = mod_d.cell(h, None)
        norms.append(h.norm(dim=-1))
    alive = norms[-51] > 1e-250
    rate = (
        float(((norms[-1][alive] / norms[-51][alive]) ** (1 / 50)).median()) if alive.any() else 0.0
    )
    act = (h @ mod_d.W_hh.T > 0).double()  # [n, H] active units at the last step
    J_path = act[:, :, None] * mod_d.W_hh[None]
    return Collapse(
        spread=float((h - h.mean(0)).norm(dim=-1).max()),
        norm=float(h.norm(dim=-1).max()),
        rate=rate,
        radius_path=float(torch.linalg.eigvals(J_path).abs().max(-1).values.median()),
        radius_all=float(torch.linalg.eigvals(mod_d.W_hh.detach()).abs().max()),
    )


def mark_kinks(fps: FixedPoints, W_hh: np.ndarray) -> list[int]:
    """Label ``"kink"`` the fixed points on a ReLU kink (some pre-activation ~ 0), in place;
    returns their indices."""
    kinks = []
    for i, p in enumerate(fps.points):
        pre = W_hh @ p
        if (np.abs(pre) <= 1e-9 * max(1.0, np.abs(p).max())).any():
            kinks.append(i)
    fps.stability = fps.stability.astype("<U16")
    fps.stability[kinks] = "kink"
    return kinks


@torch.no_grad()
def cell_gap(mod: HMMRNN, fps: FixedPoints, orbit: Orbit) -> float:
    """Largest relative gap between the cell used for fixed points and Jacobians and the hooked
    forward: one step from each fixed point (zero input), and along the orbit."""
    fixed_gap = 0.0
    if len(fps):
        P = torch.from_numpy(fps.points).float()
        zeros = torch.zeros(len(P), 1, mod.hmm_spec.d_input)
        out1 = mod(zeros, h0=P, return_hidden=True)[1][:, 0]
        fixed_gap = float((out1 - P).norm(dim=-1).max() / max(1.0, float(P.norm(dim=-1).max())))
    Hl, xl = orbit.H, orbit.x
    step_gap = float(
        (mod.cell(Hl[:, :-1], xl[:, 1:]) - Hl[:, 1:]).abs().max() / max(1.0, float(Hl.abs().max()))
    )
    return max(fixed_gap, step_gap)


def summarise(fps: FixedPoints, kinks: list[int], col: Collapse) -> FixedPointSummary:
    """``metrics["no_input_fixed_points"]``: the points, their stability and the collapse."""
    return FixedPointSummary(
        n_points=len(fps),
        n_fixed=int(fps.is_fixed.sum()),
        stability=fps.stability.tolist(),
        norms=np.linalg.norm(fps.points, axis=1).round(6).tolist(),
        max_modulus=fps.max_modulus.round(4).tolist(),
        q=fps.q.tolist(),
        meta=fps.meta,
        kink_points=kinks,
        collapse_rate=col.rate,
        zero_point_radius_along_collapse=col.radius_path,
        zero_point_radius_all_active=col.radius_all,
        top_eigs=[[[float(v.real), float(v.imag)] for v in ev_i[:6]] for ev_i in fps.eigenvalues],
    )


def no_input_dynamics(
    mod: HMMRNN, orbit: Orbit, config: Config, gen: torch.Generator
) -> NoInputDynamics:
    """Fixed points without input (from orbit states), the collapse of no-input runs, the
    check that the cell reproduces the hooked forward, and the finder (same settings) on a map
    whose fixed points are known."""
    Hl = orbit.H
    flatH = Hl[:, BURN:].reshape(-1, Hl.shape[-1])
    init = flatH[torch.randint(0, len(flatH), (config.n_fixed_init,), generator=gen)].double()
    mod_d = copy.deepcopy(mod).double()
    fps = find_fixed_points(
        lambda h, xx: mod_d.cell(h, xx), init, None, max_iters=config.fixed_iters
    )
    col = collapse(mod_d, init)
    kinks = mark_kinks(fps, mod_d.W_hh.detach().numpy())
    gap = cell_gap(mod, fps, orbit)
    planted = planted_tanh_map(d=3, gain=2.0, seed=config.seed)
    return NoInputDynamics(
        fps=fps,
        collapse_spread=col.spread,
        collapse_norm=col.norm,
        fixed_gap=gap,
        finder_check=finder_recovery(
            planted.F, planted, max_iters=config.fixed_iters, seed=config.seed
        ),
        summary=summarise(fps, kinks, col),
    )
