"""The dashboard's pages: a home page listing runs, and one page per registered analysis.

The app only reads run directories (``interp.utils.runs_dir()``, i.e. ``$INTERP_RUNS`` or
``<repo>/runs``) and calls plotting helpers: nothing is trained or traced when a page
loads. Pages come from the analysis registry, never from a hard-coded list: registering
an analysis (``interp.analyses.register``) is all it takes to get a page.

Custom panel hook
-----------------
An analysis can add its own panel below the generic content (criteria, metrics,
figures) of its page. If the module that defines the analysis's run function has a
top-level function ``dashboard(result, st)``, the page calls it with the run's
:class:`interp.Result` and the ``streamlit`` module::

    # interp/analyses/model_report.py
    def dashboard(result, st):
        st.subheader("Top heads")
        st.dataframe(result.arrays["head_scores"])

The hook must only read ``result`` (no training, no tracing); an exception in it is
shown as an error on the page and does not hide the generic content.

Errors (a missing run directory, a corrupted ``metrics.json`` or figure file, an
analysis module that fails to import) are shown with ``st.error`` and a plain message,
never a traceback.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import streamlit as st

import interp.analyses as analyses
from interp.plotting import common
from interp.results import Result
from interp.runs import RunInfo, experiments, experiments_dir, list_runs
from interp.utils import read_json, runs_dir

SELECTED_RUN = "selected_run"  # session key shared by every page: the run last chosen
NO_RUNS = "No runs yet — run `interp run model_report --preset quick` or `make demo`."
INTRO = (
    "This dashboard shows saved runs of `interp` experiments. Each run directory holds the "
    "config, the metrics with the paper's pass criteria, arrays and plotly figures; every "
    "registered analysis has its own page. **Sanity** criteria must hold (a failure means the "
    "implementation is wrong); **claims** are the paper's findings at our scale and may honestly "
    "not hold. Nothing is trained or traced here: the pages only read runs."
)


# ------------------------------------------------------------------ app
def main() -> None:
    """Build the pages from the registry and run the selected one (the entry point calls this)."""
    st.set_page_config(page_title="interp dashboard", layout="wide")
    pages: dict[str, Any] = {}
    import_error: Optional[str] = None
    try:
        names = analyses.names()
    except Exception as e:  # an analysis module that fails to import must not take the app down
        names, import_error = [], f"{type(e).__name__}: {e}"

    def home() -> None:
        home_page(pages, import_error)

    home_entry = st.Page(home, title="Home", icon=":material/home:", url_path="home", default=True)
    for name in names:
        title = name
        with contextlib.suppress(Exception):
            title = analyses.get(name).title
        pages[name] = st.Page(_analysis_page_fn(name), title=title, icon=":material/analytics:", url_path=name)
    from compare import compare_page
    from explorer import explorer_page

    tools = [st.Page(explorer_page, title="Explore a model", icon=":material/search:", url_path="explore"),
             st.Page(compare_page, title="Compare runs", icon=":material/compare:", url_path="compare")]
    st.sidebar.caption(f"Runs read from `{runs_dir()}`")
    st.navigation({"": [home_entry], "Tools": tools, "Analyses": list(pages.values())}).run()


def _analysis_page_fn(name: str) -> Callable[[], None]:
    def page() -> None:
        analysis_page(name)

    page.__name__ = f"analysis_{name}"
    return page


@contextlib.contextmanager
def guard(what: str) -> Iterator[None]:
    """Show an exception raised inside the block as ``st.error(what: ...)`` instead of a traceback.

    Streamlit's own control flow (rerun, stop, switch_page) derives from BaseException
    and passes through.
    """
    try:
        yield
    except Exception as e:
        st.error(f"{what}: {_plain(e)}")


def _plain(e: BaseException) -> str:
    msg = str(e).strip("'\"") if isinstance(e, KeyError) else str(e)
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__


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
    out = []
    if not root.is_dir():
        return out
    for exp_dir in sorted(root.iterdir()):
        if not exp_dir.is_dir() or exp_dir.name.startswith("."):
            continue
        for run in sorted(exp_dir.iterdir()):
            if run.name.startswith(".") or not (run / "run.json").exists() or run.resolve() in listed:
                continue
            analysis, error = None, "unreadable run"
            try:
                analysis = read_json(run / "run.json").get("analysis")
                read_json(run / "metrics.json")
            except Exception as e:
                error = _plain(e)
            out.append({"path": run, "analysis": analysis, "error": error})
    return out


def _show_unreadable(runs: list[RunInfo], root: Path, analysis: Optional[str] = None) -> None:
    for bad in unreadable_runs(runs, root):
        if analysis is None or bad["analysis"] in (analysis, None):
            st.error(f"Run `{bad['path']}` could not be read and is left out: {bad['error']}")


def _select_run(runs: list[RunInfo], label: str) -> RunInfo:
    """A selectbox of runs (newest first) that remembers the choice across pages."""
    by_id = {r.id: r for r in runs}
    ids = list(by_id)
    current = st.session_state.get(SELECTED_RUN)
    index = ids.index(current) if current in ids else 0

    def fmt(run_id: str) -> str:
        r = by_id[run_id]
        return (f"{r.id}  ·  {r.preset}  ·  {common.format_stamp(r.created)}  ·  "
                f"{r.n_hold}/{r.n_criteria} criteria hold")

    choice = st.selectbox(label, ids, index=index, format_func=fmt)
    st.session_state[SELECTED_RUN] = choice
    return by_id[choice]


# ------------------------------------------------------------------ home page
def home_page(pages: dict[str, Any], import_error: Optional[str] = None) -> None:
    """Title, intro, the table of runs and the criteria of a selected run."""
    st.title("interp dashboard")
    st.markdown(INTRO)
    if import_error:
        st.error(f"Some analyses could not be loaded, so their pages are missing: {import_error}")
    with guard("The list of runs could not be read"):
        root = runs_dir()
        runs = list_runs(root=root)
        _show_unreadable(runs, root)
        if not runs:
            st.info(f"{NO_RUNS} Runs are read from `{root}` (set `INTERP_RUNS` to change it).")
            return
        c1, c2, c3 = st.columns(3)
        c1.metric("Runs", len(runs))
        c2.metric("Runs where every criterion holds", sum(r.n_hold == r.n_criteria for r in runs))
        c3.metric("Runs with sanity failures", sum(r.sanity_failures > 0 for r in runs))
        st.dataframe(common.runs_frame(runs), hide_index=True)

        st.subheader("Criteria of a run")
        run = _select_run(runs, "Run")
        with guard(f"Run {run.id} could not be read"):
            result = load_result(run.path)
            criteria_section(result)
        if run.analysis in pages:
            if st.button(f"Open the {run.analysis} page for this run", key="open_analysis"):
                st.session_state[SELECTED_RUN] = run.id
                st.switch_page(pages[run.analysis])
        else:
            st.caption(f"No page for analysis {run.analysis!r}: it is not registered.")


# ------------------------------------------------------------------ analysis pages
def analysis_page(name: str) -> None:
    """The page of one registered analysis: its runs, criteria, metrics, figures and custom panel."""
    with guard(f"The page of analysis {name!r} could not be shown"):
        analysis = analyses.get(name)
        st.title(analysis.title)
        if analysis.description:
            st.markdown(analysis.description)
        if analysis.paper:
            st.caption(f"Paper: {analysis.paper}")
        root = runs_dir()
        all_runs = list_runs(root=root)
        _show_unreadable(all_runs, root, analysis=name)
        runs = [r for r in all_runs if r.analysis == name]
        if not runs:
            how_to_create(name)
            return
        run = _select_run(runs, "Run")
        render_run(run, analysis)


def how_to_create(name: str) -> None:
    """Tell how to make a first run of analysis ``name``, naming the experiments that use it."""
    try:
        exps = sorted(e.name for e in experiments().values() if e.analysis == name)
    except Exception as e:
        st.error(f"The experiment configs in {experiments_dir()} could not be read: {_plain(e)}")
        exps = []
    if exps:
        st.info(f"No runs of `{name}` yet. Create one with:")
        st.code("\n".join(f"interp run {e} --preset quick" for e in exps), language="bash")
    else:
        st.info(f"No runs of `{name}` yet, and no experiment in `{experiments_dir()}` uses it. Add "
                f"`experiments/<experiment>.yaml` with `analysis: {name}` and a `quick` preset, then run "
                f"`interp run <experiment> --preset quick`.")


def render_run(run: RunInfo, analysis: Optional[analyses.Analysis] = None) -> None:
    """Criteria with verdicts, other scalar metrics, every figure, then the analysis's custom panel."""
    try:
        result = load_result(run.path)
    except Exception as e:
        st.error(f"Run {run.id} could not be read: {_plain(e)}")
        return
    st.caption(f"Run directory: `{run.path}` · preset `{run.preset}` · {common.format_stamp(run.created)}")
    with guard("The criteria could not be shown"):
        criteria_section(result)
    with guard("The metrics could not be shown"):
        frame = common.metrics_frame(result.metrics)
        if len(frame):
            st.subheader("Other metrics")
            st.dataframe(frame, hide_index=True)
    with st.expander("Config and all metrics (JSON)"):
        st.json({"config": result.config, "metrics": {k: v for k, v in result.metrics.items() if k != "criteria"}},
                expanded=False)
    order = analysis.figure_order if analysis else ()
    names = common.ordered_figures(result.figures, order)
    if names:
        st.subheader("Figures")
    for fig_name in names:
        with guard(f"Figure {fig_name!r} could not be drawn"):
            fig = result.figure(fig_name)
            st.markdown(f"**{fig_name}**")
            st.plotly_chart(fig, key=f"figure-{run.id}-{fig_name}")
    hook = custom_panel(analysis) if analysis else None
    if hook is not None:
        with guard(f"The custom panel of {analysis.name!r} failed"):
            hook(result, st)


