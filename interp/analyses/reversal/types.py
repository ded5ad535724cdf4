"""The values the reversal steps pass each other: frozen dataclasses, arrays typed with their
shapes (``D`` directions, ``G`` groups, ``S`` template splits, ``K`` probe kinds; ``pairs``:
the fact pairs of a variant)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from jaxtyping import Float, Int

from interp.data.reversal import FactSet
from interp.tracing.model import Model


@dataclass(frozen=True)
class FactModel:
    """A trained model with the facts and objective it was trained on."""

    variant: str
    objective: str
    seed: int
    name: str
    path: str
    model: Model
    facts: FactSet


@dataclass(frozen=True)
class ModelEval:
    """One model's measures: exact match (order swapped; in place, NaN for causal models), the
    correct and random targets' log-probs per pair (mean over templates), and the probes
    (``layers``: the embedding and each block's output)."""

    accuracy: Float[np.ndarray, "D G S"]
    accuracy_in_place: Float[np.ndarray, "D G S"]
    lp_correct: Float[np.ndarray, "D S pairs"]
    lp_random: Float[np.ndarray, "D S pairs"]
    probe: Float[np.ndarray, "D K layers"]


@dataclass(frozen=True)
class TrainingSummary:
    """What a model's train log says about its end (None where the log does not say)."""

    train_steps: int | None
    train_forward_accuracy: float | None
    train_stopped: Any
    accuracy_vs_steps: list[dict[str, float]] = field(default_factory=list)


@dataclass(frozen=True)
class ModelRow:
    """A model of the run, as the ``models`` metric lists it."""

    variant: str
    objective: str
    seed: int
    name: str
    path: str
    n_layers: int
    training: TrainingSummary

    def to_dict(self) -> dict[str, Any]:
        """The saved row: the fields and the training summary's, flat."""
        out = {k: v for k, v in asdict(self).items() if k != "training"}
        return {**out, **asdict(self.training)}


@dataclass(frozen=True)
class Evaluations:
    """Every model's measures by ``(variant, objective, seed)``, each variant's fact set, and
    one row per model."""

    evals: dict[tuple[str, str, int], ModelEval]
    facts_of: dict[str, FactSet]
    models: list[ModelRow]


@dataclass(frozen=True)
class Arrays:
    """The run's arrays (:meth:`to_dict`: the names they are saved under): accuracies
    ``[variant, objective, seed, D, G, S]``, probes ``[variant, objective, seed, D, K,
    layers]``, and per variant the log-probs ``[objective, seed, D, S, pairs]`` and each pair's
    group index."""

    accuracy: Float[np.ndarray, "V O seeds D G S"]
    accuracy_in_place: Float[np.ndarray, "V O seeds D G S"]
    probe_accuracy: Float[np.ndarray, "V O seeds D K layers"]
    logprob_correct: dict[str, Float[np.ndarray, "O seeds D S pairs"]]
    logprob_random: dict[str, Float[np.ndarray, "O seeds D S pairs"]]
    pair_group: dict[str, Int[np.ndarray, " pairs"]]

    def to_dict(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for v in self.logprob_correct:
            out[f"logprob_correct_{v}"] = self.logprob_correct[v]
            out[f"logprob_random_{v}"] = self.logprob_random[v]
            out[f"pair_group_{v}"] = self.pair_group[v]
        out["accuracy"] = self.accuracy
        out["accuracy_in_place"] = self.accuracy_in_place
        out["probe_accuracy"] = self.probe_accuracy
        return out


@dataclass(frozen=True)
class EquivalenceTest:
    """TOST of a mean difference within ``+-margin``: the larger one-sided p, the matching
    ``ci_level`` t interval, the mean and the number of differences."""

    p_equivalence: float
    ci_low: float
    ci_high: float
    ci_level: float
    margin: float
    mean_diff: float
    n: int


@dataclass(frozen=True)
class AboveRandomTest:
    """Berglund et al.'s one-sided paired t-test: its p, the two-sided 95% interval of the mean
    difference, and the smallest true difference found with 80% power."""

    p_above: float
    ci95: list[float]
    detectable_nats: float


@dataclass(frozen=True)
class ReverseLogprobTest:
    """Correct vs random log-probs in the untrained direction: the equivalence test, the
    Wilcoxon p, and the one-sided test."""

    equivalence: EquivalenceTest
    p: float
    above: AboveRandomTest


@dataclass(frozen=True)
class ModelSummary:
    """One ``variant/objective`` over its seeds (:meth:`to_dict`: the saved ``summary``
    entry): accuracy in the trained and the reverse direction (order swapped and, for masked
    models, in place; training templates and held-out paraphrases), the reverse log-prob
    tests, the last-layer probes and chance."""

    same_direction_train: float
    reverse_train: float
    reverse_in_place_train: float | None
    same_direction_heldout_paraphrase: float
    reverse_heldout_paraphrase: float
    reverse_in_place_heldout_paraphrase: float | None
    logprob: ReverseLogprobTest
    probe_last_layer_trained: float
    probe_last_layer_untrained: float
    chance: float

    def to_dict(self) -> dict[str, Any]:
        eq, above = self.logprob.equivalence, self.logprob.above
        return {
            "same_direction_train": self.same_direction_train,
            "reverse_train": self.reverse_train,
            "reverse_in_place_train": self.reverse_in_place_train,
            "same_direction_heldout_paraphrase": self.same_direction_heldout_paraphrase,
            "reverse_heldout_paraphrase": self.reverse_heldout_paraphrase,
            "reverse_in_place_heldout_paraphrase": self.reverse_in_place_heldout_paraphrase,
            "reverse_logprob_p": self.logprob.p,
            "reverse_logprob_mean_diff": eq.mean_diff,
            "reverse_logprob_equivalence_p": eq.p_equivalence,
            "reverse_logprob_ci": [eq.ci_low, eq.ci_high],
            "reverse_logprob_n": eq.n,
            "reverse_logprob_p_above": above.p_above,
            "reverse_logprob_ci95": above.ci95,
            "reverse_logprob_detectable_nats": above.detectable_nats,
            "probe_last_layer_trained": self.probe_last_layer_trained,
            "probe_last_layer_untrained": self.probe_last_layer_untrained,
            "chance": self.chance,
        }
