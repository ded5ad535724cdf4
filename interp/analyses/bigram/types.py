"""The typed values the steps of the bigram analysis exchange (:mod:`.steps`, :mod:`.criteria`).

Each ``as_json()`` gives the dict the run writes to ``metrics.json``: its keys are the ones saved
runs and the dashboard read, so they must not change."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import numpy as np
import torch
from jaxtyping import Float, Int

from interp.data.bigram import Bigram
from interp.methods.masks import Mask, Site

if TYPE_CHECKING:
    from interp.tracing.model import Model


class AppliesMask(Protocol):
    """What :func:`~interp.analyses.bigram.measures.surprisals` runs a model under: a hard
    :class:`~interp.methods.masks.Mask` or a soft one (:class:`~.measures.SoftMask`)."""

    def apply(self, m: Model, complement: bool = False) -> AbstractContextManager[Any]: ...


@dataclass(frozen=True)
class CorpusChoice:
    """Which corpus split the model is read on (its zoo recipe's, unless the config says)."""

    corpus: str
    max_chars: int
    seed: int

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CorpusStreams:
    """Train and held-out token streams of a corpus split (BOS before each file)."""

    train: Int[np.ndarray, " train_tokens"]
    heldout: Int[np.ndarray, " heldout_tokens"]
    source: CorpusChoice


@dataclass(frozen=True)
class Setup:
    """The model, its corpus split, the bigram model and the held-out windows of one run."""

    m: Model
    seq_len: int
    streams: CorpusStreams
    bigram: Bigram  # sparse counts; targets are built per batch
    eval_tokens: Int[torch.Tensor, "n_eval seq"]
    resid_tokens: Int[torch.Tensor, "n_resid seq"]
    bigram_s: Float[np.ndarray, "n_eval seq_minus_1"]  # bigram surprisals (inf where unseen)
    sites: list[Site]
    base_state: dict[str, torch.Tensor]  # the base weights before any mask (none is written)


@dataclass(frozen=True)
class SweepPoint:
    """One lambda of the sweep: the hard mask's kept fraction and surprisal r with the bigram
    model, the soft mask's r, and how its training ended."""

    lam: float
    kept_fraction: float
    r: float
    r_soft: float
    final_temperature: float
    loss: float
    steps: int
    stopped_early: bool
    final_undecided: float | None
    final_undecided_per_kept: float | None
    seconds: float
    by_component: dict[str, float] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"lambda": self.lam, **{k: v for k, v in asdict(self).items() if k != "lam"}}


class Choice(NamedTuple):
    """The main subnetwork (index into the sweep) and the sparse, converged masks."""

    best: int
    sparse_ok: list[int]


@dataclass(frozen=True)
class ZeroMaskFloor:
    """The model with nothing kept in its blocks: the r a subnetwork has to beat."""

    kept_fraction: float
    r: float
    loss: float

    def as_json(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class Removal:
    """The necessity test: removing the subnetwork vs removing random same-structure sets."""

    subnetwork_removed: float
    random_removed: list[float]
    random_mean: float
    random_std: float
    difference: float
    p_t: float
    p_rank: float
    n_random: int

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SurprisalTable:
    """Mean held-out surprisal (nats) of the full model and of each masked variant."""

    full: float
    subnetwork: float
    random_subnetwork: float
    complement: float
    random_complement: float
    bigram_model_finite: float  # the bigram model itself, on its finite entries
    bigram_infinite_frac: float
    removal: Removal

    def rows(self) -> dict[str, float]:
        """The five model rows (the surprisal bar chart)."""
        keys = ("full", "subnetwork", "random_subnetwork", "complement", "random_complement")
        return {k: getattr(self, k) for k in keys}

    def as_json(self) -> dict[str, float]:
        """``metrics["surprisal"]``: the rows and the bigram model's (removal is separate)."""
        return {
            **self.rows(),
            "bigram_model_finite": self.bigram_model_finite,
            "bigram_infinite_frac": self.bigram_infinite_frac,
        }


@dataclass(frozen=True)
class PruningOverlap:
    """Overlap of the subnetwork with an optimal-pruning mask against row-shuffle nulls."""

    pruning_kept_fraction: float
    observed: int
    observed_frac_of_subnetwork: float
    null_mean: float
    null_std: float
    p_value: float
    n_null: int
    pruning_loss: float
    seconds: float
    null: Int[np.ndarray, " n_null"] = field(repr=False, compare=False)

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "null"}


@dataclass(frozen=True)
class ResidualMap:
    """Per residual stream (embedding, then after each layer): recall@k of the current token and
    the r of the next-token surprisals read from a map to the final stream."""

    recall: Float[np.ndarray, " streams"]
    final_r: Float[np.ndarray, " streams"]

    def as_json(self) -> dict[str, list[float]]:
        return {"recall": self.recall.tolist(), "final_r": self.final_r.tolist()}


@dataclass(frozen=True)
class ResidualMaps:
    """The residual maps of the full model, the subnetwork and a random subnetwork."""

    full: ResidualMap
    subnetwork: ResidualMap
    random: ResidualMap

    def items(self) -> list[tuple[str, ResidualMap]]:
        return [("full", self.full), ("subnetwork", self.subnetwork), ("random", self.random)]


@dataclass(frozen=True)
class MaskGaps:
    """Largest gaps of the mask sanity checks (each 0 when masks act as specified)."""

    ones: float  # all-ones hard mask vs the base model (logits)
    zeros: float  # all-zeros mask vs those matrices zeroed (logits)
    base: float  # base weights after the run vs before


@dataclass(frozen=True)
class SizePoint:
    """One bigram mask on another LM at the chosen lambda."""

    model: str
    n_layers: int
    kept_fraction: float
    r: float
    by_component: dict[str, float]
    l0_mlp_margin: float

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Measured:
    """Everything one run measured, read by :mod:`.criteria` and the arrays and figures."""

    full_s: Float[np.ndarray, "n_eval seq_minus_1"]
    sweep: list[SweepPoint]
    choice: Choice
    mask: Mask  # the chosen subnetwork
    lam: float  # its lambda
    table: SurprisalTable
    overlap: PruningOverlap | None  # None when pruning_mask is off
    resid: ResidualMaps
    gaps: MaskGaps
    sizes: list[SizePoint]
    floor: ZeroMaskFloor
    planted: dict[str, Any]  # interp.methods.planted.planted_recovery (empty when off)
    seconds: float

    @property
    def chosen(self) -> SweepPoint:
        return self.sweep[self.choice.best]
