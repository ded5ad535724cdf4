"""``run(config)``: the rnn_hmm analysis as a list of steps, then its criteria and metrics
(:mod:`.criteria`), arrays and figures."""

from __future__ import annotations

import numpy as np
import torch

import interp
from interp.analyses import register
from interp.analyses.rnn_hmm.config import Config
from interp.analyses.rnn_hmm.criteria import add_criteria, metrics
from interp.analyses.rnn_hmm.fixed import no_input_dynamics
from interp.analyses.rnn_hmm.kick import kick_neuron_ablation
from interp.analyses.rnn_hmm.model import check_model, resolve_hmm
from interp.analyses.rnn_hmm.orbit import (
    emission_fidelity,
    long_orbit,
    noise_sensitivity,
    orbit_speed_and_jacobians,
)
from interp.analyses.rnn_hmm.training import over_training, seed_fidelity
from interp.analyses.rnn_hmm.types import Measured
from interp.results import Result
from interp.utils import seed_everything


@register(
    "rnn_hmm",
    Config,
    title="RNNs emulating HMMs: orbits, fixed points, kick neurons",
    paper="Torre et al. 2025 (EliaTorre/hmmrnn)",
    figure_order=(
        "orbit",
        "transition_matrices",
        "fixed_points",
        "speed",
        "jacobian_spectra",
        "residency",
        "ablation",
        "training",
    ),
)
def run(config: Config) -> Result:
    """Emission fidelity, orbit geometry, fixed points and kick neurons of an RNN trained on an
    HMM."""
    seed_everything(config.seed)
    hmm, T, rc = resolve_hmm(config)
    m = interp.load_model(config.model, device=config.device)
    check_model(m)
    mod = m.module
    K = hmm.n_outputs
    if mod.readout.out_features != K:
        raise ValueError(
            f"{config.model} emits {mod.readout.out_features} outputs; the HMM has {K}"
        )
    s = config.seed * 1000
    em = emission_fidelity(m, hmm, T, config, s)
    orbit = long_orbit(m, config, s, em.frequent)
    # one stream, in this order: fixed-point inits, Jacobian picks, snapshots
    gen = torch.Generator().manual_seed(s + 5)
    dyn = no_input_dynamics(mod, orbit, config, gen)
    jac = orbit_speed_and_jacobians(mod, orbit, config, gen)
    # one stream: noise-sensitivity states, then random ablation triples
    rng = np.random.default_rng(s + 7)
    noise = noise_sensitivity(mod, orbit, config, s, rng)
    kick, abl = kick_neuron_ablation(m, orbit, em.frequent, config, T, s, rng)
    seeds = seed_fidelity(config, em, K, T, s)
    training = over_training(mod, rc, em.hmm_y, em.frequent, config, K, T, s, gen)
    d = Measured(em, orbit, dyn, jac, noise, kick, abl, seeds, training)
    result = Result("rnn_hmm")
    add_criteria(result, config, d, K)
    result.metrics.update(metrics(m, hmm, T, d))
    add_arrays_and_figures(result, d)
    return result


def add_arrays_and_figures(result: Result, d: Measured) -> None:
    """The orbit, fixed-point and spectrum arrays, and the figures."""
    # plotly loads in about a second: imported here, so `interp list` (which imports every
    # analysis) does not pay for it
    from interp.plotting import rnn_hmm as plots

    orbit, fps, jac, fid = d.orbit, d.dyn.fps, d.jac, d.em.fid
    geo, Z = orbit.geo, orbit.geo.Z
    y_flat, rt_flat = orbit.y_b.reshape(-1), orbit.rt_b.reshape(-1)
    reg_flat = orbit.reg_b.reshape(-1)
    result.arrays.update(
        {
            "orbit_pcs": Z[:, :3].astype(np.float32),
            "orbit_outputs": y_flat.astype(np.int8),
            "orbit_residency": rt_flat.astype(np.float32),
            "orbit_regions": reg_flat.astype(np.int8),
            "orbit_speed": jac.q.astype(np.float32),
            "fixed_points": fps.points,
            "fixed_point_eigenvalues": fps.eigenvalues,
            "orbit_jacobian_eigenvalues": jac.ev,
            "transition_matrix_rnn": fid.P_rnn,
            "transition_matrix_hmm": fid.P_hmm,
        }
    )
    fp_pcs = (fps.points - geo.mu) @ geo.components.T if len(fps) else np.zeros((0, 3))
    result.figures.update(
        {
            "orbit": plots.orbit_figure(Z, y_flat, rt_flat, geo.switch_paths, regions=reg_flat),
            "transition_matrices": plots.transition_matrices_figure(fid.P_rnn, fid.P_hmm),
            "fixed_points": plots.fixed_points_figure(Z, fp_pcs, fps.stability.tolist()),
            "speed": plots.speed_figure(Z, jac.q),
            "jacobian_spectra": plots.spectra_figure(jac.ev, jac.reg_s),
            "residency": plots.residency_figure(rt_flat, cap=orbit.rt_cap),
        }
    )
    if d.abl:
        result.figures["ablation"] = plots.ablation_figure(d.abl.as_json())
    if d.training:
        result.figures["training"] = plots.training_figure([r.as_json() for r in d.training])
