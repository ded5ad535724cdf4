"""The reversal result's metrics and figures (the criteria: :mod:`.criteria`)."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from interp.analyses.reversal.config import PROBE_KINDS, Config
from interp.analyses.reversal.types import Arrays, Evaluations, ModelSummary
from interp.data.reversal import DIRECTIONS, GROUPS, SPLITS
from interp.plotting import reversal as plots


def metrics(config: Config, ev: Evaluations, summary: dict[str, ModelSummary]) -> dict[str, Any]:
    """The run's metrics: its models, the per-model summary, the axes of the arrays and how
    the questions were asked and tested."""
    return {
        "models": [row.to_dict() for row in ev.models],
        "summary": {k: s.to_dict() for k, s in summary.items()},
        "variants": list(config.variants),
        "objectives": list(config.objectives),
        "seeds": [config.seed + k for k in range(config.n_seeds)],
        "groups": list(GROUPS),
        "directions": list(DIRECTIONS),
        "splits": list(SPLITS),
        "probe_kinds": list(PROBE_KINDS),
        "facts": {v: f.config.model_dump(mode="json") for v, f in ev.facts_of.items()},
        "masked_fill": "left to right: argmax at the leftmost masked slot, then reveal it",
        "reverse_ways": {
            "order_swapped": "the asked entity ends a sentence of the never-trained order",
            "in_place": "the asked entity masked inside its trained sentence (masked models only)",
        },
        "equivalence": {
            "margin_nats": config.equivalence_margin,
            "test": "TOST, two one-sided t-tests (scipy)",
            "ci_level": 0.9,
            "role": "reported; the claim is Berglund et al.'s one-sided paired t-test",
        },
    }


def figures(config: Config, arrays: Arrays, ev: Evaluations) -> dict[str, go.Figure]:
    """Accuracy grids (order swapped; in place for the masked models), log-probs and probes."""
    masked = [i for i, o in enumerate(config.objectives) if o != "clm"]
    figs = {
        "accuracy_grid": plots.accuracy_grid(
            arrays.accuracy, config.variants, config.objectives, GROUPS, DIRECTIONS, SPLITS
        ),
        "logprob": plots.logprob_figure(
            {
                v: (arrays.logprob_correct[v], arrays.logprob_random[v], arrays.pair_group[v])
                for v in config.variants
            },
            config.objectives,
            GROUPS,
            DIRECTIONS,
        ),
        "probe_by_layer": plots.probe_figure(
            arrays.probe_accuracy,
            config.variants,
            config.objectives,
            DIRECTIONS,
            PROBE_KINDS,
            {v: 1.0 / len(ev.facts_of[v].group_pairs("name_first")) for v in config.variants},
        ),
    }
    if masked:
        figs["accuracy_in_place"] = plots.accuracy_grid(
            arrays.accuracy_in_place[:, masked],
            config.variants,
            [config.objectives[i] for i in masked],
            GROUPS,
            DIRECTIONS,
            SPLITS,
            title="In place: the asked entity masked where it stands in a sentence of the "
            "opposite order (reverse cells: the trained sentence itself)",
        )
    return figs
