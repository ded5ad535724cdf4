"""RNNs emulating HMMs (Torre et al. 2025): emission fidelity, orbit, fixed points, kick neurons.

A noise-driven ReLU RNN trained (zoo recipe, Sinkhorn loss) to emit sequences of an HMM
is measured as the paper does:

* emission fidelity: output frequencies, one-step output transition matrix, switch rate
  and the Sinkhorn divergence to fresh HMM samples, against an HMM-vs-HMM baseline;
* dynamics: with no input, runs from orbit states and the fixed/slow-point finder
  (:mod:`interp.methods.fixed_points`, itself checked on a map with known fixed points); with
  noise, the PCA orbit, residency time per state (:mod:`interp.methods.dynamics`: steps
  until the argmax output changes, mean of 20 fresh-noise continuations, capped at 50)
  splitting states into clusters (RT > 8 and top output probability > 0.8), kick zones (2-8)
  and transitions (< 2), noise sensitivity (spread of fresh-noise continuations from cluster
  vs transition states), the speed q(h) and Jacobian spectra along the orbit;
* kick neurons from connectivity, as the paper: per switch direction ``a -> b``, the units
  with the largest presynaptic weights onto the rows of ``b``'s cluster population; each
  group (and, for comparison, the units most active just before switches) is zeroed at
  ``rnn.hook_h`` every step and compared with random sets of active neurons (switch rate);
* the same metrics on snapshots saved during training.
"""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from interp.analyses import register
from interp.data.rnn_hmm import REGION_NAMES, fidelity, regions, residency
from interp.methods.dynamics import orbit_geometry, pca  # noqa: F401  (pca: public name of this module)
from interp.fields import Count, Device, Fraction, ModelName, Seed
from interp.results import Result

log = logging.getLogger(__name__)

REQUIRED_HOOKS = ("rnn.hook_pre", "rnn.hook_h", "hook_logits")


class Config(BaseModel):
    """Settings of the RNN-emulates-HMM analysis."""

    model_config = ConfigDict(extra="forbid")

    model: ModelName = "zoo:hmm-chain2-h50"
    # more trainings of the same task (other seeds), each counted as trained or failed
    seed_models: list[ModelName] = Field(default_factory=list)
    hmm_kind: Literal["chain", "fully_connected", "cyclic"] | None = (
        None  # default: from the zoo recipe
    )
    n_states: Count | None = None
    T: Count | None = None
    n_eval: Count = 5000
    n_long: Count = 16  # long noisy trajectories for the orbit / residency analysis
    long_T: Count = 600
    n_fixed_init: Count = 128
    fixed_iters: Count = 500  # Adam iterations before Newton polishing
    noise_trials: Count = 32
    rt_samples: Count = (
        20  # fresh-noise continuations per state for its residency time (the paper's 20)
    )
    rt_max_steps: Count = 50  # residency time cap (the paper's 50)
    n_ablation: Count = 2000  # sequences per ablation condition
    n_kick: Count = 3
    n_random_triples: Count = 10
    row_min_count: Count = 500
    row_tol: Fraction = 0.05
    switch_tol: Fraction = 0.01
    freq_tol: Fraction = 0.05
    gate_kick: bool = False  # gate (claim) the kick-neuron ablation; reported either way
    training_metrics: bool = True
    n_train_eval: Count = 1000
    device: Device = "cpu"
    seed: Seed = 0


# ------------------------------------------------------------------------ helpers
def check_model(m) -> None:
    """Raise a clear error unless ``m`` is a noise-driven RNN with the needed hooks and methods."""
    names = set(m.hook_names) if m.backend == "tl" else set()
    missing = [h for h in REQUIRED_HOOKS if h not in names]
    if missing:
        raise ValueError(
            f"rnn_hmm needs an RNN with hooks {list(REQUIRED_HOOKS)}; {m.model_id} lacks {missing} "
            f"(use a zoo:hmm-* model or an interp.models.hmm_rnn.HMMRNN)"
        )
    for attr in ("cell", "noise", "sample_outputs"):
        if not callable(getattr(m.module, attr, None)):
            raise ValueError(
                f"rnn_hmm needs a noise-driven RNN module with .{attr}(); {m.model_id} "
                f"({type(m.module).__name__}) has none"
            )


def resolve_hmm(config: Config):
    from interp.data.rnn_hmm import make_hmm
    from interp.models.recipes.rnn_hmm import recipe_config

    rc = recipe_config(config.model) if config.model.startswith("zoo:") else None
    kind = config.hmm_kind or (rc.hmm_kind if rc else None)
    M = config.n_states or (rc.n_states if rc else None)
    T = config.T or (rc.T if rc else None)
    if kind is None or T is None or (kind == "chain" and M is None):
        raise ValueError(f"{config.model} is not an HMM zoo recipe: give hmm_kind, n_states and T")
    return make_hmm(kind, M or 3), T, rc


