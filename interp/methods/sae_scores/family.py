"""The head-scorer family: every way of scoring heads that the circuit-discovery comparison runs
(the paper's SAE scores, ours, and the SAE-free baselines), with one signature and a registry.

A scorer is ``fn(x: ScoreInput) -> Scored``: it reads what it needs from one prompt draw's
:class:`ScoreInput` (codes, features, the SAE, gradients, patching effects) and returns a score
per head (higher = more likely in the circuit), and where it has them, per-pair effects (a
*magnitude* scorer: ``heads = |mean over pairs|``) or per-head-pair edge scores. Registering
says how the analysis runs it::

    @register("paper_node", label="SAE node (paper)", per_mode=True, uses_sae=True)
    def paper_node(x: ScoreInput) -> Scored: ...

    get("paper_node").fn(x)      # KeyError listing close names for an unknown one
    names()                      # in registration order: the order of the analysis's methods

Adding a baseline is one registered function here; the analysis's method list, its controls
and its figure labels follow from the registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import torch
from jaxtyping import Bool, Float, Int

from interp.methods.sae_scores.codes import pool_positions
from interp.methods.sae_scores.scorers import (
    code_flip_grams,
    code_shift_scores,
    feature_diff_grams,
    latent_attribution,
    paired_shift_scores,
    paper_edge_scores,
    paper_node_scores,
)
from interp.utils import Registry

Cost = Literal["outputs", "sae", "grads", "act_patch", "attr_patch"]


@dataclass(frozen=True)
class ScoreInput:
    """What a scorer may read on one prompt draw (and, for a per-mode scorer, one feature mode).

    ``labels``/``pairs`` ``[n]``: positive or not, and pair ids (the real ones, or the null
    control's). The fields a scorer does not need may be None (the planted control has no
    gradients or patching; the SAE-free baselines no codes)."""

    labels: Bool[np.ndarray, " n"]
    pairs: Int[np.ndarray, " n"]
    n_heads: int
    seed: int
    n_perm: int = 200
    statistic: Literal["chi2", "mi"] = "chi2"
    codes: Int[np.ndarray, "n slots heads"] | None = None
    feats: Float[torch.Tensor, "n slots heads d"] | None = None
    sae: Any = None  # the SAE that made ``codes`` (interp.sae.model.SAE)
    grads: Float[torch.Tensor, "N slots heads d"] | None = None  # metric gradient, positives
    act: Float[np.ndarray, "N heads"] | None = None  # activation patching per pair
    attr: Float[np.ndarray, "N heads"] | None = None  # attribution patching per pair

    def relabelled(
        self, labels: Bool[np.ndarray, " n"], pairs: Int[np.ndarray, " n"], seed: int
    ) -> ScoreInput:
        """The same draw under other labels and pairs (the null control), with its own seed."""
        return replace(self, labels=labels, pairs=pairs, seed=seed)

    def need(self, field: str) -> Any:
        value = getattr(self, field)
        if value is None:
            raise ValueError(f"this scorer reads ScoreInput.{field}, which is None here")
        return value


@dataclass(frozen=True)
class Scored:
    """A scorer's output: ``heads [heads]``; ``per_pair [N, heads]`` for a magnitude scorer
    (``heads`` is ``|per_pair.mean(0)|``; its null flips each pair's sign); ``edges [heads,
    heads]`` for a scorer that also scores head pairs."""

    heads: Float[np.ndarray, " heads"]
    per_pair: Float[np.ndarray, "N heads"] | None = None
    edges: Float[np.ndarray, "heads heads"] | None = None


def magnitude(per_pair: Float[np.ndarray, "N heads"]) -> Scored:
    """A magnitude scorer's output from its per-pair effects."""
    return Scored(np.abs(per_pair.mean(0)), per_pair=per_pair)


@dataclass(frozen=True)
class Scorer:
    """A registered scorer and how the analysis runs it.

    per_mode: runs on each feature mode (method ``"<name>.<mode>"``); else once per draw.
    uses_sae: reads SAE codes or the SAE. needs_model: reads gradients or patching (so it is
    not run on the planted control, which has no model behind it). calibrated: ranked in its
    own null, so the null control must give it AUC 0.5 (a sanity criterion). cost: the data
    steps whose wall time counts toward its runtime, besides its own."""

    name: str
    fn: Callable[[ScoreInput], Scored]
    label: str
    per_mode: bool = False
    uses_sae: bool = False
    needs_model: bool = False
    calibrated: bool = False
    cost: tuple[Cost, ...] = ()


_SCORERS: Registry[Scorer] = Registry("head scorer", ordered=True)


