"""Reversal-curse probes: causal vs masked LMs on synthetic facts (Berglund et al. 2023;
Kitouni et al. 2024 for MLM-U).

Models trained on "A is B" facts (zoo recipes in :mod:`interp.models.recipes.reversal`:
a causal LM, a masked LM at a fixed 15% rate and MLM-U with a uniform masking rate, on
token-level and text-level facts, several seeds) are asked each fact in both directions.

Measures, per model, direction (``n2d``: name given, description asked; ``d2n``: the
reverse), group (trained ``name_first``, ``desc_first`` or ``both``) and template split
(training templates vs held-out paraphrases, kept apart so that paraphrase failure is
not mistaken for reversal failure):

- exact match of the completion (:mod:`interp.methods.completion`): greedy for causal
  models; for masked models the slot of the target's length is filled with ``<|mask|>``
  and filled **left to right**, one token per forward (argmax at the leftmost masked slot,
  which is then revealed). The reverse question is asked two ways: **order swapped** (the
  asked entity ends a sentence of the never-trained order, ``accuracy``) and, for masked
  models, **in place** (the asked entity masked inside its trained sentence,
  ``accuracy_in_place``). Failing order swapped but not in place is a failure to transfer
  the fact to a new sentence order, not the factorization curse (a model that cannot
  predict an earlier entity from a later one fails both);
- the log-probability of the correct target vs ``n_random`` random targets of the same
  group (causal: teacher forcing; masked: the same left-to-right chain rule). "No
  difference" is an equivalence test: TOST (two one-sided t-tests, scipy) of the per-pair
  differences against ``+-equivalence_margin`` nats, with the matching 90% confidence
  interval; a Wilcoxon signed-rank p (difference or not) is reported beside it;
- linear probes on the residual stream (``m.resid_names()``: the embedding, then each
  block's output) at the query position (the last prompt position
  for causal models, the first masked slot for masked ones). A ridge probe regresses the
  mean unembedding vector of the target's tokens; it is trained on entities whose facts
  were trained in that direction and tested, by nearest target among the group, on
  held-out entities trained in that direction vs the group never trained in it. Training
  on other entities keeps the probe from memorising the name <-> description map itself.

The steps, each a module of this package, pass frozen dataclasses (:mod:`.types`):
``config.py`` (:class:`Config`), ``evaluate.py`` (load each model, measure it:
:class:`ModelEval`, :class:`Evaluations`), ``stats.py`` (the log-prob tests:
:class:`EquivalenceTest`, :class:`AboveRandomTest`), ``summary.py`` (:class:`Arrays`,
:class:`ModelSummary`), ``criteria.py`` and ``report.py`` (metrics, figures).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from interp.analyses import register
from interp.analyses.reversal.config import PROBE_KINDS, Config
from interp.analyses.reversal.criteria import add_criteria, reverse_claims
from interp.analyses.reversal.evaluate import (
    evaluate_model,
    evaluate_models,
    load_fact_model,
    model_names,
    probe_accuracy,
    probe_model,
    training_summary,
)
from interp.analyses.reversal.report import figures, metrics
from interp.analyses.reversal.stats import (
    above_random_test,
    equivalence_test,
    reverse,
    reverse_logprob_test,
    same_direction,
)
from interp.analyses.reversal.summary import stack_arrays, summarise
from interp.analyses.reversal.types import (
    AboveRandomTest,
    Arrays,
    EquivalenceTest,
    Evaluations,
    FactModel,
    ModelEval,
    ModelRow,
    ModelSummary,
    ReverseLogprobTest,
    TrainingSummary,
)
from interp.data.reversal import OBJECTIVE_NAMES

# the completion methods, re-exported: the explorer and the tests use them from here
from interp.methods.completion import (
    complete,
    is_masked,
    query_residuals,
    slot_accuracy,
    target_logprob,
    top_completions,
)
from interp.models.builders import load_model_dir
from interp.models.io import MODEL_FILE
from interp.results import Result
from interp.tracing.model import Model
from interp.utils import seed_everything


@register(
    "reversal",
    Config,
    title="Reversal curse: causal vs masked LMs on synthetic facts",
    paper="Berglund et al. 2023, The Reversal Curse; Kitouni et al. 2024, The Factorization Curse",
    figure_order=("accuracy_grid", "accuracy_in_place", "logprob", "probe_by_layer"),
)
def run(config: Config) -> Result:
    """Ask synthetic facts in both directions of causal, 15%-masked and MLM-U transformers."""
    seed_everything(config.seed)
    rng = np.random.default_rng(config.seed)
    ev = evaluate_models(config, rng)
    result = Result("reversal")
    arrays = stack_arrays(config, ev)
    result.arrays.update(arrays.to_dict())
    summary = summarise(config, arrays, ev)
    result.metrics.update(metrics(config, ev, summary))
    add_criteria(result, config, summary, ev.facts_of)
    result.figures.update(figures(config, arrays, ev))
    return result


def _load_for_dashboard(path: str) -> Model:
    """Load a trained model from its directory (cached by the page; never trains)."""
    if not (Path(path) / MODEL_FILE).exists():
        raise FileNotFoundError(f"no model at {path}")
    return load_model_dir(path, device="cpu")


__all__ = [
    "OBJECTIVE_NAMES",
    "PROBE_KINDS",
    "AboveRandomTest",
    "Arrays",
    "Config",
    "EquivalenceTest",
    "Evaluations",
    "FactModel",
    "ModelEval",
    "ModelRow",
    "ModelSummary",
    "ReverseLogprobTest",
    "TrainingSummary",
    "above_random_test",
    "add_criteria",
    "complete",
    "equivalence_test",
    "evaluate_model",
    "evaluate_models",
    "is_masked",
    "load_fact_model",
    "model_names",
    "probe_accuracy",
    "probe_model",
    "query_residuals",
    "reverse",
    "reverse_claims",
    "reverse_logprob_test",
    "run",
    "same_direction",
    "slot_accuracy",
    "stack_arrays",
    "summarise",
    "target_logprob",
    "top_completions",
    "training_summary",
]
