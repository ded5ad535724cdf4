"""Figure and table helpers shared by the dashboard, the demo summary and notebooks.

Plotting consumes data and returns plain structures (lists of dicts, pandas frames,
plotly figures); it never trains, traces or loads a model. Nothing here imports
streamlit, so the helpers work in notebooks and tests too.

    rows = criteria_rows(result.criteria)    # list of dicts, one per criterion
    frame = criteria_frame(result.criteria)  # the same as a pandas DataFrame
    strip = verdict_strip(result.criteria)   # a sentence per kind: "sanity checks: 3 of 3 hold"
    flat = flatten_metrics(result.metrics)   # {"loss.train": 0.3, ...}, criteria left out
    names = ordered_figures(result.figures, analysis.figure_order)
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from interp.utils import seed_label

# Verdicts as the dashboard words them: a sanity failure means the code is wrong,
# a claim that does not hold is an honest finding at our scale, and a performance
# target (the benchmark's kind) is met or missed, never "a claim".
VERDICT_HOLDS = "holds"
VERDICT_SANITY_FAILS = "FAILS (sanity: implementation problem)"
VERDICT_CLAIM_FAILS = "does not hold (claim)"
VERDICT_TARGET_MET = "met (target)"
VERDICT_TARGET_MISSED = "missed (performance target)"

KINDS = ("sanity", "claim", "target")  # the order tables and strips list them in
# How a verdict strip names each kind and what "held" means for it.
KIND_WORDS = {
    "sanity": ("sanity checks", "hold"),
    "claim": ("paper claims", "hold"),
    "target": ("performance targets", "met"),
}

CRITERIA_COLUMNS = ("verdict", "kind", "name", "value", "op", "threshold", "description")
RUN_COLUMNS = (
    "experiment",
    "analysis",
    "preset",
    "date",
    "criteria held",
    "sanity failures",
    "run",
)


def verdict(criterion: Any) -> str:
    """The plain-words verdict of a :class:`interp.Criterion` (or its dict form)."""
    holds, kind = _get(criterion, "holds"), _get(criterion, "kind")
    if kind == "target":
        return VERDICT_TARGET_MET if holds else VERDICT_TARGET_MISSED
    if holds:
        return VERDICT_HOLDS
    return VERDICT_SANITY_FAILS if kind == "sanity" else VERDICT_CLAIM_FAILS


def _kind_rank(kind: Any) -> int:
    return KINDS.index(kind) if kind in KINDS else len(KINDS)


def criteria_rows(criteria: Iterable[Any]) -> list[dict[str, Any]]:
    """One dict per criterion with the columns of :data:`CRITERIA_COLUMNS`: sanity checks first,
    then claims, then performance targets."""
    rows = [
        {
            "verdict": verdict(c),
            "kind": _get(c, "kind"),
            "name": _get(c, "name"),
            "value": _get(c, "value"),
            "op": _get(c, "op"),
            "threshold": _get(c, "threshold"),
            "description": _get(c, "description") or "",
        }
        for c in criteria
    ]
    return sorted(rows, key=lambda r: _kind_rank(r["kind"]))  # stable: keeps each kind's order


def criteria_frame(criteria: Iterable[Any]):
    """:func:`criteria_rows` as a pandas DataFrame (empty, with the columns, when there are
    none)."""
    return pd.DataFrame(criteria_rows(criteria), columns=list(CRITERIA_COLUMNS))


def seeds_rows(criteria: Iterable[Any], seeds: Sequence[Any]) -> list[dict[str, Any]]:
    """A seeds run's criteria (:mod:`interp.seeds`): one dict per criterion with ``seeds held``
    ("2 of 3"), kind, name, the median value, op, threshold and one ``seed <s>`` column per seed."""
    rows = []
    for c in criteria:
        held, n, values = _get(c, "seeds_held"), _get(c, "seeds_run"), _get(c, "values") or []
        row = {
            "seeds held": f"{held} of {n}" if n is not None else "",
            "kind": _get(c, "kind"),
            "name": _get(c, "name"),
            "median value": _get(c, "value"),
            "op": _get(c, "op"),
            "threshold": _get(c, "threshold"),
        }
        # a criterion without per-seed values (a hand-written or older metrics.json) leaves the
        # seed columns empty instead of failing the table
        row.update({f"seed {s}": v for s, v in zip(seeds, values, strict=False)})
        rows.append(row)
    return sorted(rows, key=lambda r: _kind_rank(r["kind"]))


def seeds_frame(criteria: Iterable[Any], seeds: Sequence[Any]):
    """:func:`seeds_rows` as a pandas DataFrame."""
    return pd.DataFrame(seeds_rows(criteria, seeds))


def criteria_counts(criteria: Iterable[Any]) -> dict[str, int]:
    """``{"n", "hold", "sanity_failures", "claims_not_holding", "targets_missed"}``."""
    crit = list(criteria)

    def failing(kind: str) -> int:
        return sum(_get(c, "kind") == kind and not _get(c, "holds") for c in crit)

    return {
        "n": len(crit),
        "hold": sum(bool(_get(c, "holds")) for c in crit),
        "sanity_failures": failing("sanity"),
        "claims_not_holding": failing("claim"),
        "targets_missed": failing("target"),
    }


def verdict_strip(criteria: Iterable[Any]) -> list[dict[str, Any]]:
    """One entry per kind of criterion present, in :data:`KINDS` order:
    ``{"kind", "held", "n", "ok", "text"}`` with ``text`` in plain words, e.g.
    ``"sanity checks: all 3 hold"``, ``"paper claims: 1 of 3 hold"``,
    ``"performance targets: 4 of 6 met"``. ``ok``: every criterion of the kind holds."""
    crit = list(criteria)
    out = []
    for kind in KINDS:
        mine = [c for c in crit if _get(c, "kind") == kind]
        if not mine:
            continue
        held, n = sum(bool(_get(c, "holds")) for c in mine), len(mine)
        noun, verb = KIND_WORDS[kind]
        if held == n:
            text = f"{noun}: all {n} {verb}" if n > 1 else f"{noun}: 1 of 1 {_singular(verb)}"
        else:
            text = f"{noun}: {held} of {n} {verb}"
        out.append({"kind": kind, "held": held, "n": n, "ok": held == n, "text": text})
    return out


def _singular(verb: str) -> str:
    return {"hold": "holds", "met": "met"}.get(verb, verb)


def headline_figure(figures: Iterable[str], order: Sequence[str] = ()) -> str | None:
    """The figure a page leads with: the first of ``order`` present, else the first by name."""
    names = ordered_figures(figures, order)
    return names[0] if names else None


def flatten_metrics(
    metrics: Mapping[str, Any], *, skip: Sequence[str] = ("criteria",)
) -> dict[str, float]:
    """Numeric scalars of a metrics dict, nested keys joined by dots; ``skip`` keys left out.

    Booleans, strings, lists and arrays are left out: only numbers that fit in a table
    cell. NaN and infinities are kept (they are findings, too).
    """
    out: dict[str, float] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif isinstance(value, bool):
            return
        elif isinstance(value, numbers.Real):  # int, float and numpy scalars
            out[prefix] = float(value)

    for key, value in metrics.items():
        if key not in skip:
            walk(str(key), value)
    return out


def metrics_frame(metrics: Mapping[str, Any]):
    """:func:`flatten_metrics` as a two-column pandas DataFrame (``metric``, ``value``)."""
    flat = flatten_metrics(metrics)
    return pd.DataFrame(
        {"metric": list(flat), "value": list(flat.values())}, columns=["metric", "value"]
    )


def ordered_figures(figures: Iterable[str], order: Sequence[str] = ()) -> list[str]:
    """Figure names: those in ``order`` first (in that order, if present), then the rest
    alphabetically."""
    names = set(figures)
    first = [n for n in dict.fromkeys(order) if n in names]
    return first + sorted(names - set(first))


def format_stamp(stamp: str) -> str:
    """``"20240131-094501"`` -> ``"2024-01-31 09:45:01"``; anything else unchanged."""
    s = str(stamp)
    if len(s) >= 15 and s[8] == "-" and s[:8].isdigit() and s[9:15].isdigit():
        return f"{s[:4]}-{s[4:6]}-{s[6:8]} {s[9:11]}:{s[11:13]}:{s[13:15]}"
    return s


def run_rows(runs: Iterable[Any]) -> list[dict[str, Any]]:
    """One dict per :class:`interp.runs.RunInfo` with the columns of :data:`RUN_COLUMNS` (a seeds
    run's preset reads e.g. ``"quick, seeds 0-2"``)."""
    return [
        {
            "experiment": r.experiment,
            "analysis": r.analysis,
            "preset": preset_label(r),
            "date": format_stamp(r.created),
            "criteria held": f"{r.n_hold}/{r.n_criteria}",
            "sanity failures": r.sanity_failures,
            "run": r.id,
        }
        for r in runs
    ]


def preset_label(run: Any) -> str:
    """``"quick"``, or ``"quick, seeds 0-2"`` for a seeds run."""
    seeds = list(getattr(run, "seeds", ()) or ())
    return f"{run.preset}, seeds {seed_label(seeds)}" if seeds else str(run.preset)


def runs_frame(runs: Iterable[Any]):
    """:func:`run_rows` as a pandas DataFrame."""
    return pd.DataFrame(run_rows(runs), columns=list(RUN_COLUMNS))


def _get(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)


__all__ = [
    "VERDICT_HOLDS",
    "VERDICT_SANITY_FAILS",
    "VERDICT_CLAIM_FAILS",
    "VERDICT_TARGET_MET",
    "VERDICT_TARGET_MISSED",
    "KINDS",
    "CRITERIA_COLUMNS",
    "RUN_COLUMNS",
    "verdict",
    "criteria_rows",
    "criteria_frame",
    "criteria_counts",
    "seeds_rows",
    "seeds_frame",
    "preset_label",
    "verdict_strip",
    "headline_figure",
    "flatten_metrics",
    "metrics_frame",
    "ordered_figures",
    "format_stamp",
    "run_rows",
    "runs_frame",
]
