"""Helpers every dashboard page shares: reading runs, choosing one, showing errors and verdicts.

The pages (:mod:`views`, :mod:`compare`, :mod:`explorer`) import this module and never each
other's helpers, so the app has no import circle. Nothing here trains or traces: it reads
run directories and calls :mod:`interp.plotting`.

Errors (a missing run directory, a corrupted ``metrics.json``) are shown with ``st.error``
and a plain message, never a traceback (:func:`guard`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import streamlit as st

from interp.plotting import common as plots
from interp.results import Result
from interp.runs import RunInfo, run_info
from interp.utils import read_json

SELECTED_RUN = "selected_run"  # session key shared by every page: the run last chosen
NO_RUNS = "No runs yet — run `interp run model_report --preset quick` or `make demo`."
# How the verdict strip marks a kind: every criterion holds / some do not (sanity: the code is
# wrong).
_MARKS = {
    "ok": ":green[:material/check_circle:]",
    "sanity": ":red[:material/error:]",
    "claim": ":orange[:material/info:]",
    "target": ":orange[:material/speed:]",
}
_FAILING_WORDS = {"sanity": "FAILS", "claim": "does not hold", "target": "missed"}


# ------------------------------------------------------------------ errors
@contextlib.contextmanager
def guard(what: str) -> Iterator[None]:
    """Show an exception raised inside the block as ``st.error(what: ...)`` instead of a traceback.

    Streamlit's own control flow (rerun, stop, switch_page) derives from BaseException
    and passes through.
    """
    try:
        yield
    except Exception as e:
        st.error(f"{what}: {plain(e)}")


def plain(e: BaseException) -> str:
    """``"ValueError: message"`` (a KeyError's quotes stripped)."""
    msg = str(e).strip("'\"") if isinstance(e, KeyError) else str(e)
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__


def num(x: Any) -> str:
    return "n/a" if x is None else f"{x:.4g}"


# ------------------------------------------------------------------ reading runs
@st.cache_data(show_spinner=False, max_entries=64)
def _load_cached(path: str, metrics_mtime_ns: int) -> Result:
    return Result.load(path)


def load_result(path: str | Path) -> Result:
    """The run's :class:`Result`, cached by run path and ``metrics.json``'s modification time."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"run directory {path} does not exist (deleted or moved?)")
    metrics = path / "metrics.json"
    if not metrics.exists():
        raise FileNotFoundError(f"{path} has no metrics.json, so it is not a complete run")
    return _load_cached(str(path), metrics.stat().st_mtime_ns)


def unreadable_runs(runs: list[RunInfo], root: Path) -> list[dict[str, Any]]:
    """Run directories (with a ``run.json``) that ``list_runs`` skipped because they are corrupted.

    Returns ``[{"path", "analysis", "error"}]``; ``analysis`` is None when run.json is unreadable.
    """
    listed = {r.path.resolve() for r in runs}
    out: list[dict[str, Any]] = []
    if not root.is_dir():
        return out
    for exp_dir in sorted(root.iterdir()):
        if not exp_dir.is_dir() or exp_dir.name.startswith("."):
            continue
        for run in sorted(exp_dir.iterdir()):
            if (
                run.name.startswith(".")
                or not (run / "run.json").exists()
                or run.resolve() in listed
            ):
                continue
            analysis, error = None, "unreadable run"
            try:
                meta = read_json(run / "run.json")
                analysis = meta.get("analysis") if isinstance(meta, dict) else None
                run_info(run, exp_dir.name)
            except Exception as e:
                error = plain(e)
            out.append({"path": run, "analysis": analysis, "error": error})
    return out


def show_unreadable(runs: list[RunInfo], root: Path, analysis: str | None = None) -> None:
    for bad in unreadable_runs(runs, root):
        if analysis is None or bad["analysis"] in (analysis, None):
            st.error(f"Run `{bad['path']}` could not be read and is left out: {bad['error']}")


def select_run(runs: list[RunInfo], label: str) -> RunInfo:
    """A selectbox of runs (newest first) that remembers the choice across pages."""
    by_id = {r.id: r for r in runs}
    ids = list(by_id)
    current = st.session_state.get(SELECTED_RUN)
    index = ids.index(current) if current in ids else 0

    def fmt(run_id: str) -> str:
        r = by_id[run_id]
        return (
            f"{r.id}  ·  {plots.preset_label(r)}  ·  {plots.format_stamp(r.created)}  ·  "
            f"{r.n_hold}/{r.n_criteria} criteria hold"
        )

    choice = st.selectbox(label, ids, index=index, format_func=fmt)
    st.session_state[SELECTED_RUN] = choice
    return by_id[choice]


# ------------------------------------------------------------------ verdicts
def verdict_strip(result: Result) -> None:
    """One compact line per kind of criterion (sanity checks, paper claims, performance
    targets: k of n held, the failing ones named), plus a plain error when a sanity check fails."""
    crit = result.criteria
    if not crit:
        st.caption("This run records no pass criteria.")
        return
    if getattr(result, "verdict_mismatches", None):
        st.warning(
            "The verdicts stored with this run disagreed with their own values for "
            + ", ".join(f"`{n}`" for n in result.verdict_mismatches)
            + ": they were recomputed from value, op and threshold, and are shown so. "
            "The run's metrics.json was edited or written by a faulty version."
        )
    parts = plots.verdict_strip(crit)
    for col, part in zip(st.columns(len(parts)), parts, strict=True):
        mark = _MARKS["ok" if part["ok"] else part["kind"]]
        col.markdown(f"{mark} **{part['text'][0].upper()}{part['text'][1:]}**")
        failing = [c.name for c in crit if c.kind == part["kind"] and not c.holds]
        if failing:
            more = f" and {len(failing) - 3} more" if len(failing) > 3 else ""
            shown = ", ".join(f"`{n}`" for n in failing[:3]) + more
            col.caption(f"{_FAILING_WORDS[part['kind']]}: {shown}")
    bad_sanity = [c for c in crit if c.kind == "sanity" and not c.holds]
    if bad_sanity:
        st.error(
            f"{len(bad_sanity)} sanity check(s) FAILED: "
            + ", ".join(
                f"`{c.name}` = {num(c.value)} (needs {c.op} {num(c.threshold)})" for c in bad_sanity
            )
            + ". This is an implementation problem, so the claims cannot be trusted."
        )


def criteria_details(result: Result, *, expanded: bool = False) -> None:
    """The criteria table in an expander, each claim that does not hold and each missed
    target said in a sentence above it."""
    crit = result.criteria
    if not crit:
        return
    counts = plots.criteria_counts(crit)
    with st.expander(
        f"Criteria: {counts['hold']}/{counts['n']} hold (table and descriptions)", expanded=expanded
    ):
        for c in crit:
            if c.holds or c.kind == "sanity":
                continue
            what = "The claim" if c.kind == "claim" else "The performance target"
            verb = "does not hold" if c.kind == "claim" else "is missed"
            st.markdown(
                f"- {what} `{c.name}` {verb} in this run: {num(c.value)}, "
                f"needed {c.op} {num(c.threshold)}"
                + (f" ({c.description})" if c.description else "")
                + "."
            )
        st.dataframe(plots.criteria_frame(crit), hide_index=True)
