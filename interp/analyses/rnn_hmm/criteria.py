"""The metrics of an rnn_hmm run and its sanity and claim criteria (the names and keys saved runs
and the dashboard read)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from interp.analyses.rnn_hmm.config import Config
from interp.analyses.rnn_hmm.types import Measured
from interp.data.rnn_hmm import HMMSpec, output_frequencies, output_transitions, switch_rate
from interp.results import Result

if TYPE_CHECKING:
    from interp.tracing.model import Model


def add_fidelity_claims(result: Result, config: Config, d: Measured) -> None:
    """The RNN's outputs follow the HMM's, and every trained seed does."""
    fid, frequent = d.em.fid, d.em.frequent
    add = result.add_criterion
    add(
        "transition_rows_match",
        fid.row_error,
        "<=",
        config.row_tol,
        kind="claim",
        description="max |P_rnn - P_hmm| over output-transition rows with >= "
        f"{config.row_min_count} RNN samples (rows {fid.rows_checked})",
    )
    add(
        "switch_rate_matches",
        fid.switch_error,
        "<=",
        config.switch_tol,
        kind="claim",
        description=f"|switch rate RNN {fid.switch_rnn:.4f} - HMM {fid.switch_hmm:.4f}| "
        f"between frequent outputs {frequent} (all outputs: RNN {fid.switch_rnn_all:.4f}, "
        f"HMM {fid.switch_hmm_all:.4f})",
    )
    add(
        "output_frequencies_match",
        fid.freq_error,
        "<=",
        config.freq_tol,
        kind="claim",
        description="max |output frequency RNN - HMM|",
    )


def add_orbit_claims(result: Result, d: Measured) -> None:
    """The orbit is one-dimensional-ish, clustered by output, and switches along a loop."""
    geo, frequent = d.orbit.geo, d.em.frequent
    add = result.add_criterion
    add(
        "orbit_pc1_over_half",
        geo.pc1,
        ">",
        0.5,
        kind="claim",
        description="fraction of orbit variance explained by PC1 (noisy dynamics)",
    )
    add(
        "one_cluster_per_frequent_output",
        geo.cluster_purity,
        ">=",
        0.95,
        kind="claim",
        description="nearest-centroid purity (PC1-2) of cluster states (RT > 8) labelled by "
        f"output {frequent}; centroid separation {geo.cluster_separation:.2f} spreads",
    )
    add(
        "switch_paths_form_loop",
        geo.loop_separation,
        ">",
        1.0,
        kind="claim",
        description=f"|mean {frequent[0]}->{frequent[-1]} minus {frequent[-1]}->{frequent[0]} "
        "switch state| perpendicular to the cluster axis, in pooled SDs (line: ~0)",
    )


def add_seed_and_kick_criteria(result: Result, config: Config, d: Measured) -> None:
    """Trained seeds, and (when kick neurons were found) their ablation and its identity check."""
    n_failed = sum(not r.trained for r in d.seeds)
    add = result.add_criterion
    add(
        "n_seeds_failed_to_train",
        n_failed,
        "<=",
        0,
        kind="claim",
        description=f"{n_failed} of {len(d.seeds)} trained models miss the fidelity tolerances",
    )
    abl = d.abl
    if abl is None:
        return
    if config.gate_kick:
        add(
            "kick_ablation_beats_random",
            abl.kick_delta - min(abl.random_deltas),
            "<",
            0.0,
            kind="claim",
            description="relative switch-rate change when zeroing the "
            f"{config.n_kick} kick neurons of each direction {abl.kick_units} (the weaker group) "
            "minus the most negative change over random active sets (paper: kick neurons "
            "start switches, so ablation lowers the rate)",
        )
    add(
        "identity_edit_changes_nothing",
        abl.identity_edit_changes,
        "==",
        0,
        kind="sanity",
        description="outputs changed by an identity edit at rnn.hook_h (same noise)",
    )


def add_sampler_sanity(result: Result, d: Measured, K: int) -> None:
    """The HMM sampler reproduces the HMM's exact statistics."""
    exp, hmm_y, frequent = d.em.exp, d.em.hmm_y, d.em.frequent
    add = result.add_criterion
    add(
        "hmm_sampler_frequencies",
        float(np.abs(output_frequencies(hmm_y, K) - exp["frequencies"]).max()),
        "<=",
        0.03,
        kind="sanity",
        description="max |sampled - exact| HMM output frequency",
    )
    Ph_s, rows_h = output_transitions(hmm_y, K)
    okh = rows_h >= 100
    P = exp["transitions"]
    se = np.sqrt(P * (1 - P) / np.maximum(rows_h, 1)[:, None]) + 1e-4
    z = np.abs(Ph_s - P) / se
    add(
        "hmm_sampler_transitions",
        float(z[okh].max()) if okh.any() else float("nan"),
        "<=",
        5.0,
        kind="sanity",
        description="max |sampled - exact| HMM output-transition entry in binomial "
        "standard errors (rows with >= 100 samples)",
    )
    add(
        "hmm_sampler_switch_rate",
        max(
            abs(switch_rate(hmm_y) - float(exp["switch_rate"])),
            abs(switch_rate(hmm_y, frequent) - float(exp["switch_rate_among"])),
        ),
        "<=",
        0.005,
        kind="sanity",
        description="|sampled - exact| HMM switch rate (all and frequent pairs)",
    )


