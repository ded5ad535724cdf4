"""Bigram subnetworks (Chang & Bergen 2025): the fewest weights that make an LM a bigram model.

Continuous-sparsification masks (:mod:`interp.methods.masks`) are trained on every block
matrix of a trained zoo LM, frozen, so that the masked model's next-token distribution
matches the corpus bigram distribution ``P(w_i | w_{i-1})`` (:mod:`interp.data.bigram`),
for a sweep of density penalties ``lambda``. On held-out text the analysis then measures:

- the Pearson r between per-token surprisals of each subnetwork and of the bigram model
  (infinite bigram surprisals dropped), against the fraction of maskable weights kept, and the
  same r of the zero mask (nothing kept: the embedding -> unembedding path alone), the floor a
  subnetwork has to beat;
- where the chosen subnetwork's weights live (kept fraction per layer, matrix and head);
- mean surprisal of the full model, the subnetwork alone, a random subnetwork of the same
  structure (entries shuffled within each matrix), the complement (everything but the
  subnetwork) and a random complement;
- its overlap with an "optimal pruning" mask (target: the full model's own softmax),
  against a null of within-matrix row shuffles, with a one-sided p-value;
- per-layer ridge maps of the residual stream to the current token's embedding
  (recall@k among all tokens) and to the final residual stream (read through the
  unembedding: Pearson r with the real surprisals), for the full model, the subnetwork
  and the random subnetwork.

The package: :mod:`.config` (``Config``), :mod:`.types` (the typed values the steps exchange),
:mod:`.measures` (surprisals, Pearson r, ridge maps), :mod:`.steps` (the pipeline's steps),
:mod:`.criteria` (metrics and criteria) and :mod:`.pipeline` (``run``, arrays and figures).
"""

from __future__ import annotations

from interp.analyses.bigram.config import Config
from interp.analyses.bigram.criteria import add_metrics_and_criteria
from interp.analyses.bigram.measures import (
    SoftMask,
    capture_resid,
    corpus_streams,
    pearson_finite,
    residual_maps,
    ridge_fit,
    surprisals,
    windows,
)
from interp.analyses.bigram.pipeline import add_arrays_and_figures, run
from interp.analyses.bigram.steps import (
    all_residual_maps,
    choose,
    lambda_sweep,
    mask_config,
    mask_sanity,
    planted_check,
    pruning_overlap,
    removal_test,
    setup,
    size_point,
    surprisal_table,
    zero_mask_floor,
)
from interp.analyses.bigram.types import (
    Choice,
    CorpusChoice,
    CorpusStreams,
    MaskGaps,
    Measured,
    PruningOverlap,
    Removal,
    ResidualMap,
    ResidualMaps,
    Setup,
    SizePoint,
    SurprisalTable,
    SweepPoint,
    ZeroMaskFloor,
)

__all__ = [
    "Choice",
    "Config",
    "CorpusChoice",
    "CorpusStreams",
    "MaskGaps",
    "Measured",
    "PruningOverlap",
    "Removal",
    "ResidualMap",
    "ResidualMaps",
    "Setup",
    "SizePoint",
    "SoftMask",
    "SurprisalTable",
    "SweepPoint",
    "ZeroMaskFloor",
    "add_arrays_and_figures",
    "add_metrics_and_criteria",
    "all_residual_maps",
    "capture_resid",
    "choose",
    "corpus_streams",
    "lambda_sweep",
    "mask_config",
    "mask_sanity",
    "pearson_finite",
    "planted_check",
    "pruning_overlap",
    "removal_test",
    "residual_maps",
    "ridge_fit",
    "run",
    "setup",
    "size_point",
    "surprisals",
    "surprisal_table",
    "windows",
    "zero_mask_floor",
]
