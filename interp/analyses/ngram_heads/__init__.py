"""In-context language learning on random DFAs: transformers vs LSTMs, and n-gram heads
(Akyurek et al. 2024, "In-context language learning: architectures and algorithms";
code: berlino/seq_icl).

Models trained on prompts of strings from random DFAs (see :mod:`interp.data.ngram_heads`) are
tested on prompts from DFAs whose languages never occurred in training. Per model:

- accuracy: the greedy next token is a valid transition of the DFA from the current
  prefix; positions whose next token is the separator are not scored;
- TVD between the model's next-token softmax and the true next-symbol distribution
  (uniform over the valid symbols). This is the true total variation distance,
  0.5 * sum |p - q|; the paper's code reported the L1 sum, which is 2x TVD.

Baselines: in-context 2-gram and 3-gram predictors with backoff (3-gram -> 2-gram ->
unigram counts of the prompt so far).

n-gram heads (:func:`interp.methods.heads.ngram_head_scores`, any model's ``hook_pattern``):
for query ``i`` the attention mass on keys ``j`` with ``x_{j-1} = x_i`` (2-gram) and also
``x_{j-2} = x_{i-1}`` (3-gram), against the mass uniform causal attention would put
there. The best head in layers >= 1 is reported; the top n-gram heads are ablated (their
``hook_z`` mean-ablated, :mod:`interp.methods.heads`) against random heads; ridge probes
(:mod:`interp.methods.probes`) read the in-context 2-gram statistics from each layer's
residual stream; the hard-wired n-gram layer's effect on the LSTM is its accuracy gain.

The package: :mod:`.config` (``Config``), :mod:`.types` (the typed values the steps exchange),
:mod:`.prompts` (test prompts, oracle and n-gram baselines, known patterns), :mod:`.measures`
(model probabilities, head scores, ablation, probes), :mod:`.criteria` (metrics and criteria)
and :mod:`.pipeline` (``run``, arrays and figures).
"""

from __future__ import annotations

from interp.analyses.ngram_heads.config import Config
from interp.analyses.ngram_heads.criteria import (
    TVD_NOTE,
    add_criteria,
    metrics,
    versus_baselines,
)
from interp.analyses.ngram_heads.measures import (
    absolute_ridge_alpha,
    by_position,
    example_attention,
    head_ablation,
    lstm_fused_gap,
    model_evals,
    model_probs,
    ngram_count_probe,
    ngram_heads_of,
)
from interp.analyses.ngram_heads.pipeline import LABELS, add_arrays_and_figures, run
from interp.analyses.ngram_heads.prompts import (
    baselines,
    causal_uniform,
    loop_2gram_pattern,
    training_dfa_keys,
    unseen_prompts,
)
from interp.analyses.ngram_heads.types import (
    BaselineChecks,
    ExampleAttention,
    HeadAblation,
    HeadScores,
    Measured,
    NgramHeads,
    ProbeR2,
    PromptSet,
    VersusBaselines,
)

# baselines and metrics of interp.data.ngram_heads, re-exported for tests and notebooks
from interp.data.ngram_heads import (
    PAD,
    TOKEN_STRINGS,
    NextToken,
    PromptConfig,
    accuracy_difference,
    dfa_set,
    next_token_metrics,
    ngram_baseline,
    ngram_baseline_loop,
    ngram_counts,
    scored_positions,
    test_prompts,
)

__all__ = [
    "LABELS",
    "PAD",
    "TOKEN_STRINGS",
    "TVD_NOTE",
    "BaselineChecks",
    "Config",
    "ExampleAttention",
    "HeadAblation",
    "HeadScores",
    "Measured",
    "NextToken",
    "NgramHeads",
    "ProbeR2",
    "PromptConfig",
    "PromptSet",
    "VersusBaselines",
    "absolute_ridge_alpha",
    "accuracy_difference",
    "add_arrays_and_figures",
    "add_criteria",
    "baselines",
    "by_position",
    "causal_uniform",
    "dfa_set",
    "example_attention",
    "head_ablation",
    "loop_2gram_pattern",
    "lstm_fused_gap",
    "metrics",
    "model_evals",
    "model_probs",
    "next_token_metrics",
    "ngram_baseline",
    "ngram_baseline_loop",
    "ngram_count_probe",
    "ngram_counts",
    "ngram_heads_of",
    "run",
    "scored_positions",
    "test_prompts",
    "training_dfa_keys",
    "unseen_prompts",
    "versus_baselines",
]
