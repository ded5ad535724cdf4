"""The values the crossmodal steps pass each other: frozen dataclasses, arrays typed with their
shapes (``n_test``: one row per test question, NaN where it was not analysed; ``edges``:
:data:`~interp.analyses.crossmodal.config.EDGE_NAMES`; ``layers``: window centres; ``states``:
the embedding and one per block)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from jaxtyping import Bool, Float, Int

from interp.analyses.crossmodal.config import EDGE_NAMES
from interp.data.crossmodal import Sample


@dataclass(frozen=True)
class Questions:
    """The test questions (scenes disjoint from training where that is known) and the
    training scene keys (None: unknown, so disjointness is unverified)."""

    test: list[Sample]
    training_keys: set | None


@dataclass(frozen=True)
class CleanAnswers:
    """The model's own answers on the test questions: predictions, accuracy overall and by type,
    the types at chance, the analysed questions (``kept``) and those grouped by length."""

    preds: Int[torch.Tensor, " n_test"]
    accuracy: float
    accuracy_by_type: dict[str, float]
    types_at_chance: list[str]
    kept: list[int]
    by_len: dict[int, list[int]]


@dataclass(frozen=True)
class Sweeps:
    """Every edge and window on every analysed question, and the checks run along the way:
    the everything-cut's spread and scale, its gap to the oracle forward, the fast path's gap
    to a full recompute, the nothing-blocked gap, the lens's final gap (max abs logits each);
    ``checks``: the checked batches (inputs, position groups) for the float64 rerun;
    ``timing``: seconds of the clean forwards and of the fast and full sweeps."""

    scores: Float[np.ndarray, "n_test edges layers"]
    p_base: Float[np.ndarray, " n_test"]
    all_layers: Float[np.ndarray, " n_test"]  # every position->last edge cut in every layer
    n_object: Float[np.ndarray, " n_test"]
    lens_norm: Float[np.ndarray, "n_test states"]
    lens_raw: Float[np.ndarray, "n_test states"]
    cut_spread: float
    cut_scale: float
    oracle_gap: float
    fast_gap: float
    none_gap: float
    lens_gap: float
    checks: list[tuple[dict[str, torch.Tensor], dict[str, Bool[torch.Tensor, "batch pos"]]]]
    timing: dict[str, float]


@dataclass(frozen=True)
class Float64Checks:
    """The fast-vs-full gap and the complete cut's gap to the oracle, rerun in float64."""

    fast_gap: float
    oracle_gap: float


@dataclass(frozen=True)
class Interval:
    """A point estimate and its 95% percentile-bootstrap interval ``[low, high]``."""

    estimate: float
    ci95: list[float]


@dataclass(frozen=True)
class Intervals:
    """Per edge name: the peak and onset layers; per comparison (``object_vs_random``,
    ``nonobject_vs_rest``): the excess drop; each with its interval."""

    peak: dict[str, Interval]
    onset: dict[str, Interval]
    excess: dict[str, Interval]

    def excess_dicts(self) -> dict[str, dict]:
        """The excess drops as saved (``{"estimate": ..., "ci95": [...]}`` per comparison)."""
        return {name: asdict(v) for name, v in self.excess.items()}


@dataclass(frozen=True)
class Summary:
    """Means over the analysed questions (``ok``): per edge, per question type, the patch
    sets and their controls (questions that mention an object), the lens, and the intervals."""

    ok: Int[np.ndarray, " analysed"]
    types: list[str]
    mean: Float[np.ndarray, "edges layers"]
    by_type: Float[np.ndarray, "types edges layers"]
    patch_sets: Float[np.ndarray, "4 layers"]
    lens_with_norm: Float[np.ndarray, " states"]
    lens_without_norm: Float[np.ndarray, " states"]
    intervals: Intervals

    def edge_means(self) -> dict[str, Float[np.ndarray, " layers"]]:
        """The mean curve of each edge, by name."""
        return {name: self.mean[e] for e, name in enumerate(EDGE_NAMES)}
