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

The package: :mod:`.config` (``Config``), :mod:`.types` (the typed values the steps exchange),
:mod:`.model` (checks, rollouts, Jacobian spectra, unit ablation), :mod:`.orbit` (fidelity,
orbit, speed, noise), :mod:`.fixed` (no-input dynamics), :mod:`.kick` (kick neurons),
:mod:`.training` (other seeds, snapshots), :mod:`.criteria` (criteria and metrics) and
:mod:`.pipeline` (``run``, arrays and figures).
"""

from __future__ import annotations

from interp.analyses.rnn_hmm.config import Config
from interp.analyses.rnn_hmm.criteria import add_criteria, metrics
from interp.analyses.rnn_hmm.fixed import cell_gap, collapse, mark_kinks, no_input_dynamics
from interp.analyses.rnn_hmm.kick import kick_candidates, kick_neuron_ablation
from interp.analyses.rnn_hmm.model import (
    BURN,
    REQUIRED_HOOKS,
    ablate_units,
    check_model,
    jacobian_spectra,
    resolve_hmm,
    rollout,
)
from interp.analyses.rnn_hmm.orbit import (
    emission_fidelity,
    long_orbit,
    noise_sensitivity,
    orbit_speed_and_jacobians,
    state_residency,
)
from interp.analyses.rnn_hmm.pipeline import add_arrays_and_figures, run
from interp.analyses.rnn_hmm.training import over_training, seed_fidelity, snapshot_row
from interp.analyses.rnn_hmm.types import (
    SNAPSHOT_KEYS,
    Collapse,
    Emission,
    FixedPointSummary,
    KickAblation,
    KickCandidates,
    Measured,
    NoInputDynamics,
    NoiseSpread,
    Orbit,
    OrbitGeometry,
    OrbitJacobians,
    ResidencySummary,
    Rollout,
    SeedRow,
    SnapshotRow,
)
from interp.methods.dynamics import orbit_geometry, pca  # public names of the old module

__all__ = [
    "BURN",
    "REQUIRED_HOOKS",
    "SNAPSHOT_KEYS",
    "Collapse",
    "Config",
    "Emission",
    "FixedPointSummary",
    "KickAblation",
    "KickCandidates",
    "Measured",
    "NoInputDynamics",
    "NoiseSpread",
    "Orbit",
    "OrbitGeometry",
    "OrbitJacobians",
    "ResidencySummary",
    "Rollout",
    "SeedRow",
    "SnapshotRow",
    "ablate_units",
    "add_arrays_and_figures",
    "add_criteria",
    "cell_gap",
    "check_model",
    "collapse",
    "emission_fidelity",
    "jacobian_spectra",
    "kick_candidates",
    "kick_neuron_ablation",
    "long_orbit",
    "mark_kinks",
    "metrics",
    "no_input_dynamics",
    "noise_sensitivity",
    "orbit_geometry",
    "orbit_speed_and_jacobians",
    "over_training",
    "pca",
    "resolve_hmm",
    "rollout",
    "run",
    "seed_fidelity",
    "snapshot_row",
    "state_residency",
]
