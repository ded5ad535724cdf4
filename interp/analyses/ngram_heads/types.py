"""The typed values the steps of the n-gram heads analysis exchange.

Where a value is written to ``metrics.json``, ``as_json()`` gives the dict with the keys saved
runs and the dashboard read: they must not change."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from jaxtyping import Bool, Float, Int

from interp.data.ngram_heads import NextToken

# interp.methods.heads.model_head_scores: {n: {"mass"|"uniform"|"ratio": [hook, head]}}
HeadScores = dict[int, dict[str, np.ndarray]]
# each model's ridge-probe R^2 per residual read: {model: {hook: R^2}}
ProbeR2 = dict[str, dict[str, float]]


@dataclass(frozen=True)
class PromptSet:
    """The test prompts, one per unseen DFA, with the oracle's answers."""

    tokens: Int[torch.Tensor, "n T"]  # PAD-padded
    lengths: Int[np.ndarray, " n"]
    valid: Bool[torch.Tensor, "n T vocab"]  # valid next symbols
    scored: Bool[torch.Tensor, "n T"]  # positions that are scored
    n_dfas: int = 0
    n_excluded: int = 0  # training DFA languages kept out of the test set
    overlap: int = 0  # test languages among them (must be 0)

    def first(self, n: int) -> PromptSet:
        """The first ``n`` prompts."""
        return PromptSet(self.tokens[:n], self.lengths[:n], self.valid[:n], self.scored[:n], n)


@dataclass(frozen=True)
class BaselineChecks:
    """Checks of the metric code: the oracle accepts the prompts; the 2-gram baseline two ways."""

    oracle_valid_frac: float
    bigram_loop_acc: float  # accuracy of the plain-Python 2-gram baseline
    bigram_disagree: int  # scored positions where the two 2-gram baselines' greedy picks differ


@dataclass(frozen=True)
class NgramHeads:
    """n-gram head scores of the transformer and of the LSTM's n-gram layers, and the checks of
    the scorer on patterns whose answer is known."""

    scores: HeadScores
    best: dict[str, Any]  # interp.methods.heads.best_ngram_head: score, layer, head, n, mass, ...
    layer_scores: HeadScores | None  # the LSTM's hard-wired n-gram layers (None without them)
    ngram_layer_err: float | None  # its m=1 layer vs the plain-loop 2-gram head
    hand_err: float  # the scorer on a perfect 2-gram head and on uniform attention


@dataclass(frozen=True)
class HeadAblation:
    """Accuracy drop when the top n-gram heads are ablated vs random head sets of the same size."""

    how: str
    top_heads: list[tuple[int, int]]
    clean_accuracy: float
    top_accuracy: float
    drop_top: float
    random_heads: list[list[list[int]]]
    drop_random: list[float]
    significance: dict[str, Any]  # interp.methods.heads.ablation_significance
    drop_random_mean: float
    noop_gap: float  # max |probabilities with empty edits - clean| (a sanity check)

    def as_json(self) -> dict[str, Any]:
        """``metrics["ablation"]`` (the sanity gap is a criterion, not a metric)."""
        return {k: v for k, v in asdict(self).items() if k != "noop_gap"}


@dataclass(frozen=True)
class ExampleAttention:
    """The best head's pattern on one prompt, its n-gram matches and the token strings."""

    pattern: Float[np.ndarray, "query key"]
    matches: Bool[np.ndarray, "query key"]
    str_tokens: list[str]


@dataclass(frozen=True)
class VersusBaselines:
    """The transformer against the in-context 2- and 3-gram baselines
    (:func:`interp.data.ngram_heads.accuracy_difference`), and a sentence saying it."""

    two_gram: dict[str, Any]
    three_gram: dict[str, Any]
    statement: str

    def as_json(self) -> dict[str, Any]:
        """``metrics["transformer_vs_ngram_baselines"]``."""
        return {"2gram": self.two_gram, "3gram": self.three_gram, "statement": self.statement}


@dataclass(frozen=True)
class Measured:
    """Everything one run measured, read by the criteria, metrics, arrays and figures."""

    names: dict[str, str]  # model key -> model name
    prompts: PromptSet
    evals: dict[str, NextToken]  # per model and baseline ("oracle", "2gram", "3gram")
    checks: BaselineChecks
    lstm_gap: float | None  # fused vs unrolled LSTM logits (None: no unrolled LSTM)
    heads: NgramHeads
    ablation: HeadAblation
    probe: ProbeR2
    accuracy: dict[str, float]
    tvd: dict[str, float]
    versus: VersusBaselines
    example: ExampleAttention
