"""The dashboard's pages: a home page listing runs, and one page per registered analysis.

The app only reads run directories (``interp.utils.runs_dir()``, i.e. ``$INTERP_RUNS`` or
``<repo>/runs``) and calls plotting helpers: nothing is trained or traced when a page
loads. Pages come from the analysis registry, never from a hard-coded list: registering
an analysis (``interp.analyses.register``) is all it takes to get a page.

An analysis page leads with the verdict strip (sanity checks, paper claims and performance
targets: how many hold) and the headline figure (the first of the analysis's
``figure_order``); the criteria table, the other metrics and the config fold away in
expanders below it, then come the other figures and the analysis's panel.

Panels
------
``app/panels/<analysis>.py`` may define ``dashboard(result, st)``; the page calls it with
the run's :class:`interp.Result` and the ``streamlit`` module::

    # app/panels/model_report.py
    def dashboard(result, st):
        st.subheader("Top heads")
        st.dataframe(result.metrics["top_ablation_heads"])

A panel must only read ``result`` (no model, no training, no tracing: live work belongs on
the Explore page); an exception in it is shown as an error on the page and does not hide
the generic content.

Benchmark runs (``runs/bench/``, written by ``interp bench``) are not an analysis: the home
page lists them and shows their performance targets, and they have no page of their own.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable
from typing import Any

import streamlit as st
from common import (
    NO_RUNS,
    SELECTED_RUN,
    criteria_details,
    guard,
    load_result,
    plain,
    select_run,
    show_unreadable,
    verdict_strip,
)
from compare import compare_page
from explorer import explorer_page
from features import features_page

import interp.analyses as analyses
from interp.plotting import common as plots
from interp.results import Result
from interp.runs import RunInfo, experiments, experiments_dir, list_runs
from interp.seeds import seed_label
from interp.utils import runs_dir

INTRO = (
    "This dashboard shows saved runs of `interp` experiments. Each run directory holds the "
    "config, the metrics with the paper's pass criteria, arrays and plotly figures; every "
    "registered analysis has its own page. **Sanity** criteria must hold (a failure means the "
    "implementation is wrong); **claims** are the paper's findings at our scale and may honestly "
    "not hold; **performance targets** (benchmark runs) are met or missed. Nothing is trained or "
    "traced here: the pages only read runs (the *Explore a model* page runs a model on request)."
)
BENCH = "bench"  # the benchmark's runs: listed on the home page, no analysis page


# ------------------------------------------------------------------ app
def main() -> None:
    """Build the pages from the registry and run the selected one (the entry point calls this)."""
    st.set_page_config(page_title="interp dashboard", layout="wide")
    pages: dict[str, Any] = {}
    import_error: str | None = None
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
        pages[name] = st.Page(
            _analysis_page_fn(name), title=title, icon=":material/analytics:", url_path=name
        )
    tools = [
        st.Page(
            explorer_page, title="Explore a model", icon=":material/search:", url_path="explore"
        ),
        st.Page(compare_page, title="Compare runs", icon=":material/compare:", url_path="compare"),
        st.Page(features_page, title="Features", icon=":material/neurology:", url_path="features"),
    ]
    st.sidebar.caption(f"Runs read from `{runs_dir()}`")
    st.navigation({"": [home_entry], "Tools": tools, "Analyses": list(pages.values())}).run()


def _analysis_page_fn(name: str) -> Callable[[], None]:
    def page() -> None:
        analysis_page(name)

    page.__name__ = f"analysis_{name}"
    return page


# ------------------------------------------------------------------ home page
def home_page(pages: dict[str, Any], import_error: str | None = None) -> None:
    """Title, intro, the table of runs and the verdicts of a selected run."""
    st.title("interp dashboard")
    st.markdown(INTRO)
    if import_error:
        st.error(f"Some analyses could not be loaded, so their pages are missing: {import_error}")
    with guard("The list of runs could not be read"):
        root = runs_dir()
        runs = list_runs(root=root)
        show_unreadable(runs, root)
        if not runs:
            st.info(f"{NO_RUNS} Runs are read from `{root}` (set `INTERP_RUNS` to change it).")
            return
        c1, c2, c3 = st.columns(3)
        c1.metric("Runs", len(runs))
        c2.metric("Runs where every criterion holds", sum(r.n_hold == r.n_criteria for r in runs))
        c3.metric("Runs with sanity failures", sum(r.sanity_failures > 0 for r in runs))
        st.dataframe(plots.runs_frame(runs), hide_index=True)

        st.subheader("Verdicts of a run")
        run = select_run(runs, "Run")
        with guard(f"Run {run.id} could not be read"):
            result = load_result(run.path)
            verdict_strip(result)
            criteria_details(result, expanded=True)
        if run.analysis in pages:
            if st.button(f"Open the {run.analysis} page for this run", key="open_analysis"):
                st.session_state[SELECTED_RUN] = run.id
                st.switch_page(pages[run.analysis])
        elif run.analysis == BENCH:
            st.caption(
                "A benchmark run (`interp bench`): its criteria are performance targets, shown "
                "above; the benchmark is not an analysis, so it has no page."
            )
        else:
            st.caption(f"No page for analysis {run.analysis!r}: it is not registered.")


# ------------------------------------------------------------------ analysis pages
def analysis_page(name: str) -> None:
    """The page of one registered analysis: its runs, verdicts, figures, tables and panel."""
    with guard(f"The page of analysis {name!r} could not be shown"):
        analysis = analyses.get(name)
        st.title(analysis.title)
        if analysis.description:
            st.markdown(analysis.description)
        if analysis.paper:
            st.caption(f"Paper: {analysis.paper}")
        root = runs_dir()
        all_runs = list_runs(root=root)
        show_unreadable(all_runs, root, analysis=name)
        runs = [r for r in all_runs if r.analysis == name]
        if not runs:
            how_to_create(name)
            return
        run = select_run(runs, "Run")
        if run.seeds:
            render_seeds(run, all_runs, analysis)
        else:
            part_of = [r for r in runs if run.id in r.seed_runs]
            if part_of:
                st.caption(
                    f"One seed of the seeds run `{part_of[0].id}` (choose it above to see, per "
                    f"criterion, in how many of its {len(part_of[0].seeds)} seeds it holds)."
                )
            render_run(run, analysis)


def render_seeds(
    run: RunInfo, all_runs: list[RunInfo], analysis: analyses.Analysis | None = None
) -> None:
    """A seeds run (``interp run <experiment> --seeds 0-2``): per criterion, in how many training
    seeds it holds, each seed's value; then one seed's run in full."""
    try:
        result = load_result(run.path)
    except Exception as e:
        st.error(f"Run {run.id} could not be read: {plain(e)}")
        return
    st.caption(
        f"Seeds run over training seeds {seed_label(run.seeds)} · preset `{run.preset}` · "
        f"{plots.format_stamp(run.created)} · run directory `{run.path}`"
    )
    with guard("The verdicts could not be shown"):
        verdict_strip(result)
        st.caption(
            "Here a criterion holds when it holds in every seed; the table says in how many it "
            "does."
        )
    with guard("The criteria could not be shown"):
        st.dataframe(plots.seeds_frame(result.criteria, run.seeds), hide_index=True)
    by_id = {r.id: r for r in all_runs}
    present = [
        (s, by_id[rid]) for s, rid in zip(run.seeds, run.seed_runs, strict=True) if rid in by_id
    ]
    if len(present) < len(run.seeds):
        missing = [rid for rid in run.seed_runs if rid not in by_id]
        st.warning(
            f"{len(missing)} of this seeds run's runs are missing or unreadable: "
            f"{', '.join(missing)}"
        )
    if not present:
        return
    seed = st.selectbox("Show one seed's run", [s for s, _ in present], key=f"seed-of-{run.id}")
    render_run(dict(present)[seed], analysis)


def how_to_create(name: str) -> None:
    """Tell how to make a first run of analysis ``name``, naming the experiments that use it."""
    try:
        # experiments([]): a broken experiment file is skipped, not fatal to the page
        exps = sorted(e.name for e in experiments([]).values() if e.analysis == name)
    except Exception as e:
        st.error(f"The experiment configs in {experiments_dir()} could not be read: {plain(e)}")
        exps = []
    if exps:
        st.info(f"No runs of `{name}` yet. Create one with:")
        st.code("\n".join(f"interp run {e} --preset quick" for e in exps), language="bash")
    else:
        st.info(
            f"No runs of `{name}` yet, and no experiment in `{experiments_dir()}` uses it. Add "
            f"`experiments/<experiment>.yaml` with `analysis: {name}` and a `quick` preset, then "
            "run `interp run <experiment> --preset quick`."
        )


def render_run(run: RunInfo, analysis: analyses.Analysis | None = None) -> None:
    """Verdict strip and headline figure first; criteria, metrics and config in expanders;
    then the other figures and the analysis's panel."""
    try:
        result = load_result(run.path)
    except Exception as e:
        st.error(f"Run {run.id} could not be read: {plain(e)}")
        return
    st.caption(
        f"Run directory: `{run.path}` · preset `{run.preset}` · {plots.format_stamp(run.created)}"
    )
    with guard("The verdicts could not be shown"):
        verdict_strip(result)
    names = plots.ordered_figures(result.figures, analysis.figure_order if analysis else ())
    if names:
        _figure(run, result, names[0])
    with guard("The criteria could not be shown"):
        criteria_details(result)
    with guard("The metrics could not be shown"):
        frame = plots.metrics_frame(result.metrics)
        if len(frame):
            with st.expander(f"Other metrics ({len(frame)} numbers)"):
                st.dataframe(frame, hide_index=True)
    with st.expander("Config and all metrics (JSON)"):
        st.json(
            {
                "config": result.config,
                "metrics": {k: v for k, v in result.metrics.items() if k != "criteria"},
            },
            expanded=False,
        )
    if len(names) > 1:
        st.subheader("More figures")
    for fig_name in names[1:]:
        _figure(run, result, fig_name)
    if analysis is not None:
        with guard(f"The custom panel of {analysis.name!r} failed"):
            hook = custom_panel(analysis)
            if hook is not None:
                hook(result, st)


def _figure(run: RunInfo, result: Result, name: str) -> None:
    with guard(f"Figure {name!r} could not be drawn"):
        fig = result.figure(name)
        st.markdown(f"**{name}**")
        st.plotly_chart(fig, key=f"figure-{run.id}-{name}")


def custom_panel(analysis: analyses.Analysis) -> Callable[[Result, Any], None] | None:
    """``dashboard(result, st)`` of the module ``panels.<analysis>`` (``app/panels/<analysis>.py``),
    or None when the analysis has no panel. A panel that fails to import raises (shown as an
    error)."""
    module = f"panels.{analysis.name}"
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name in (module, "panels"):
            return None
        raise
    hook = getattr(mod, "dashboard", None)
    return hook if callable(hook) else None