def criteria_section(result: Result) -> None:
    """The criteria table, with sanity failures and claims that do not hold said in words."""
    crit = result.criteria
    st.subheader("Criteria")
    if not crit:
        st.info("This run records no pass criteria.")
        return
    counts = common.criteria_counts(crit)
    bad_sanity = [c for c in crit if c.kind == "sanity" and not c.holds]
    bad_claims = [c for c in crit if c.kind == "claim" and not c.holds]
    if bad_sanity:
        st.error(f"{len(bad_sanity)} sanity check(s) FAILED: "
                 + ", ".join(f"`{c.name}` = {_num(c.value)} (needs {c.op} {_num(c.threshold)})" for c in bad_sanity)
                 + ". This is an implementation problem, so the claims below cannot be trusted.")
    for c in bad_claims:
        st.warning(f"The claim `{c.name}` does not hold in this run: {_num(c.value)}, needed "
                   f"{c.op} {_num(c.threshold)}" + (f" ({c.description})" if c.description else "") + ".")
    if not bad_sanity and not bad_claims:
        st.success(f"All {counts['n']} criteria hold.")
    st.markdown(f"**{counts['hold']}/{counts['n']} criteria hold**")
    st.dataframe(common.criteria_frame(crit), hide_index=True)


def custom_panel(analysis: analyses.Analysis) -> Optional[Callable[[Result, Any], None]]:
    """``dashboard(result, st)`` of ``app/panels/<analysis>.py``, if the analysis has a panel."""
    import importlib

    if not (Path(__file__).resolve().parent / "panels" / f"{analysis.name}.py").exists():
        return None
    hook = getattr(importlib.import_module(f"panels.{analysis.name}"), "dashboard", None)
    return hook if callable(hook) else None


def _num(x: Any) -> str:
    return "n/a" if x is None else f"{x:.4g}"
