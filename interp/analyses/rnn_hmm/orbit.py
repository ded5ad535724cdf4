"""Emission fidelity and the noisy orbit: residency, regions, PCA geometry, the speed and
Jacobian spectra along it, and its noise sensitivity."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Float, Int

from interp.analyses.rnn_hmm.config import Config
from interp.analyses.rnn_hmm.model import BURN, jacobian_spectra, rollout
from interp.analyses.rnn_hmm.types import (
    Emission,
    NoiseSpread,
    Orbit,
    OrbitGeometry,
    OrbitJacobians,
    ResidencySummary,
)
from interp.data.rnn_hmm import (
    REGION_NAMES,
    HMMSpec,
    expected_statistics,
    fidelity,
    regions,
    residency,
    sample,
)
from interp.fields import ConfigError
from interp.methods.dynamics import (
    continuation_spread,
    orbit_geometry,
    residency_times,
    trajectory_growth,
)
from interp.methods.fixed_points import speed
from interp.models.hmm_rnn import sinkhorn_loss

if TYPE_CHECKING:
    from interp.models.hmm_rnn import HMMRNN
    from interp.tracing.model import Model

log = logging.getLogger(__name__)


def by_region(
    values: np.ndarray, reg: np.ndarray, stat: Callable[[np.ndarray], float]
) -> dict[str, float]:
    """``stat`` of ``values`` in each residency region (NaN where a region is empty)."""
    return {
        name: float(stat(values[reg == i])) if (reg == i).any() else float("nan")
        for i, name in enumerate(REGION_NAMES)
    }


def emission_fidelity(m: Model, hmm: HMMSpec, T: int, config: Config, s: int) -> Emission:
    """RNN outputs vs fresh HMM samples (and HMM vs HMM): frequencies, transition rows,
    switch rates, Sinkhorn divergence; the frequent outputs (> 10%) and exact statistics."""
    K = hmm.n_outputs
    _, hmm_y = sample(hmm, config.n_eval, T, seed=s + 1)
    _, hmm_y2 = sample(hmm, config.n_eval, T, seed=s + 2)
    y = rollout(m, config.n_eval, T, s + 3).outputs
    frequent = [int(k) for k in np.where(expected_statistics(hmm)["frequencies"] > 0.1)[0]]
    fid = fidelity(y, hmm_y, K, config.row_min_count, frequent)
    base = fidelity(hmm_y2, hmm_y, K, config.row_min_count, frequent)
    sk = sinkhorn_loss()
    ns = min(1000, config.n_eval)

    def one_hot(t: torch.Tensor) -> torch.Tensor:
        return F.one_hot(t[:ns], K).float()

    with torch.no_grad():
        d_rnn = float(sk(one_hot(y), one_hot(hmm_y)))
        d_base = float(sk(one_hot(hmm_y2), one_hot(hmm_y)))
    log.info(
        "fidelity: freq err %.3f, row err %.3f, switch %.4f vs %.4f; sinkhorn %.3f (HMM-HMM %.3f)",
        fid.freq_error,
        fid.row_error,
        fid.switch_rnn,
        fid.switch_hmm,
        d_rnn,
        d_base,
    )
    return Emission(
        fid=fid,
        base=base,
        hmm_y=hmm_y,
        frequent=frequent,
        d_rnn=d_rnn,
        d_base=d_base,
        exp=expected_statistics(hmm, among=frequent),
    )


def state_residency(
    mod: HMMRNN, H: Float[torch.Tensor, "n T d"], config: Config, seed: int
) -> tuple[Float[np.ndarray, "n T"], Int[np.ndarray, "n T"]]:
    """Residency time of every state of ``H`` (steps until the argmax output changes, mean over
    ``rt_samples`` fresh-noise continuations, capped at ``rt_max_steps``) and its region by the
    paper's rule (cluster also needs a top output probability > 0.8)."""
    flat = H.reshape(-1, H.shape[-1])
    rt, p_max = residency_times(
        mod.cell,
        mod.readout,
        flat,
        mod.hmm_spec.d_input,
        n_samples=config.rt_samples,
        max_steps=config.rt_max_steps,
        generator=torch.Generator().manual_seed(seed),
    )
    return rt.reshape(H.shape[:2]), regions(rt, p_max).reshape(H.shape[:2])


def _residency_summary(rt_b: np.ndarray, outputs: np.ndarray, rt_cap: int) -> ResidencySummary:
    """Median and capped share of the residency times, and their correlation with the path-only
    residency (steps until this trajectory's own output changes)."""
    path_rt = residency(outputs)[:, BURN:]
    ok = np.isfinite(path_rt)
    return ResidencySummary(
        median=float(np.median(rt_b)),
        frac_capped=float((rt_b >= rt_cap).mean()),
        corr_with_path_rt=float(np.corrcoef(rt_b[ok], path_rt[ok])[0, 1])
        if ok.sum() > 2
        else float("nan"),
    )