def register(
    name: str,
    *,
    label: str,
    per_mode: bool = False,
    uses_sae: bool = False,
    needs_model: bool = False,
    calibrated: bool = False,
    cost: tuple[Cost, ...] = (),
) -> Callable[[Callable[[ScoreInput], Scored]], Callable[[ScoreInput], Scored]]:
    """Decorator: register head scorer ``name`` (a taken name is a ``ValueError``; a dot would
    clash with the ``"<name>.<mode>"`` method names)."""
    if "." in name:
        raise ValueError(f"scorer name {name!r} must not contain '.'")

    def deco(fn: Callable[[ScoreInput], Scored]) -> Callable[[ScoreInput], Scored]:
        _SCORERS.add(
            name, Scorer(name, fn, label, per_mode, uses_sae, needs_model, calibrated, tuple(cost))
        )
        return fn

    return deco


names = _SCORERS.names  # the registered scorers, in registration order
get = _SCORERS.get  # the scorer registered as ``name`` (KeyError listing close names)


def labels() -> dict[str, str]:
    """``{scorer: label}`` for figures and tables."""
    return {k: s.label for k, s in _SCORERS.items()}


# ------------------------------------------------------------------ the members
def _rows(
    x: ScoreInput,
) -> tuple[
    Int[np.ndarray, "rows heads"], Bool[np.ndarray, " rows"], Int[np.ndarray, " rows"] | None
]:
    return pool_positions(x.need("codes"), x.labels, x.pairs)


@register("paper_node", label="SAE node (paper)", per_mode=True, uses_sae=True)
def paper_node(x: ScoreInput) -> Scored:
    """The paper's node score (:func:`paper_node_scores`) on the codes as rows."""
    rows, row_labels, _ = _rows(x)
    return Scored(paper_node_scores(rows, row_labels))


@register("paper_edge", label="SAE edge (paper)", per_mode=True, uses_sae=True)
def paper_edge(x: ScoreInput) -> Scored:
    """The paper's edge-based head score and its co-occurrence counts per head pair
    (:func:`paper_edge_scores`, the paper's ``heads**2 // 2`` list entries)."""
    rows, row_labels, _ = _rows(x)
    heads, edges = paper_edge_scores(rows, row_labels)
    return Scored(heads, edges=edges)


@register("ours", label="SAE code shift (ours)", per_mode=True, uses_sae=True, calibrated=True)
def ours(x: ScoreInput) -> Scored:
    """Our code-shift scorer (:func:`code_shift_scores`), ranked in its paired null."""
    rows, row_labels, row_pairs = _rows(x)
    return Scored(
        code_shift_scores(rows, row_labels, row_pairs, x.n_perm, x.statistic, x.seed)["score"]
    )


@register(
    "flip", label="SAE paired code flip (ours)", per_mode=True, uses_sae=True, calibrated=True
)
def flip(x: ScoreInput) -> Scored:
    """Our paired code-flip scorer (:func:`code_flip_grams`, :func:`paired_shift_scores`)."""
    grams = code_flip_grams(x.need("codes"), x.labels, x.pairs)
    return Scored(paired_shift_scores(grams, x.n_perm, x.seed)["score"])


@register(
    "weighted",
    label="SAE latents x effect (ours)",
    per_mode=True,
    uses_sae=True,
    needs_model=True,
    cost=("grads",),
)
def weighted(x: ScoreInput) -> Scored:
    """Latent attribution (:func:`latent_attribution`) of the positives (the first ``N`` rows)
    against their counterfactuals (the last ``N``): a magnitude scorer."""
    feats = x.need("feats")
    n = len(feats) // 2
    return magnitude(latent_attribution(x.need("sae"), feats[:n], feats[n:], x.need("grads")))


@register("raw_diff", label="raw output shift (no SAE)", per_mode=True, calibrated=True)
def raw_diff(x: ScoreInput) -> Scored:
    """The ``flip`` statistic on the raw head-output differences (:func:`feature_diff_grams`)."""
    grams = feature_diff_grams(x.need("feats"), x.labels, x.pairs)
    return Scored(paired_shift_scores(grams, x.n_perm, x.seed)["score"])


@register(
    "act_patch",
    label="activation patching, other prompts (retest ceiling)",
    needs_model=True,
    cost=("act_patch",),
)
def act_patch(x: ScoreInput) -> Scored:
    """Activation patching of each head from the counterfactual, per pair (magnitude)."""
    return magnitude(x.need("act"))


@register(
    "attr_patch",
    label="attribution patching (baseline)",
    needs_model=True,
    cost=("attr_patch",),
)
def attr_patch(x: ScoreInput) -> Scored:
    """Attribution patching of each head, per pair (magnitude)."""
    return magnitude(x.need("attr"))


@register("random", label="random")
def random(x: ScoreInput) -> Scored:
    """Uniform random scores drawn from the input's seed."""
    return Scored(np.random.default_rng(x.seed).random(x.n_heads))


@register("ties", label="all tied")
def ties(x: ScoreInput) -> Scored:
    """Every head tied: its ROC AUC must be exactly 0.5."""
    return Scored(np.zeros(x.n_heads))