def add_dynamics_sanity(result: Result, d: Measured) -> None:
    """The fixed-point finder recovers a known map, and the cell reproduces the hooked forward."""
    fc = d.dyn.finder_check
    planted = (
        f"a map with {fc['n_known']} known fixed points (R tanh(2 R^T h), d = 3); "
        f"{fc['n_found']} reported, {fc['label_mismatches']} stability labels wrong or missing"
    )
    add = result.add_criterion
    add(
        "fixed_point_finder_recovers_planted",
        fc["point_error"],
        "<=",
        1e-6,
        kind="sanity",
        description="Hausdorff distance between the finder's fixed points and the known ones "
        f"on {planted}",
    )
    add(
        "fixed_point_spectra_match_planted",
        fc["eig_error"],
        "<=",
        1e-6,
        kind="sanity",
        description="max |Jacobian eigenvalue - known| at the finder's fixed points of the same "
        "map",
    )
    add(
        "cell_matches_hooked_forward",
        d.dyn.fixed_gap,
        "<=",
        1e-4,
        kind="sanity",
        description="max relative gap between cell(h_t, x_t+1) and the hooked h_t+1 along the "
        "orbit, and between the hooked one-step forward of each fixed point and the point",
    )


def add_criteria(result: Result, config: Config, d: Measured, K: int) -> None:
    """Every criterion, in the order runs have saved them."""
    add_fidelity_claims(result, config, d)
    add_orbit_claims(result, d)
    add_seed_and_kick_criteria(result, config, d)
    add_sampler_sanity(result, d, K)
    add_dynamics_sanity(result, d)


def metrics(m: Model, hmm: HMMSpec, T: int, d: Measured) -> dict[str, Any]:
    """The run's metrics (``metrics.json``)."""
    fid, base, exp, geo = d.em.fid, d.em.base, d.em.exp, d.orbit.geo
    n_failed = sum(not r.trained for r in d.seeds)
    return {
        "model": m.model_id,
        "hmm": hmm.name,
        "T": T,
        "d_hidden": int(m.module.W_hh.shape[0]),
        "output_frequencies_rnn": fid.freq_rnn.tolist(),
        "output_frequencies_hmm": fid.freq_hmm.tolist(),
        "output_frequencies_exact": exp["frequencies"].tolist(),
        "transition_matrix_rnn": np.nan_to_num(fid.P_rnn, nan=-1).round(4).tolist(),
        "transition_matrix_hmm": fid.P_hmm.round(4).tolist(),
        "transition_row_counts": fid.row_counts.tolist(),
        "switch_rate_rnn": fid.switch_rnn,
        "switch_rate_hmm": fid.switch_hmm,
        "switch_rate_exact": float(exp["switch_rate_among"]),
        "switch_rate_frequent_outputs": d.em.frequent,
        "switch_rate_all_outputs_rnn": fid.switch_rnn_all,
        "switch_rate_all_outputs_hmm": fid.switch_hmm_all,
        "switch_rate_all_outputs_exact": float(exp["switch_rate"]),
        "sinkhorn_rnn_vs_hmm": d.em.d_rnn,
        "sinkhorn_hmm_vs_hmm": d.em.d_base,
        "hmm_vs_hmm_row_error": base.row_error,
        "hmm_vs_hmm_freq_error": base.freq_error,
        "orbit_explained_variance": geo.evr.tolist(),
        "cluster_purity": geo.cluster_purity,
        "cluster_separation": geo.cluster_separation,
        "loop_separation": geo.loop_separation,
        "n_switch_states": [geo.n_switch_ab, geo.n_switch_ba],
        "region_fractions": d.orbit.region_frac,
        "residency": d.orbit.rt_summary.as_json(),
        "speed_median_by_region": d.jac.q_by_region,
        "fixed_point_finder_check": d.dyn.finder_check,
        "jacobian_by_region": d.jac.jac_by_region,
        "no_input_fixed_points": d.dyn.summary.as_json(),
        "no_input_collapse_spread": d.dyn.collapse_spread,
        "no_input_collapse_norm": d.dyn.collapse_norm,
        "noise_spread_cluster": d.noise.cluster,
        "noise_spread_transition": d.noise.transition,
        "kick_ablation": d.abl.as_json() if d.abl else {},
        "kick_populations": d.kick.populations_json() if d.kick else None,
        "seeds": [r.as_json() for r in d.seeds],
        "seeds_failed": f"{n_failed}/{len(d.seeds)}",
        "training": [r.as_json() for r in d.training],
        "orbit_growth_per_step": d.orbit.growth["growth_per_step"],
        "orbit_max_norm": d.orbit.growth["max_norm"],
        "n_snapshots_diverged": sum(bool(r.diverged) for r in d.training),
        "snapshots_diverged_at": [r.step for r in d.training if r.diverged],
    }
