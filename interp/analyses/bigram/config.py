"""Settings of the bigram-subnetwork analysis (:mod:`interp.analyses.bigram`)."""

from __future__ import annotations

from typing import Annotated

import annotated_types as at
from pydantic import BaseModel, ConfigDict, Field

from interp.fields import (
    MAX_COUNT,
    CorpusSource,
    Count,
    Device,
    Fraction,
    ModelName,
    NonNegFloat,
    PositiveFloat,
    Seed,
)


class Config(BaseModel):
    """Settings of the bigram-subnetwork analysis."""

    model_config = ConfigDict(extra="forbid")

    model: ModelName = "zoo:code-lm-tiny"
    # more LMs: one mask each at the chosen lambda
    size_models: list[ModelName] = Field(default_factory=list)
    corpus: CorpusSource | None = None  # None: the zoo recipe's corpus (else stdlib)
    max_chars: Count | None = None  # None: the zoo recipe's (else 400k)
    # None: the zoo recipe's seed (so held-out files are the model's)
    corpus_seed: Seed | None = None
    lambdas: list[PositiveFloat] = Field(default_factory=lambda: [1.0, 5.0, 20.0])
    # at most this many steps per mask; each stops earlier when the paper's rule fires (undecided
    # masks < 1% of the kept ones). Only masks that stopped by the rule are read by
    # sparse_subnetwork_r.
    mask_steps: Count = 4000
    batch_size: Count = 16
    seq_len: Annotated[int, at.Ge(2), at.Le(MAX_COUNT)] = 128  # clipped to the model's n_ctx
    lr: PositiveFloat = 1e-2
    init_logit: Annotated[float, at.Ge(-100.0), at.Le(100.0)] = 0.1
    # paper 1.001; 1.004 lets soft and hard masks agree in ~1k steps
    temperature_growth: Annotated[float, at.Ge(1.0), at.Le(2.0)] = 1.004
    max_kept: Fraction = 0.10  # "sparse" for the r criterion and for choosing the main subnetwork
    pruning_mask: bool = True
    planted_check: bool = True  # sanity: the mask trainer recovers a planted subnetwork (seconds)
    n_null: Count = 10_000
    n_random: Count = 3  # random same-structure subnetworks averaged (sufficiency)
    # random same-structure sets removed (necessity test)
    n_random_removal: Annotated[int, at.Ge(10), at.Le(MAX_COUNT)] = 10
    n_eval: Count = 64  # held-out sequences for surprisals
    # held-out sequences for the residual-stream maps
    n_resid: Annotated[int, at.Ge(4), at.Le(MAX_COUNT)] = 48
    ridge_alpha: NonNegFloat = 1e-2  # relative to the mean eigenvalue of X^T X
    recall_k: Count = 10
    device: Device = "auto"
    seed: Seed = 0