def long_orbit(m: Model, config: Config, s: int, frequent: list[int]) -> Orbit:
    """Long noisy runs: hidden states, argmax outputs, per-state residency and regions (after
    ``BURN`` steps: ``*_b``; ``reg`` is -1 during the burn-in), and the orbit's PCA geometry."""
    run = rollout(m, config.n_long, config.long_T, s + 4)
    Hl = run.hidden
    grow = trajectory_growth(Hl[:, BURN:])
    if grow["diverged"]:  # every measure below would describe the blow-up, not an orbit
        raise ConfigError(
            f"{m.model_id}: its noisy runs diverge over long_T={config.long_T} steps (mean "
            f"state norm x{grow['growth_per_step']:.4f} a step, largest "
            f"{grow['max_norm']:.3g}); the orbit, residency and fixed-point analysis needs a "
            "bounded orbit. Train it further, or analyse another checkpoint"
        )
    yl = run.logits.argmax(-1).numpy()  # the argmax output, as the paper
    rt_b, reg_b = state_residency(m.module, Hl[:, BURN:], config, s + 12)
    H_b, y_b = Hl.numpy()[:, BURN:], yl[:, BURN:]
    geo = OrbitGeometry.of(orbit_geometry(H_b, y_b, reg_b, frequent))
    region_frac = {name: float((reg_b == i).mean()) for i, name in enumerate(REGION_NAMES)}
    region_frac["unassigned"] = float((reg_b < 0).mean())
    log.info(
        "orbit: PC1 %.2f, purity %.3f, loop separation %.2f, regions %s",
        geo.pc1,
        geo.cluster_purity,
        geo.loop_separation,
        region_frac,
    )
    return Orbit(
        rt_cap=config.rt_max_steps,
        x=run.noise,
        H=Hl,
        H_b=H_b,
        y_b=y_b,
        reg=np.concatenate([np.full((len(yl), BURN), -1), reg_b], 1),
        reg_b=reg_b,
        rt_b=rt_b,
        growth=grow,
        geo=geo,
        region_frac=region_frac,
        rt_summary=_residency_summary(rt_b, yl, config.rt_max_steps),
    )


def orbit_speed_and_jacobians(
    mod: HMMRNN, orbit: Orbit, config: Config, gen: torch.Generator
) -> OrbitJacobians:
    """The no-input speed q(h) along the orbit and the Jacobian spectra of the step taken
    from 400 orbit states, by residency region."""
    Hl, xl = orbit.H, orbit.x
    flatH = Hl[:, BURN:].reshape(-1, Hl.shape[-1])

    def cell(h: torch.Tensor, xx: torch.Tensor | None) -> torch.Tensor:
        dtype = mod.W_hh.dtype
        return mod.cell(h.to(dtype), None if xx is None else xx.to(dtype)).to(h.dtype)

    with torch.no_grad():
        q_orbit = speed(cell, flatH, None).numpy()
    pick = torch.randint(0, len(flatH), (min(400, len(flatH)),), generator=gen)
    # Jacobian at h_t of the step it takes: F(h, x_{t+1})
    t_idx = pick % (config.long_T - BURN) + BURN
    b_idx = pick // (config.long_T - BURN)
    nxt = (t_idx + 1).clamp_max(config.long_T - 1)
    ev = jacobian_spectra(mod, Hl[b_idx, t_idx], xl[b_idx, nxt])
    lead = ev[:, 0]
    reg_s = orbit.reg[b_idx.numpy(), t_idx.numpy()]
    unstable = by_region(np.abs(lead) > 1, reg_s, np.mean)
    complex_lead = by_region(np.abs(lead.imag) > 1e-6, reg_s, np.mean)
    return OrbitJacobians(
        q=q_orbit,
        q_by_region=by_region(q_orbit, orbit.reg_b.reshape(-1), np.median),
        ev=ev,
        reg_s=reg_s,
        jac_by_region={
            name: {"frac_unstable": unstable[name], "frac_complex_leading": complex_lead[name]}
            for name in REGION_NAMES
        },
    )


def noise_sensitivity(
    mod: HMMRNN, orbit: Orbit, config: Config, s: int, rng: np.random.Generator
) -> NoiseSpread:
    """Spread of fresh-noise 5-step continuations from (up to 20) cluster vs transition
    states, in units of the orbit's PC1-2 spread."""
    scale = max(float(np.sqrt(orbit.geo.Z[:, :2].var(0).sum())), 1e-12)

    def spread(code: int) -> float:
        pts = np.argwhere(orbit.reg_b == code) + [0, BURN]
        pts = pts[rng.permutation(len(pts))][:20]
        g = torch.Generator().manual_seed(s + 6)
        states = orbit.H[pts[:, 0], pts[:, 1]]
        d_input = mod.hmm_spec.d_input
        return continuation_spread(mod.cell, states, d_input, config.noise_trials, generator=g)

    cluster = spread(2) / scale  # in this order: both draw from rng
    transition = spread(0) / scale
    return NoiseSpread(cluster=cluster, transition=transition)
