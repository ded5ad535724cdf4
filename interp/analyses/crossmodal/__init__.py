"""Cross-modal information flow in a vision-language model by attention knockout
(Zhang et al. 2024, "Cross-modal Information Flow in Multimodal Large Language Models").

On correctly answered test questions, for each layer ``l`` and a window of ``k`` layers
around it, attention edges between position groups are blocked in all heads (causal mask
kept; see :mod:`interp.methods.knockout`) and the model's own answer probability is
compared with the clean run: ``score = (p_new - p_base) / p_base * 100``, averaged over
samples, per question type. Edges: image->question, image->last, question->last,
last->last, object patches->question, non-object patches->question, their size-matched
controls (a random patch set as large as the object patches, and the rest of the image) ->
question, and everything->last as a sanity check. Knockouts into the last position use the
key/value-reusing fast path, checked against a full recompute in every run; the complete
cut (everything->last in every layer) is checked against an independent forward with the last
position's attention output removed. Peak and onset layers come with bootstrap intervals over
the analysed questions. A logit lens at the last position reads the answer probability layer
by layer, with and without the final norm.

Positions: ``[BOS] [64 image patches] [question ...] [last question token "?"]``; the
"question" group is every question token but the last.

The model is a zoo VLM (``zoo:vlm-tiny`` / ``zoo:vlm-6l``; :mod:`interp.models.vlm`). A
Hugging Face LLaVA runs through :func:`run_llava` (``model: hf-llava:<hub name | directory |
tiny-random>``; masked forward in :mod:`interp.models.llava`).

The steps, each a module of this package, pass frozen dataclasses (:mod:`.types`):

- ``config.py``: :class:`Config`, the edges (:data:`EDGES`, :data:`EDGE_NAMES`,
  :data:`PATCH_SETS`).
- ``questions.py``: the model, unseen test questions (:class:`Questions`), its own answers
  (:class:`CleanAnswers`).
- ``sweeps.py``: every edge and window with the checks along the way (:class:`Sweeps`), the
  float64 rerun (:class:`Float64Checks`), the logit lens at the last position.
- ``stats.py``: mean curves, peaks, onsets, excess drops and their bootstrap intervals
  (:class:`Summary`, :class:`Intervals`).
- ``criteria.py``, ``report.py``: the result's criteria, metrics, arrays and figures.
- ``llava.py``: the Hugging Face LLaVA path.
"""

from __future__ import annotations

from interp.analyses import register
from interp.analyses.crossmodal.config import EDGE_NAMES, EDGES, PATCH_SETS, Config
from interp.analyses.crossmodal.criteria import add_claims, add_sanity
from interp.analyses.crossmodal.llava import llava_sweep, run_llava
from interp.analyses.crossmodal.questions import (
    _training_keys,
    clean_answers,
    clean_predictions,
    load_vlm,
    types_at_chance,
    unseen_questions,
)
from interp.analyses.crossmodal.report import add_arrays, add_figures, add_metrics
from interp.analyses.crossmodal.stats import (
    excess_drops,
    layer_intervals,
    peaks_and_onsets,
    summarise,
)
from interp.analyses.crossmodal.sweeps import (
    fast_vs_full_float64,
    knockout_sweeps,
    last_row_attention,
    logit_lens_last,
)
from interp.analyses.crossmodal.types import (
    CleanAnswers,
    Float64Checks,
    Interval,
    Intervals,
    Questions,
    Summary,
    Sweeps,
)
from interp.results import Result
from interp.utils import seed_everything


@register(
    "crossmodal",
    Config,
    title="Cross-modal information flow (attention knockout in a VLM)",
    paper="Zhang et al. 2024, Cross-modal Information Flow in Multimodal Large Language Models",
    figure_order=(
        "knockout_edges",
        "knockout_by_type",
        "object_vs_nonobject",
        "logit_lens",
        "last_attention_image",
    ),
)
def run(config: Config) -> Result:
    """Attention knockout between image, question and last positions of a tiny VLM."""
    seed_everything(config.seed)
    if config.model.startswith("hf-llava:"):
        return run_llava(config)
    m = load_vlm(config)
    questions = unseen_questions(config)
    clean = clean_answers(m, questions.test, config)
    sw = knockout_sweeps(m, questions.test, clean, config)
    f64 = fast_vs_full_float64(m, sw.checks, config.window)
    summary = summarise(questions.test, clean, sw, config)
    result = Result("crossmodal")
    add_metrics(result, m, config, questions, clean, sw, summary, f64)
    add_sanity(result, clean, sw, f64)
    add_claims(result, summary)
    add_arrays(result, m, config, questions.test, sw, summary)
    add_figures(result, config, summary)
    return result


__all__ = [
    "EDGES",
    "EDGE_NAMES",
    "PATCH_SETS",
    "CleanAnswers",
    "Config",
    "Float64Checks",
    "Interval",
    "Intervals",
    "Questions",
    "Summary",
    "Sweeps",
    "_training_keys",
    "clean_answers",
    "clean_predictions",
    "excess_drops",
    "fast_vs_full_float64",
    "knockout_sweeps",
    "last_row_attention",
    "layer_intervals",
    "llava_sweep",
    "load_vlm",
    "logit_lens_last",
    "peaks_and_onsets",
    "run",
    "run_llava",
    "summarise",
    "types_at_chance",
    "unseen_questions",
]
