"""Settings of the RNN-emulates-HMM analysis (:mod:`interp.analyses.rnn_hmm`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from interp.fields import Count, Device, Fraction, ModelName, Seed


class Config(BaseModel):
    """Settings of the RNN-emulates-HMM analysis."""

    model_config = ConfigDict(extra="forbid")

    model: ModelName = "zoo:hmm-chain2-h50"
    # more trainings of the same task (other seeds), each counted as trained or failed
    seed_models: list[ModelName] = Field(default_factory=list)
    # default: from the zoo recipe
    hmm_kind: Literal["chain", "fully_connected", "cyclic"] | None = None
    n_states: Count | None = None
    T: Count | None = None
    n_eval: Count = 5000
    n_long: Count = 16  # long noisy trajectories for the orbit / residency analysis
    long_T: Count = 600
    n_fixed_init: Count = 128
    fixed_iters: Count = 500  # Adam iterations before Newton polishing
    noise_trials: Count = 32
    # fresh-noise continuations per state for its residency time (the paper's 20)
    rt_samples: Count = 20
    rt_max_steps: Count = 50  # residency time cap (the paper's 50)
    n_ablation: Count = 2000  # sequences per ablation condition
    n_kick: Count = 3
    n_random_triples: Count = 10
    row_min_count: Count = 500
    row_tol: Fraction = 0.05
    switch_tol: Fraction = 0.01
    freq_tol: Fraction = 0.05
    gate_kick: bool = False  # gate (claim) the kick-neuron ablation; reported either way
    training_metrics: bool = True
    n_train_eval: Count = 1000
    device: Device = "cpu"
    seed: Seed = 0