def rollout(m, n: int, T: int, seed: int, edits: dict | None = None, h_capture: bool = True):
    """Run the RNN on fresh noise; returns (noise, hidden [n,T,H], logits, sampled outputs [n,T])."""
    from interp.tracing.trace import trace

    g = torch.Generator().manual_seed(seed)
    x = m.module.noise(n, T, g)
    name = m.hook("rnn.hook_h")
    out, acts = trace(m, x, capture=[name] if h_capture else [], edits=edits)
    with torch.no_grad():
        y = m.module.sample_outputs(x, generator=g, logits=out).argmax(-1)
    return x, acts.get(name), out, y


def jacobian_spectra(module, H: torch.Tensor, X: torch.Tensor) -> np.ndarray:
    """Eigenvalues [n, d] (by decreasing modulus) of dF/dh at states H [n, d] with inputs X [n, d_in]."""
    from interp.methods.fixed_points import eigenvalues_by_modulus, jacobians

    return eigenvalues_by_modulus(jacobians(lambda h, x: module.cell(h, x), H.detach(), X.detach()))


def kick_candidates(
    W_hh: np.ndarray, H: np.ndarray, y: np.ndarray, reg: np.ndarray, frequent: list[int], k: int
) -> dict:
    """Kick neurons of the switches between the two extreme frequent outputs ``a``, ``b``, as the
    paper finds them, from connectivity: the cluster populations (units most active in one
    cluster's states, RT > 8, than in the other's), then for ``a -> b`` the ``k`` units with the
    largest presynaptic weights onto ``b``'s population rows (and the reverse). For comparison,
    the ad-hoc activity ranking (mean activity just before switches)."""
    from interp.methods.dynamics import cluster_populations, kick_neurons, pre_switch_activity

    a, b = frequent[0], frequent[-1]
    Hf, yf, rf = H.reshape(-1, H.shape[-1]), y.reshape(-1), reg.reshape(-1)
    pop_a, pop_b = cluster_populations(H, y, reg == 2, a, b)
    kick_ab, score_ab = kick_neurons(W_hh, pop_b, k)  # drive the state into b's cluster
    kick_ba, score_ba = kick_neurons(W_hh, pop_a, k)
    mean = lambda mask: Hf[mask].mean(0) if mask.any() else np.zeros(Hf.shape[1])  # noqa: E731
    ca, cb = mean((rf == 2) & (yf == a)), mean((rf == 2) & (yf == b))
    act_score, n_switches = pre_switch_activity(H, y, a, b, ca, cb)
    # where the kick neurons fire: mean activity in the source's kick zone vs in its cluster
    zone = {
        f"{a}->{b}": [
            float(mean((rf == 1) & (yf == a))[kick_ab].mean()),
            float(ca[kick_ab].mean()),
        ],
        f"{b}->{a}": [
            float(mean((rf == 1) & (yf == b))[kick_ba].mean()),
            float(cb[kick_ba].mean()),
        ],
    }
    return {
        "kick": {f"{a}->{b}": kick_ab, f"{b}->{a}": kick_ba},
        "activity": np.argsort(-act_score)[:k].tolist(),
        "kick_scores": {f"{a}->{b}": score_ab, f"{b}->{a}": score_ba},
        "act_score": act_score,
        "pop_a": pop_a.tolist(),
        "pop_b": pop_b.tolist(),
        "n_switches": n_switches,
        "kick_zone_activity": zone,
    }


def ablate_units(units: list[int]):
    """An edit of ``rnn.hook_h`` ``[batch, d_hidden]`` that zeroes the given units."""
    from interp.tracing.trace import edit_heads

    return edit_heads(list(units), torch.zeros_like, head_dim=1)


# ---------------------------------------------------------------------------- steps of the run
BURN = 20  # orbit steps left out (the start from h = 0)


def _by_region(values: np.ndarray, reg: np.ndarray, stat) -> dict[str, float]:
    return {
        name: float(stat(values[reg == i])) if (reg == i).any() else float("nan")
        for i, name in enumerate(REGION_NAMES)
    }


