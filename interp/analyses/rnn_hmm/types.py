"""The typed values the steps of the RNN-emulates-HMM analysis exchange.

Where a value is written to ``metrics.json``, ``as_json()`` gives the dict with the keys saved
runs, the plots and the dashboard read: they must not change."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from jaxtyping import Complex, Float, Int

from interp.data.rnn_hmm import Fidelity
from interp.methods.fixed_points import FixedPoints


@dataclass(frozen=True)
class Rollout:
    """The RNN run on fresh noise."""

    noise: Float[torch.Tensor, "n T d_input"]
    hidden: Float[torch.Tensor, "n T d_hidden"] | None  # None unless captured
    logits: Float[torch.Tensor, "n T K"]
    outputs: Int[torch.Tensor, "n T"]  # sampled outputs


@dataclass(frozen=True)
class Emission:
    """RNN outputs vs fresh HMM samples, and HMM vs HMM as the baseline."""

    fid: Fidelity  # RNN vs HMM
    base: Fidelity  # HMM vs another HMM sample
    hmm_y: Int[torch.Tensor, "n_eval T"]  # the reference HMM sample
    frequent: list[int]  # outputs with exact frequency > 10%
    d_rnn: float  # Sinkhorn divergence RNN vs HMM
    d_base: float  # HMM vs HMM
    exp: dict[str, np.ndarray]  # interp.data.rnn_hmm.expected_statistics among the frequent


@dataclass(frozen=True)
class OrbitGeometry:
    """PCA of the orbit, cluster purity and the loop test
    (:func:`interp.methods.dynamics.orbit_geometry`)."""

    mu: Float[np.ndarray, " d"]
    components: Float[np.ndarray, "3 d"]
    evr: Float[np.ndarray, " 3"]  # explained variance ratio
    Z: Float[np.ndarray, "states 3"]  # orbit states in PC coordinates
    pc1: float
    cluster_purity: float
    cluster_separation: float
    n_switch_ab: int
    n_switch_ba: int
    loop_separation: float
    switch_paths: tuple[np.ndarray, np.ndarray] | None  # mean a->b and b->a switch states

    @classmethod
    def of(cls, geo: dict[str, Any]) -> OrbitGeometry:
        """From the dict :func:`~interp.methods.dynamics.orbit_geometry` returns."""
        return cls(**{"switch_paths": None, **geo})


@dataclass(frozen=True)
class ResidencySummary:
    """Residency times of the orbit's states."""

    median: float
    frac_capped: float
    corr_with_path_rt: float  # with the path-only residency (this trajectory's own output)

    def as_json(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class Orbit:
    """Long noisy runs: states, outputs, residency and regions after the burn-in (``*_b``)."""

    rt_cap: int
    x: Float[torch.Tensor, "n_long long_T d_input"]
    H: Float[torch.Tensor, "n_long long_T d_hidden"]
    H_b: Float[np.ndarray, "n_long T_b d_hidden"]
    y_b: Int[np.ndarray, "n_long T_b"]  # argmax outputs
    reg: Int[np.ndarray, "n_long long_T"]  # -1 during the burn-in
    reg_b: Int[np.ndarray, "n_long T_b"]
    rt_b: Float[np.ndarray, "n_long T_b"]
    growth: dict[str, Any]  # interp.methods.dynamics.trajectory_growth
    geo: OrbitGeometry
    region_frac: dict[str, float]
    rt_summary: ResidencySummary


@dataclass(frozen=True)
class Collapse:
    """No-input runs from orbit states: where they end and how fast they contract."""

    spread: float
    norm: float
    rate: float  # contraction per step over the last 50 steps
    radius_path: float  # spectral radius at h = 0 with the active set seen along the collapse
    radius_all: float  # ... with every unit active (W_hh)


@dataclass(frozen=True)
class FixedPointSummary:
    """``metrics["no_input_fixed_points"]``."""

    n_points: int
    n_fixed: int
    stability: list[str]
    norms: list[float]
    max_modulus: list[float]
    q: list[float]
    meta: dict[str, Any]
    kink_points: list[int]
    collapse_rate: float
    zero_point_radius_along_collapse: float
    zero_point_radius_all_active: float
    top_eigs: list[list[list[float]]]

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class NoInputDynamics:
    """Fixed points without input, the collapse of no-input runs, and their checks."""

    fps: FixedPoints  # stability "kink" where a pre-activation is ~0
    collapse_spread: float
    collapse_norm: float
    fixed_gap: float  # cell vs hooked forward (orbit steps and fixed points)
    finder_check: dict[str, Any]  # interp.methods.fixed_points.finder_recovery on a known map
    summary: FixedPointSummary


@dataclass(frozen=True)
class OrbitJacobians:
    """The no-input speed along the orbit and Jacobian spectra of sampled orbit steps."""

    q: Float[np.ndarray, " states"]
    q_by_region: dict[str, float]
    ev: Complex[np.ndarray, "picks d_hidden"]  # by decreasing modulus
    reg_s: Int[np.ndarray, " picks"]  # region of each sampled state
    jac_by_region: dict[str, dict[str, float]]


@dataclass(frozen=True)
class NoiseSpread:
    """Spread of fresh-noise continuations (in PC1-2 orbit spreads)."""

    cluster: float
    transition: float


@dataclass(frozen=True)
class KickCandidates:
    """Kick neurons of the switches between the extreme frequent outputs ``a`` and ``b``."""

    kick: dict[str, list[int]]  # "a->b": units, "b->a": units
    activity: list[int]  # top units by activity just before switches
    kick_scores: dict[str, np.ndarray]
    act_score: Float[np.ndarray, " d_hidden"]
    pop_a: list[int]
    pop_b: list[int]
    n_switches: int
    kick_zone_activity: dict[str, list[float]]  # [in the kick zone, in the cluster]

    def populations_json(self) -> dict[str, Any]:
        """``metrics["kick_populations"]``."""
        return {
            "pop_a": self.pop_a,
            "pop_b": self.pop_b,
            "n_switches": self.n_switches,
            "kick_zone_activity": self.kick_zone_activity,
        }


@dataclass(frozen=True)
class KickAblation:
    """Relative switch-rate change when unit sets are zeroed at ``rnn.hook_h`` every step."""

    base_switch_rate: float
    kick_units: dict[str, list[int]]
    kick_deltas: dict[str, float]
    kick_delta: float  # the weaker of the two groups
    activity_units: list[int]
    activity_delta: float
    random_units: list[list[int]]
    random_deltas: list[float]
    identity_edit_changes: int

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SeedRow:
    """Whether one trained model meets the fidelity tolerances."""

    model: str
    trained: bool
    row_error: float
    switch_error: float
    freq_error: float

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


NAN = float("nan")


@dataclass(frozen=True)
class SnapshotRow:
    """The metrics of one snapshot saved during training (NaN where not measured)."""

    step: int
    freq_error: float = NAN
    row_error: float = NAN
    switch_error: float = NAN
    pc1: float = NAN
    cluster_purity: float = NAN
    loop_separation: float = NAN
    frac_unstable_jacobian: float = NAN
    frac_complex_leading: float = NAN
    diverged: bool = False
    growth_per_step: float = NAN
    max_hidden_norm: float = NAN

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


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


@dataclass(frozen=True)
class Measured:
    """Everything one run measured, read by the criteria, metrics, arrays and figures."""

    em: Emission
    orbit: Orbit
    dyn: NoInputDynamics
    jac: OrbitJacobians
    noise: NoiseSpread
    kick: KickCandidates | None
    abl: KickAblation | None
    seeds: list[SeedRow]
    training: list[SnapshotRow]
