"""The crossmodal analysis's settings and the edges it knocks out."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from interp.fields import Count, Device, ModelName, NonNegInt, Seed

EDGES = (
    ("image", "question"),
    ("image", "last"),
    ("question", "last"),
    ("last", "last"),
    ("object", "question"),
    ("nonobject", "question"),
    ("random", "question"),
    ("nonrandom", "question"),
    ("all", "last"),
)
# The patch-set edges and their size-matched random controls, as compared in the run.
PATCH_SETS = ("object->question", "random->question", "nonobject->question", "nonrandom->question")
EDGE_NAMES = tuple(f"{s}->{d}" for s, d in EDGES)


class Config(BaseModel):
    """Settings of the cross-modal knockout analysis."""

    model_config = ConfigDict(extra="forbid")

    model: ModelName = "zoo:vlm-tiny"
    n_test: Count = 300
    window: Count = 1
    batch_size: Count = 64
    n_dashboard_samples: NonNegInt = 12
    # the paper analyses correctly answered questions only (False: all, for untrained models)
    only_correct: bool = True
    # batches per question type whose fast sweep is compared with a full recompute
    check_batches: NonNegInt = 1
    n_bootstrap: Count = 1000  # resamples of the analysed questions for the peak / onset intervals
    device: Device = "cpu"
    seed: Seed = 0