def emission_fidelity(m, hmm, T: int, config: Config, s: int) -> dict:
    """RNN outputs vs fresh HMM samples (and HMM vs HMM): frequencies, transition rows,
    switch rates, Sinkhorn divergence; the frequent outputs (> 10%) and exact statistics."""
    from interp.data.rnn_hmm import expected_statistics, sample
    from interp.models.hmm_rnn import sinkhorn_loss

    K = hmm.n_outputs
    _, hmm_y = sample(hmm, config.n_eval, T, seed=s + 1)
    _, hmm_y2 = sample(hmm, config.n_eval, T, seed=s + 2)
    y = rollout(m, config.n_eval, T, s + 3)[3]
    frequent = [int(k) for k in np.where(expected_statistics(hmm)["frequencies"] > 0.1)[0]]
    fid = fidelity(y, hmm_y, K, config.row_min_count, frequent)
    base = fidelity(hmm_y2, hmm_y, K, config.row_min_count, frequent)
    sk = sinkhorn_loss()
    ns = min(1000, config.n_eval)
    oh = lambda t: F.one_hot(t[:ns], K).float()  # noqa: E731
    with torch.no_grad():
        d_rnn = float(sk(oh(y), oh(hmm_y)))
        d_base = float(sk(oh(hmm_y2), oh(hmm_y)))
    log.info(
        "fidelity: freq err %.3f, row err %.3f, switch %.4f vs %.4f; sinkhorn %.3f (HMM-HMM %.3f)",
        fid["freq_error"],
        fid["row_error"],
        fid["switch_rnn"],
        fid["switch_hmm"],
        d_rnn,
        d_base,
    )
    return {
        "fid": fid,
        "base": base,
        "hmm_y": hmm_y,
        "frequent": frequent,
        "d_rnn": d_rnn,
        "d_base": d_base,
        "exp": expected_statistics(hmm, among=frequent),
    }


