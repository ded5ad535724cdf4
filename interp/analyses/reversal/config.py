"""The reversal analysis's settings."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from interp.fields import Count, Device, ModelName, NonNegFloat, Seed

# probe tested on entities trained / never trained in that direction
PROBE_KINDS = ("trained", "untrained")


class Config(BaseModel):
    """Settings of the reversal-curse probes."""

    model_config = ConfigDict(extra="forbid")

    # A zoo name or directory pattern with {variant}, {objective}, {size} and {seed} fields.
    model: ModelName = "zoo:reversal-{variant}-{objective}-{size}-s{seed}"
    size: Literal["quick", "full"] = "quick"
    variants: list[Literal["token", "text"]] = Field(default_factory=lambda: ["token", "text"])
    objectives: list[Literal["clm", "mlm15", "mlmu"]] = Field(
        default_factory=lambda: ["clm", "mlm15", "mlmu"]
    )
    n_seeds: Count = 1  # model seeds: seed, seed+1, ..., seed+n_seeds-1
    n_random: Count = 5  # random same-group targets per fact in the log-prob test
    # "no difference" of correct vs random log-probs: the mean difference lies within +-margin
    # nats (ln 2: the correct target, on average, less than twice as likely as a random one, or
    # half)
    equivalence_margin: NonNegFloat = math.log(2)
    # "no forward/backward gap" for the 15% masked LM: |forward - reverse in place|
    mlm15_gap_max: NonNegFloat = 0.1
    # a model's reverse accuracy is read only above this forward accuracy
    same_direction_min: NonNegFloat = 0.9
    logprob_templates: Count = 3  # templates per split scored by log-prob (all by accuracy)
    probe_l2: NonNegFloat = 1e-2  # ridge penalty, relative to the mean feature variance
    batch_size: Count = 512
    device: Device = "auto"
    seed: Seed = 0