def state_residency(
    mod, H: torch.Tensor, config: Config, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Residency time [n, T] of every state of ``H`` [n, T, d] (steps until the argmax output
    changes, mean over ``rt_samples`` fresh-noise continuations, capped at ``rt_max_steps``) and
    its region by the paper's rule (cluster also needs a top output probability > 0.8)."""
    from interp.methods.dynamics import residency_times

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


def long_orbit(m, config: Config, s: int, frequent: list[int]) -> dict:
    """Long noisy runs: hidden states, argmax outputs, per-state residency and regions (after
    ``BURN`` steps: ``*_b``; ``reg`` is -1 during the burn-in), and the orbit's PCA geometry."""
    from interp.fields import ConfigError
    from interp.methods.dynamics import trajectory_growth

    xl, Hl, logits_l, _ = rollout(m, config.n_long, config.long_T, s + 4)
    grow = trajectory_growth(Hl[:, BURN:])
    if grow["diverged"]:  # every measure below would describe the blow-up, not an orbit
        raise ConfigError(
            f"{m.model_id}: its noisy runs diverge over long_T={config.long_T} steps (mean state norm "
            f"x{grow['growth_per_step']:.4f} a step, largest {grow['max_norm']:.3g}); the orbit, "
            "residency and fixed-point analysis needs a bounded orbit. Train it further, or "
            "analyse another checkpoint"
        )
    yl = logits_l.argmax(-1).numpy()  # the argmax output, as the paper
    rt_b, reg_b = state_residency(m.module, Hl[:, BURN:], config, s + 12)
    reg = np.concatenate([np.full((len(yl), BURN), -1), reg_b], 1)
    o = {
        "rt_cap": config.rt_max_steps,
        "x": xl,
        "H": Hl,
        "H_b": Hl.numpy()[:, BURN:],
        "y_b": yl[:, BURN:],
        "reg": reg,
        "reg_b": reg_b,
        "rt_b": rt_b,
    }
    o["growth"] = grow
    o["geo"] = geo = orbit_geometry(o["H_b"], o["y_b"], reg_b, frequent)
    o["region_frac"] = {name: float((reg_b == i).mean()) for i, name in enumerate(REGION_NAMES)}
    o["region_frac"]["unassigned"] = float((reg_b < 0).mean())
    # the path-only residency (steps until this trajectory's own output changes), for comparison
    path_rt = residency(yl)[:, BURN:]
    ok = np.isfinite(path_rt)
    o["rt_summary"] = {
        "median": float(np.median(rt_b)),
        "frac_capped": float((rt_b >= config.rt_max_steps).mean()),
        "corr_with_path_rt": float(np.corrcoef(rt_b[ok], path_rt[ok])[0, 1])
        if ok.sum() > 2
        else float("nan"),
    }
    log.info(
        "orbit: PC1 %.2f, purity %.3f, loop separation %.2f, regions %s",
        geo["pc1"],
        geo["cluster_purity"],
        geo["loop_separation"],
        o["region_frac"],
    )
    return o


def no_input_dynamics(mod, orbit: dict, config: Config, gen: torch.Generator) -> dict:
    """Fixed points without input (from orbit states), the collapse of no-input runs, the
    check that the cell reproduces the hooked forward, and the finder (same settings) on a map
    whose fixed points are known."""
    import copy

    from interp.methods.fixed_points import find_fixed_points, finder_recovery, planted_tanh_map

    Hl, xl = orbit["H"], orbit["x"]
    flatH = Hl[:, BURN:].reshape(-1, Hl.shape[-1])
    init = flatH[torch.randint(0, len(flatH), (config.n_fixed_init,), generator=gen)].double()
    mod_d = copy.deepcopy(mod).double()
    fps = find_fixed_points(
        lambda h, xx: mod_d.cell(h, xx), init, None, max_iters=config.fixed_iters
    )
    with torch.no_grad():
        h = init.double()
        norms = []
        for _ in range(300):
            h = mod_d.cell(h, None)
            norms.append(h.norm(dim=-1))
        out = {
            "collapse_spread": float((h - h.mean(0)).norm(dim=-1).max()),
            "collapse_norm": float(h.norm(dim=-1).max()),
        }
        # contraction per step over the last 50 steps (< 1: the no-input state decays to 0)
        alive = norms[-51] > 1e-250
        collapse_rate = (
            float(((norms[-1][alive] / norms[-51][alive]) ** (1 / 50)).median())
            if alive.any()
            else 0.0
        )
        # the ReLU map is not differentiable at h = 0: the Jacobian there depends on which units
        # are active, so report the one seen along the collapse (active set of its last step)
        # and the all-active one (W_hh) instead of a single spectrum.
        act = (h @ mod_d.W_hh.T > 0).double()  # [n, H] active units at the last step
        J_path = act[:, :, None] * mod_d.W_hh[None]
        radius_path = float(torch.linalg.eigvals(J_path).abs().max(-1).values.median())
        radius_all = float(torch.linalg.eigvals(mod_d.W_hh.detach()).abs().max())
    kinks = []
    for i, p in enumerate(fps.points):  # fixed points on a ReLU kink (some pre-activation ~ 0)
        pre = mod_d.W_hh.detach().numpy() @ p
        if (np.abs(pre) <= 1e-9 * max(1.0, np.abs(p).max())).any():
            kinks.append(i)
    fps.stability = fps.stability.astype("<U16")
    fps.stability[kinks] = "kink"
    # sanity: fixed points are fixed under the hooked forward (one step, zero input, h0 = point)
    fixed_gap = 0.0
    if len(fps):
        P = torch.from_numpy(fps.points).float()
        with torch.no_grad():
            out1 = mod(torch.zeros(len(P), 1, mod.hmm_spec.d_input), h0=P, return_hidden=True)[1][
                :, 0
            ]
        fixed_gap = float((out1 - P).norm(dim=-1).max() / max(1.0, float(P.norm(dim=-1).max())))
    with (
        torch.no_grad()
    ):  # the cell used for fixed points and Jacobians reproduces the hooked orbit
        step_gap = float(
            (mod.cell(Hl[:, :-1], xl[:, 1:]) - Hl[:, 1:]).abs().max()
            / max(1.0, float(Hl.abs().max()))
        )
    out["fixed_gap"] = max(fixed_gap, step_gap)
    planted = planted_tanh_map(d=3, gain=2.0, seed=config.seed)
    out["finder_check"] = finder_recovery(
        planted.F, planted, max_iters=config.fixed_iters, seed=config.seed
    )
    out["fps"] = fps
    out["summary"] = {
        "n_points": len(fps),
        "n_fixed": int(fps.is_fixed.sum()),
        "stability": fps.stability.tolist(),
        "norms": np.linalg.norm(fps.points, axis=1).round(6).tolist(),
        "max_modulus": fps.max_modulus.round(4).tolist(),
        "q": fps.q.tolist(),
        "meta": fps.meta,
        "kink_points": kinks,
        "collapse_rate": collapse_rate,
        "zero_point_radius_along_collapse": radius_path,
        "zero_point_radius_all_active": radius_all,
        "top_eigs": [
            [[float(v.real), float(v.imag)] for v in ev_i[:6]] for ev_i in fps.eigenvalues
        ],
    }
    return out


def orbit_speed_and_jacobians(mod, orbit: dict, config: Config, gen: torch.Generator) -> dict:
    """The no-input speed q(h) along the orbit and the Jacobian spectra of the step taken
    from 400 orbit states, by residency region."""
    from interp.methods.fixed_points import speed

    Hl, xl = orbit["H"], orbit["x"]
    flatH = Hl[:, BURN:].reshape(-1, Hl.shape[-1])

    def cell(h, xx):
        return mod.cell(h.to(mod.W_hh.dtype), None if xx is None else xx.to(mod.W_hh.dtype)).to(
            h.dtype
        )

    with torch.no_grad():
        q_orbit = speed(cell, flatH, None).numpy()
    pick = torch.randint(0, len(flatH), (min(400, len(flatH)),), generator=gen)
    # Jacobian at h_t of the step it takes: F(h, x_{t+1})
    t_idx = pick % (config.long_T - BURN) + BURN
    b_idx = pick // (config.long_T - BURN)
    nxt = (t_idx + 1).clamp_max(config.long_T - 1)
    ev = jacobian_spectra(mod, Hl[b_idx, t_idx], xl[b_idx, nxt])
    lead = ev[:, 0]
    reg_s = orbit["reg"][b_idx.numpy(), t_idx.numpy()]
    unstable, complex_lead = (
        _by_region(np.abs(lead) > 1, reg_s, np.mean),
        _by_region(np.abs(lead.imag) > 1e-6, reg_s, np.mean),
    )
    return {
        "q": q_orbit,
        "q_by_region": _by_region(q_orbit, orbit["reg_b"].reshape(-1), np.median),
        "ev": ev,
        "reg_s": reg_s,
        "jac_by_region": {
            name: {"frac_unstable": unstable[name], "frac_complex_leading": complex_lead[name]}
            for name in REGION_NAMES
        },
    }


def noise_sensitivity(
    mod, orbit: dict, config: Config, s: int, rng: np.random.Generator
) -> dict[str, float]:
    """Spread of fresh-noise 5-step continuations from (up to 20) cluster vs transition
    states, in units of the orbit's PC1-2 spread."""
    from interp.methods.dynamics import continuation_spread

    Hl, reg_b = orbit["H"], orbit["reg_b"]
    scale = max(float(np.sqrt(orbit["geo"]["Z"][:, :2].var(0).sum())), 1e-12)
    out = {}
    for name, code in (("cluster", 2), ("transition", 0)):
        pts = np.argwhere(reg_b == code) + [0, BURN]
        pts = pts[rng.permutation(len(pts))][:20]
        g = torch.Generator().manual_seed(s + 6)
        out[name] = (
            continuation_spread(
                mod.cell,
                Hl[pts[:, 0], pts[:, 1]],
                mod.hmm_spec.d_input,
                config.noise_trials,
                generator=g,
            )
            / scale
        )
    return out


def kick_neuron_ablation(
    m, orbit: dict, frequent: list[int], config: Config, T: int, s: int, rng: np.random.Generator
) -> tuple[dict | None, dict]:
    """Kick-neuron candidates and the relative switch-rate change when each set (and random
    triples of active neurons) is zeroed at ``rnn.hook_h`` every step."""
    from interp.data.rnn_hmm import switch_rate

    mod, H_b = m.module, orbit["H_b"]
    if len(frequent) <= 1:
        return None, {}
    kick = kick_candidates(
        mod.W_hh.detach().numpy(), H_b, orbit["y_b"], orbit["reg_b"], frequent, config.n_kick
    )
    hook_h = m.hook("rnn.hook_h")
    base_y = rollout(m, config.n_ablation, T, s + 8, h_capture=False)[3]
    base_sw = switch_rate(base_y)

    def delta(units):
        yy = rollout(
            m, config.n_ablation, T, s + 8, edits={hook_h: ablate_units(units)}, h_capture=False
        )[3]
        return (switch_rate(yy) - base_sw) / max(base_sw, 1e-12)

    active = np.where(H_b.reshape(-1, H_b.shape[-1]).mean(0) > 1e-6)[0]
    rand_sets = [
        sorted(rng.choice(active, size=min(config.n_kick, len(active)), replace=False).tolist())
        for _ in range(config.n_random_triples)
    ]
    identity_y = rollout(
        m, config.n_ablation, T, s + 8, edits={hook_h: lambda a: a}, h_capture=False
    )[3]
    kick_deltas = {d: delta(u) for d, u in kick["kick"].items()}
    abl = {
        "base_switch_rate": base_sw,
        "kick_units": kick["kick"],
        "kick_deltas": kick_deltas,
        "kick_delta": max(kick_deltas.values()),  # the weaker of the two groups
        "activity_units": kick["activity"],
        "activity_delta": delta(kick["activity"]),
        "random_units": rand_sets,
        "random_deltas": [delta(u) for u in rand_sets],
        "identity_edit_changes": int((identity_y != base_y).sum()),
    }
    log.info(
        "kick ablation: %s %s, activity %s %+.3f, random %s",
        kick["kick"],
        {d: round(v, 3) for d, v in kick_deltas.items()},
        kick["activity"],
        abl["activity_delta"],
        np.round(abl["random_deltas"], 3).tolist(),
    )
    return kick, abl


def seed_fidelity(config: Config, em: dict, K: int, T: int, s: int) -> list[dict]:
    """Whether each trained model (the analysed one and ``seed_models``) meets the tolerances."""
    import interp

    rows = []
    for i, name in enumerate([config.model, *config.seed_models]):
        if i == 0:
            f = em["fid"]
        else:
            ms = interp.load_model(name, device=config.device)
            check_model(ms)
            f = fidelity(
                rollout(ms, config.n_eval, T, s + 9, h_capture=False)[3],
                em["hmm_y"],
                K,
                config.row_min_count,
                em["frequent"],
            )
        ok = (
            f["row_error"] <= config.row_tol
            and f["switch_error"] <= config.switch_tol
            and f["freq_error"] <= config.freq_tol
        )
        rows.append(
            {
                "model": name,
                "trained": bool(ok),
                "row_error": f["row_error"],
                "switch_error": f["switch_error"],
                "freq_error": f["freq_error"],
            }
        )
    return rows


SNAPSHOT_KEYS = (
    "freq_error",
    "row_error",
    "switch_error",
    "pc1",
    "cluster_purity",
    "loop_separation",
    "frac_unstable_jacobian",
    "frac_complex_leading",
)


def over_training(
    mod, rc, em: dict, config: Config, K: int, T: int, s: int, gen: torch.Generator
) -> list[dict]:
    """Fidelity, orbit geometry and Jacobian spectra of each snapshot saved during training.

    A snapshot whose long noisy runs diverge (:func:`~interp.methods.dynamics.trajectory_growth`:
    non-finite states, or a mean norm growing faster than ``GROWTH_LIMIT`` a step) is kept as a
    row with ``diverged`` true, its growth rate and largest norm, and NaN for the orbit and
    Jacobian measures, which would describe the blow-up; its fidelity at the training length
    is still measured when those outputs are finite. The run goes on with the next snapshot."""
    import copy

    import interp
    from interp.methods.dynamics import trajectory_growth
    from interp.models.recipes.rnn_hmm import load_snapshots

    if not config.training_metrics or rc is None:
        return []
    snaps = load_snapshots(rc)
    work = copy.deepcopy(mod)
    mw = interp.wrap(work, model_id="snapshot")
    frequent, rows = em["frequent"], []
    for step in sorted(snaps):
        work.load_state_dict(snaps[step])
        row = {"step": int(step), **{k: float("nan") for k in SNAPSHOT_KEYS}}
        _, _, lg1, ys = rollout(mw, config.n_train_eval, T, s + 10, h_capture=False)
        if bool(torch.isfinite(lg1).all()):
            fs = fidelity(
                ys, em["hmm_y"], K, min(config.row_min_count, config.n_train_eval // 10), frequent
            )
            row.update({k: fs[k] for k in ("freq_error", "row_error", "switch_error")})
        _, Hs2, lg2, _ = rollout(mw, 4, config.long_T, s + 11)
        grow = trajectory_growth(Hs2[:, BURN:])
        row.update(
            diverged=grow["diverged"],
            growth_per_step=grow["growth_per_step"],
            max_hidden_norm=grow["max_norm"],
        )
        if grow["diverged"]:
            log.warning(
                "training snapshot at step %d diverges on %d-step noisy runs (norm x%.4f a step, max "
                "%.3g): orbit measures skipped",
                step,
                config.long_T,
                grow["growth_per_step"],
                grow["max_norm"],
            )
            rows.append(row)
            continue
        y2 = lg2.argmax(-1).numpy()
        reg2 = state_residency(work, Hs2[:, BURN:], config, s + 13)[1]
        g2 = orbit_geometry(Hs2.numpy()[:, BURN:], y2[:, BURN:], reg2, frequent)
        sel = torch.randint(0, 4 * (config.long_T - BURN), (100,), generator=gen)
        Hsel = Hs2[:, BURN:].reshape(-1, Hs2.shape[-1])[sel]
        ev2 = jacobian_spectra(work, Hsel, torch.zeros(len(sel), mod.hmm_spec.d_input))
        row.update(
            {
                "pc1": g2["pc1"],
                "cluster_purity": g2["cluster_purity"],
                "loop_separation": g2["loop_separation"],
                "frac_unstable_jacobian": float((np.abs(ev2[:, 0]) > 1).mean()),
                "frac_complex_leading": float((np.abs(ev2[:, 0].imag) > 1e-6).mean()),
            }
        )
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------- run
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
    """Emission fidelity, orbit geometry, fixed points and kick neurons of an RNN trained on an HMM."""
    import interp
    from interp.utils import seed_everything

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
    orbit = long_orbit(m, config, s, em["frequent"])
    gen = torch.Generator().manual_seed(
        s + 5
    )  # one stream, in this order: fixed-point inits, Jacobian picks, snapshots
    dyn = no_input_dynamics(mod, orbit, config, gen)
    jac = orbit_speed_and_jacobians(mod, orbit, config, gen)
    rng = np.random.default_rng(
        s + 7
    )  # one stream: noise-sensitivity states, then random ablation triples
    noise = noise_sensitivity(mod, orbit, config, s, rng)
    kick, abl = kick_neuron_ablation(m, orbit, em["frequent"], config, T, s, rng)
    seeds = seed_fidelity(config, em, K, T, s)
    training = over_training(mod, rc, em, config, K, T, s, gen)
    result = Result("rnn_hmm")
    _criteria(result, config, em, orbit["geo"], dyn, abl, seeds, K)
    result.metrics.update(
        _metrics(m, hmm, T, em, orbit, dyn, jac, noise, kick, abl, seeds, training)
    )
    _arrays_and_figures(result, orbit, dyn, jac, em["fid"], abl, training)
    return result


def _criteria(
    result: Result, config: Config, em: dict, geo: dict, dyn: dict, abl: dict, seeds: list, K: int
) -> None:
    from interp.data.rnn_hmm import output_frequencies, output_transitions, switch_rate

    fid, frequent, exp, hmm_y = em["fid"], em["frequent"], em["exp"], em["hmm_y"]
    n_failed = sum(not r["trained"] for r in seeds)
    add = result.add_criterion
    add(
        "transition_rows_match",
        fid["row_error"],
        "<=",
        config.row_tol,
        kind="claim",
        description=f"max |P_rnn - P_hmm| over output-transition rows with >= {config.row_min_count} "
        f"RNN samples (rows {fid['rows_checked']})",
    )
    add(
        "switch_rate_matches",
        fid["switch_error"],
        "<=",
        config.switch_tol,
        kind="claim",
        description=f"|switch rate RNN {fid['switch_rnn']:.4f} - HMM {fid['switch_hmm']:.4f}| between "
        f"frequent outputs {frequent} (all outputs: RNN {fid['switch_rnn_all']:.4f}, "
        f"HMM {fid['switch_hmm_all']:.4f})",
    )
    add(
        "output_frequencies_match",
        fid["freq_error"],
        "<=",
        config.freq_tol,
        kind="claim",
        description="max |output frequency RNN - HMM|",
    )
    add(
        "orbit_pc1_over_half",
        geo["pc1"],
        ">",
        0.5,
        kind="claim",
        description="fraction of orbit variance explained by PC1 (noisy dynamics)",
    )
    add(
        "one_cluster_per_frequent_output",
        geo["cluster_purity"],
        ">=",
        0.95,
        kind="claim",
        description=f"nearest-centroid purity (PC1-2) of cluster states (RT > 8) labelled by output "
        f"{frequent}; centroid separation {geo['cluster_separation']:.2f} spreads",
    )
    add(
        "switch_paths_form_loop",
        geo["loop_separation"],
        ">",
        1.0,
        kind="claim",
        description=f"|mean {frequent[0]}->{frequent[-1]} minus {frequent[-1]}->{frequent[0]} switch "
        f"state| perpendicular to the cluster axis, in pooled SDs (line: ~0)",
    )
    add(
        "n_seeds_failed_to_train",
        n_failed,
        "<=",
        0,
        kind="claim",
        description=f"{n_failed} of {len(seeds)} trained models miss the fidelity tolerances",
    )
    if abl:
        if config.gate_kick:
            add(
                "kick_ablation_beats_random",
                abl["kick_delta"] - min(abl["random_deltas"]),
                "<",
                0.0,
                kind="claim",
                description=f"relative switch-rate change when zeroing the {config.n_kick} kick neurons "
                f"of each direction {abl['kick_units']} (the weaker group) minus the most negative change over "
                "random active sets (paper: kick neurons start switches, so ablation lowers the rate)",
            )
        add(
            "identity_edit_changes_nothing",
            abl["identity_edit_changes"],
            "==",
            0,
            kind="sanity",
            description="outputs changed by an identity edit at rnn.hook_h (same noise)",
        )
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
    se = (
        np.sqrt(exp["transitions"] * (1 - exp["transitions"]) / np.maximum(rows_h, 1)[:, None])
        + 1e-4
    )
    z = np.abs(Ph_s - exp["transitions"]) / se
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
    fc = dyn["finder_check"]
    planted = (
        f"a map with {fc['n_known']} known fixed points (R tanh(2 R^T h), d = 3); {fc['n_found']} reported, "
        f"{fc['label_mismatches']} stability labels wrong or missing"
    )
    add(
        "fixed_point_finder_recovers_planted",
        fc["point_error"],
        "<=",
        1e-6,
        kind="sanity",
        description=f"Hausdorff distance between the finder's fixed points and the known ones on {planted}",
    )
    add(
        "fixed_point_spectra_match_planted",
        fc["eig_error"],
        "<=",
        1e-6,
        kind="sanity",
        description="max |Jacobian eigenvalue - known| at the finder's fixed points of the same map",
    )
    add(
        "cell_matches_hooked_forward",
        dyn["fixed_gap"],
        "<=",
        1e-4,
        kind="sanity",
        description="max relative gap between cell(h_t, x_t+1) and the hooked h_t+1 along the orbit, "
        "and between the hooked one-step forward of each fixed point and the point",
    )


def _metrics(m, hmm, T, em, orbit, dyn, jac, noise, kick, abl, seeds, training) -> dict:
    fid, base, exp, geo = em["fid"], em["base"], em["exp"], orbit["geo"]
    n_failed = sum(not r["trained"] for r in seeds)
    return {
        "model": m.model_id,
        "hmm": hmm.name,
        "T": T,
        "d_hidden": int(m.module.W_hh.shape[0]),
        "output_frequencies_rnn": fid["freq_rnn"].tolist(),
        "output_frequencies_hmm": fid["freq_hmm"].tolist(),
        "output_frequencies_exact": exp["frequencies"].tolist(),
        "transition_matrix_rnn": np.nan_to_num(fid["P_rnn"], nan=-1).round(4).tolist(),
        "transition_matrix_hmm": fid["P_hmm"].round(4).tolist(),
        "transition_row_counts": fid["row_counts"].tolist(),
        "switch_rate_rnn": fid["switch_rnn"],
        "switch_rate_hmm": fid["switch_hmm"],
        "switch_rate_exact": float(exp["switch_rate_among"]),
        "switch_rate_frequent_outputs": em["frequent"],
        "switch_rate_all_outputs_rnn": fid["switch_rnn_all"],
        "switch_rate_all_outputs_hmm": fid["switch_hmm_all"],
        "switch_rate_all_outputs_exact": float(exp["switch_rate"]),
        "sinkhorn_rnn_vs_hmm": em["d_rnn"],
        "sinkhorn_hmm_vs_hmm": em["d_base"],
        "hmm_vs_hmm_row_error": base["row_error"],
        "hmm_vs_hmm_freq_error": base["freq_error"],
        "orbit_explained_variance": geo["evr"].tolist(),
        "cluster_purity": geo["cluster_purity"],
        "cluster_separation": geo["cluster_separation"],
        "loop_separation": geo["loop_separation"],
        "n_switch_states": [geo["n_switch_ab"], geo["n_switch_ba"]],
        "region_fractions": orbit["region_frac"],
        "residency": orbit["rt_summary"],
        "speed_median_by_region": jac["q_by_region"],
        "fixed_point_finder_check": dyn["finder_check"],
        "jacobian_by_region": jac["jac_by_region"],
        "no_input_fixed_points": dyn["summary"],
        "no_input_collapse_spread": dyn["collapse_spread"],
        "no_input_collapse_norm": dyn["collapse_norm"],
        "noise_spread_cluster": noise["cluster"],
        "noise_spread_transition": noise["transition"],
        "kick_ablation": abl,
        "kick_populations": (
            {k: kick[k] for k in ("pop_a", "pop_b", "n_switches", "kick_zone_activity")}
            if kick
            else None
        ),
        "seeds": seeds,
        "seeds_failed": f"{n_failed}/{len(seeds)}",
        "training": training,
        "orbit_growth_per_step": orbit["growth"]["growth_per_step"],
        "orbit_max_norm": orbit["growth"]["max_norm"],
        "n_snapshots_diverged": sum(bool(r.get("diverged")) for r in training),
        "snapshots_diverged_at": [r["step"] for r in training if r.get("diverged")],
    }


def _arrays_and_figures(
    result: Result, orbit: dict, dyn: dict, jac: dict, fid: dict, abl: dict, training: list
) -> None:
    from interp.plotting import rnn_hmm as plots

    geo, fps, Z = orbit["geo"], dyn["fps"], orbit["geo"]["Z"]
    y_flat, rt_flat, reg_flat = (
        orbit["y_b"].reshape(-1),
        orbit["rt_b"].reshape(-1),
        orbit["reg_b"].reshape(-1),
    )
    result.arrays.update(
        {
            "orbit_pcs": Z[:, :3].astype(np.float32),
            "orbit_outputs": y_flat.astype(np.int8),
            "orbit_residency": rt_flat.astype(np.float32),
            "orbit_regions": reg_flat.astype(np.int8),
            "orbit_speed": jac["q"].astype(np.float32),
            "fixed_points": fps.points,
            "fixed_point_eigenvalues": fps.eigenvalues,
            "orbit_jacobian_eigenvalues": jac["ev"],
            "transition_matrix_rnn": fid["P_rnn"],
            "transition_matrix_hmm": fid["P_hmm"],
        }
    )
    fp_pcs = (fps.points - geo["mu"]) @ geo["components"].T if len(fps) else np.zeros((0, 3))
    result.figures.update(
        {
            "orbit": plots.orbit_figure(
                Z, y_flat, rt_flat, geo.get("switch_paths"), regions=reg_flat
            ),
            "transition_matrices": plots.transition_matrices_figure(fid["P_rnn"], fid["P_hmm"]),
            "fixed_points": plots.fixed_points_figure(Z, fp_pcs, fps.stability.tolist()),
            "speed": plots.speed_figure(Z, jac["q"]),
            "jacobian_spectra": plots.spectra_figure(jac["ev"], jac["reg_s"]),
            "residency": plots.residency_figure(rt_flat, cap=orbit["rt_cap"]),
        }
    )
    if abl:
        result.figures["ablation"] = plots.ablation_figure(abl)
    if training:
        result.figures["training"] = plots.training_figure(training)
