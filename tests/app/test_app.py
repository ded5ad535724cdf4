"""The dashboard, driven with streamlit's AppTest against fake runs in a temporary runs root.

A fake analysis is registered in this process, and its panel is a fake module
``panels.fake_analysis`` put in ``sys.modules``; AppTest runs the app script in the same
process, so the app sees both (and gives the analysis a page) exactly as it would a real
one. Pages are switched the way a user does it: the home page's "Open the <analysis> page"
button calls ``st.switch_page``. Single pages are also rendered through tiny scripts
(``AppTest.from_function``) that call ``views.analysis_page``.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest
from pydantic import BaseModel
from streamlit.testing.v1 import AppTest

import interp
import interp.analyses as analyses
import interp.models.builders as builders
from interp.data.reversal import FactsConfig
from interp.results import Result
from interp.seeds import aggregate
from interp.utils import write_json
from tests.conftest import load_panel

APP_DIR = Path(__file__).resolve().parents[2] / "app"
HOME = str(APP_DIR / "Home.py")
TIMEOUT = 120  # an upper bound for a loaded machine; the tests wait for content, not a clock
CUSTOM_PANEL_TEXT = "fake custom panel: 3 arrays entries"


class FakeConfig(BaseModel):
    seed: int = 0


def fake_run(config: FakeConfig) -> Result:
    """A fake analysis used only by the dashboard tests."""
    return Result("fake_analysis")


def dashboard(result, st):
    """The fake analysis's panel (the ``dashboard`` of the module ``panels.fake_analysis``)."""
    st.markdown(f"fake custom panel: {int(result.arrays['x'].sum())} arrays entries")


@pytest.fixture
def fake_panel(monkeypatch):
    """``panels.fake_analysis``: a panel module the app finds as it finds
    ``app/panels/<name>.py``."""
    if str(APP_DIR) not in sys.path:
        monkeypatch.syspath_prepend(str(APP_DIR))
    import panels  # noqa: F401  (the real package, so that panels.<name> resolves through it)

    module = types.ModuleType("panels.fake_analysis")
    module.dashboard = dashboard
    monkeypatch.setitem(sys.modules, "panels.fake_analysis", module)
    return module


@pytest.fixture
def fake_analysis(fake_panel):
    assert "fake_analysis" not in analyses.names()
    analyses.register("fake_analysis", FakeConfig, title="Fake analysis", figure_order=("second",))(
        fake_run
    )
    yield analyses.get("fake_analysis")
    analyses._REGISTRY.pop("fake_analysis", None)


@pytest.fixture
def roots(tmp_path, monkeypatch):
    runs, exps = tmp_path / "runs", tmp_path / "experiments"
    exps.mkdir()
    (exps / "fake_exp.yaml").write_text("analysis: fake_analysis\npresets:\n  quick: {seed: 1}\n")
    monkeypatch.setenv("INTERP_RUNS", str(runs))
    monkeypatch.setenv("INTERP_EXPERIMENTS", str(exps))
    return runs


def make_run(
    root: Path,
    stamp: str = "20240131-094501-abcdef",
    *,
    analysis: str = "fake_analysis",
    sanity_ok: bool = True,
    claim_value: float = 0.12,
    experiment: str = "fake_exp",
) -> Path:
    result = Result(
        analysis, {"seed": 1}, {"loss": {"train": 0.25, "note": "text"}, "n_heads": 4, "flag": True}
    )
    result.add_criterion(
        "exact_identity",
        0.0 if sanity_ok else 3.0,
        "<=",
        1e-6,
        kind="sanity",
        description="an identity edit changes nothing",
    )
    result.add_criterion(
        "transformer_beats_lstm",
        claim_value,
        ">=",
        0.05,
        kind="claim",
        description="transformer accuracy minus LSTM accuracy",
    )
    result.add_criterion(
        "deeper_is_better", -0.5, ">", 0.0, kind="claim", description="loss drop with depth"
    )
    result.arrays["x"] = np.ones(3)
    result.figures["first"] = go.Figure(
        go.Scatter(x=[0, 1], y=[1, 2]), layout={"title": "first figure"}
    )
    result.figures["second"] = go.Figure(
        go.Heatmap(z=[[1, 2], [3, 4]]), layout={"title": "second figure"}
    )
    path = root / experiment / stamp
    result.save(path)
    write_json(
        path / "run.json",
        {"experiment": experiment, "preset": "quick", "analysis": analysis, "created": stamp[:15]},
    )
    return path


def _page_script(name: str, app_dir: str) -> None:
    import sys

    sys.path.insert(0, app_dir)
    import views

    views.analysis_page(name)


def analysis_page(name: str = "fake_analysis") -> AppTest:
    return AppTest.from_function(
        _page_script, args=(name, str(APP_DIR)), default_timeout=TIMEOUT
    ).run()


def texts(at: AppTest) -> str:
    """Every piece of text the page shows, joined (markdown, titles, alerts, captions, code)."""
    parts = []
    for kind in (
        "title",
        "header",
        "subheader",
        "markdown",
        "caption",
        "info",
        "warning",
        "error",
        "success",
        "code",
    ):
        parts += [str(el.value) for el in at.get(kind)]
    return "\n".join(parts)


def frames(at: AppTest) -> list:
    return [el.value for el in at.dataframe]


def layout(at: AppTest) -> list[tuple[str, str]]:
    """The main area top to bottom, flattened: ``(element type, text)``; an expander is
    ``("expander", label)`` followed by its content, a chart ``("plotly_chart", title)``."""
    out: list[tuple[str, str]] = []

    def walk(node) -> None:
        for child in getattr(node, "children", {}).values():
            kind = getattr(child, "type", type(child).__name__)
            if kind == "expander":
                out.append(("expander", child.label))
            elif kind == "plotly_chart":
                spec = json.loads(child.proto.spec)
                out.append((kind, str(spec["layout"].get("title", {}).get("text", ""))))
            elif not hasattr(child, "children") or kind in ("markdown", "caption"):
                out.append((kind, str(getattr(child, "value", ""))))
            walk(child)

    walk(at.main)
    return out


def index_of(items: list[tuple[str, str]], kind: str, text: str = "") -> int:
    return next(i for i, (k, t) in enumerate(items) if k == kind and text in t)


# ------------------------------------------------------------------ home page
def test_home_lists_runs_and_shows_criteria(roots, fake_analysis):
    make_run(roots)
    at = AppTest.from_file(HOME, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert not at.error
    assert at.title[0].value == "interp dashboard"
    runs = frames(at)[0]
    assert list(runs["run"]) == ["fake_exp/20240131-094501-abcdef"]
    assert list(runs["criteria held"]) == ["2/3"] and list(runs["sanity failures"]) == [0]
    assert list(runs["date"]) == ["2024-01-31 09:45:01"]
    crit = frames(at)[1]
    assert set(crit["name"]) == {"exact_identity", "transformer_beats_lstm", "deeper_is_better"}
    assert "does not hold" in texts(at)  # the failing claim is said plainly
    assert (
        at.button[0].label == "Open the fake_analysis page for this run"
    )  # the registry gave it a page


def test_home_without_runs_says_how_to_make_one(roots, fake_analysis):
    at = AppTest.from_file(HOME, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert "No runs yet" in at.info[0].value and "make demo" in at.info[0].value
    assert "interp run model_report --preset quick" in at.info[0].value


def test_home_reports_corrupted_metrics(roots, fake_analysis):
    good = make_run(roots, "20240101-000000-aaaaaa")
    bad = make_run(roots, "20240102-000000-bbbbbb")
    (bad / "metrics.json").write_text("{not json")
    at = AppTest.from_file(HOME, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert len(at.error) == 1 and str(bad) in at.error[0].value and "corrupted" in at.error[0].value
    assert list(frames(at)[0]["run"]) == [f"fake_exp/{good.name}"]


# ------------------------------------------------------------------ analysis pages
def test_switch_from_home_to_analysis_page(roots, fake_analysis):
    make_run(roots)
    at = AppTest.from_file(HOME, default_timeout=TIMEOUT).run()
    at.button(key="open_analysis").click().run()
    assert not at.exception
    assert at.title[0].value == "Fake analysis"
    assert "A fake analysis used only by the dashboard tests." in texts(at)
    _check_fake_run_page(at)


def test_analysis_page_renders_criteria_metrics_figures_and_panel(roots, fake_analysis):
    make_run(roots)
    at = analysis_page()
    assert not at.exception
    _check_fake_run_page(at)


def _check_fake_run_page(at: AppTest) -> None:
    assert not at.error
    crit, metrics = frames(at)
    row = crit.set_index("name").loc["transformer_beats_lstm"]
    assert row["value"] == pytest.approx(0.12) and row["threshold"] == pytest.approx(0.05)
    assert row["verdict"] == "holds"
    assert crit.set_index("name").loc["deeper_is_better", "verdict"] == "does not hold (claim)"
    assert dict(zip(metrics["metric"], metrics["value"], strict=True)) == {
        "loss.train": 0.25,
        "n_heads": 4.0,
    }
    # a claim that does not hold is a finding, said in the strip and the table
    assert not at.warning
    body = texts(at)
    assert (
        "The claim `deeper_is_better` does not hold in this run: -0.5, needed > 0 "
        "(loss drop with depth)." in body
    )
    charts = at.get("plotly_chart")
    assert len(charts) == 2
    assert body.index("**second**") < body.index(
        "**first**"
    )  # figure_order first, then alphabetical
    assert json.loads(charts[0].proto.spec)["layout"]["title"]["text"] == "second figure"
    assert CUSTOM_PANEL_TEXT in body


def test_analysis_page_leads_with_verdicts_and_headline_figure(roots, fake_analysis):
    """Verdict strip, then the headline figure (first of figure_order), then the tables folded
    in expanders, then the other figures and the panel."""
    make_run(roots)
    at = analysis_page()
    assert not at.exception and not at.error
    items = layout(at)
    sanity = index_of(items, "markdown", "Sanity checks: 1 of 1 holds")
    claims = index_of(items, "markdown", "Paper claims: 1 of 2 hold")
    assert index_of(items, "caption", "does not hold: `deeper_is_better`") == claims + 1
    headline = index_of(items, "plotly_chart", "second figure")
    crit_box = index_of(items, "expander", "Criteria: 2/3 hold")
    metrics_box = index_of(items, "expander", "Other metrics")
    other = index_of(items, "plotly_chart", "first figure")
    panel = index_of(items, "markdown", CUSTOM_PANEL_TEXT)
    assert sanity < claims < headline < crit_box < metrics_box < other < panel
    tables = [i for i, (k, _) in enumerate(items) if k == "dataframe"]
    assert len(tables) == 2 and min(tables) > headline  # no table before the headline figure
    assert all(not e.proto.expanded for e in at.expander)  # the tables fold away
    assert [e.label for e in at.expander][:2] == [
        "Criteria: 2/3 hold (table and descriptions)",
        "Other metrics (2 numbers)",
    ]


def test_run_without_criteria_or_figures_still_renders(roots, fake_analysis):
    path = make_run(roots)
    metrics = json.loads((path / "metrics.json").read_text())
    (path / "metrics.json").write_text(json.dumps({**metrics, "criteria": []}))
    for f in (path / "figures").glob("*.json"):
        f.unlink()
    at = analysis_page()
    assert not at.exception and not at.error
    assert "This run records no pass criteria." in texts(at)
    assert not at.get("plotly_chart") and CUSTOM_PANEL_TEXT in texts(at)


def test_analysis_page_selects_among_runs_newest_first(roots, fake_analysis):
    make_run(roots, "20240101-000000-aaaaaa", claim_value=0.01)
    make_run(roots, "20240202-000000-bbbbbb", claim_value=0.3)
    at = analysis_page()
    box = at.selectbox[0]
    assert box.options[0].startswith("fake_exp/20240202-000000-bbbbbb")
    assert frames(at)[0].set_index("name").loc["transformer_beats_lstm", "value"] == pytest.approx(
        0.3
    )
    box.set_value("fake_exp/20240101-000000-aaaaaa").run()
    assert not at.exception
    assert frames(at)[0].set_index("name").loc["transformer_beats_lstm", "value"] == pytest.approx(
        0.01
    )
    assert "`transformer_beats_lstm` does not hold" in texts(at)


def test_analysis_page_flags_sanity_failure_as_implementation_problem(roots, fake_analysis):
    make_run(roots, sanity_ok=False)
    at = analysis_page()
    assert not at.exception
    assert len(at.error) == 1 and "sanity check(s) FAILED" in at.error[0].value
    assert "implementation problem" in at.error[0].value
    assert (
        frames(at)[0].set_index("name").loc["exact_identity", "verdict"]
        == "FAILS (sanity: implementation problem)"
    )


def test_analysis_page_without_runs_names_the_experiment(roots, fake_analysis):
    at = analysis_page()
    assert not at.exception
    assert "No runs of `fake_analysis` yet" in at.info[0].value
    assert at.code[0].value == "interp run fake_exp --preset quick"


def test_analysis_page_reports_corrupted_metrics(roots, fake_analysis):
    path = make_run(roots)
    (path / "metrics.json").write_text("{truncated")
    at = analysis_page()
    assert not at.exception
    assert any(str(path) in e.value and "not valid JSON" in e.value for e in at.error)


def test_analysis_page_reports_corrupted_figure(roots, fake_analysis):
    path = make_run(roots)
    (path / "figures" / "first.json").write_text('{"data": [')
    at = analysis_page()
    assert not at.exception
    assert (
        len(at.error) == 1
        and "figure file" in at.error[0].value
        and "corrupted" in at.error[0].value
    )


def test_metrics_rewritten_after_load_are_reread(roots, fake_analysis):
    """The cache is keyed by metrics.json's mtime: a rewritten run shows its new values."""
    path = make_run(roots, claim_value=0.12)
    at = analysis_page()
    assert frames(at)[0].set_index("name").loc["transformer_beats_lstm", "value"] == pytest.approx(
        0.12
    )
    make_run(roots, path.name, claim_value=0.5)
    at.run()
    assert frames(at)[0].set_index("name").loc["transformer_beats_lstm", "value"] == pytest.approx(
        0.5
    )


def _missing_run_script(app_dir: str, path: str) -> None:
    import sys
    from pathlib import Path

    sys.path.insert(0, app_dir)
    import views

    from interp.runs import RunInfo

    views.render_run(
        RunInfo(Path(path), "fake_exp", "fake_analysis", "quick", "20240101-000000", 1, 1, 0)
    )


def test_missing_run_directory_is_an_error_not_a_traceback(tmp_path):
    at = AppTest.from_function(
        _missing_run_script, args=(str(APP_DIR), str(tmp_path / "gone")), default_timeout=TIMEOUT
    ).run()
    assert not at.exception
    assert "does not exist" in at.error[0].value


def test_failing_custom_panel_keeps_generic_content(roots, fake_analysis, fake_panel, monkeypatch):
    def broken(result, st):
        raise RuntimeError("panel exploded")

    monkeypatch.setattr(fake_panel, "dashboard", broken)
    make_run(roots)
    at = analysis_page()
    assert not at.exception
    assert len(at.get("plotly_chart")) == 2
    assert [e.value for e in at.error] == [
        "The custom panel of 'fake_analysis' failed: RuntimeError: panel exploded"
    ]


def test_model_report_page_with_a_fake_result(roots):
    """The real model_report analysis gets a page from the registry and shows a saved run."""
    if "model_report" not in analyses.names():
        pytest.skip("model_report is not registered")
    make_run(roots, analysis="model_report", experiment="model_report")
    at = analysis_page("model_report")
    assert not at.exception and not at.error
    assert at.title[0].value == analyses.get("model_report").title
    assert len(at.get("plotly_chart")) == 2


# ------------------------------------------------------------------ benchmark runs
def make_bench_run(root: Path, stamp: str = "20240301-000000-cccccc") -> Path:
    """A run as ``interp bench`` writes it: analysis "bench", target criteria only."""
    result = Result(
        "bench", {"preset": "quick"}, {"table": [{"item": "collection", "median_ms": 1.0}]}
    )
    result.add_criterion(
        "collect_vs_bare_forward", 1.05, "<=", 1.1, kind="target", description="ratio"
    )
    result.add_criterion("disk_vs_memory", 3.0, "<=", 2.0, kind="target", description="ratio")
    path = root / "bench" / stamp
    result.save(path)
    write_json(
        path / "run.json",
        {"experiment": "bench", "preset": "quick", "analysis": "bench", "created": stamp[:15]},
    )
    return path


def test_home_lists_a_benchmark_run_with_its_targets(roots, fake_analysis):
    make_run(roots)
    make_bench_run(roots)
    at = AppTest.from_file(HOME, default_timeout=TIMEOUT).run()
    assert not at.exception and not at.error
    assert list(frames(at)[0]["run"]) == [
        "bench/20240301-000000-cccccc",
        "fake_exp/20240131-094501-abcdef",
    ]
    body = texts(at)  # the newest run (the benchmark) is selected
    assert "Performance targets: 1 of 2 met" in body and "missed: `disk_vs_memory`" in body
    assert (
        "The performance target `disk_vs_memory` is missed in this run: 3, needed <= 2 (ratio)."
        in body
    )
    assert (
        "Paper claims" not in body and "sanity check(s) FAILED" not in body
    )  # a target is not a claim
    verdicts = frames(at)[1].set_index("name")["verdict"]
    assert verdicts.to_dict() == {
        "collect_vs_bare_forward": "met (target)",
        "disk_vs_memory": "missed (performance target)",
    }
    assert "has no page" in body and not at.button  # no analysis page to open
    at.selectbox[0].set_value("fake_exp/20240131-094501-abcdef").run()
    assert not at.exception and at.button[0].label == "Open the fake_analysis page for this run"


def test_benchmark_runs_are_not_on_analysis_pages(roots, fake_analysis):
    make_bench_run(roots)
    at = analysis_page()
    assert not at.exception and not at.error
    assert "No runs of `fake_analysis` yet" in at.info[0].value


# ------------------------------------------------------------------ panels
ANALYSES = (
    "model_report",
    "bigram",
    "ngram_heads",
    "rnn_hmm",
    "sae_circuits",
    "crossmodal",
    "reversal",
)


class RecordingSt:
    """Enough of streamlit for a panel: records every call, returns the first option / default."""

    def __init__(self):
        self.calls: list[tuple[str, tuple]] = []

    def columns(self, spec, **kw):
        return [self] * (spec if isinstance(spec, int) else len(spec))

    def selectbox(self, label, options, index=0, **kw):
        return list(options)[index]

    def slider(self, label, lo, hi, value=None, **kw):
        return lo if value is None else value

    def __getattr__(self, name):
        return lambda *a, **k: self.calls.append((name, a))


@pytest.mark.parametrize("name", ANALYSES)
def test_every_analysis_has_a_panel_that_reads_a_bare_result(name):
    """``app/panels/<name>.py`` exists, and its panel survives a result with no metrics."""
    assert (APP_DIR / "panels" / f"{name}.py").exists()
    load_panel(name)(Result(name), RecordingSt())


def test_reversal_panel_reads_the_result_and_loads_no_model(monkeypatch):
    """The reversal panel names the run's models and example questions, and sends the user to the
    Explore page: loading a model here would raise."""

    def no_model(*a, **k):
        raise AssertionError("a panel loaded a model")

    monkeypatch.setattr(interp, "load_model", no_model)
    monkeypatch.setattr(builders, "load_model_dir", no_model)
    facts = FactsConfig(
        variant="token", n_pairs=12, n_train_templates=3, n_heldout_templates=1, seed=0
    )
    result = Result(
        "reversal",
        {},
        {
            "models": [
                {
                    "variant": "token",
                    "objective": o,
                    "seed": 0,
                    "name": f"zoo:rev-{o}",
                    "path": "/nowhere",
                }
                for o in ("clm", "mlmu")
            ],
            "summary": {
                "token/clm": {"same_direction_train": 1.0, "reverse_train": 0.0, "chance": 0.25}
            },
            "facts": {"token": facts.model_dump(mode="json")},
        },
    )
    st = RecordingSt()
    load_panel("reversal")(result, st)
    shown = [a[0] for kind, a in st.calls if a]
    table = next(a for kind, a in st.calls if kind == "dataframe")[0]
    assert [r["objective"] for r in table] == ["causal LM", "MLM-U"] and table[0][
        "reversed, order swapped (acc.)"
    ] == 0.0
    text = "\n".join(str(x) for x in shown)
    assert "Explore a model" in text and "never trained" in text


def test_seeds_run_shows_k_of_n_per_criterion_and_each_seeds_run(roots, fake_analysis):
    stamps = ["20240301-000000-aaaaa0", "20240301-000001-aaaaa1", "20240301-000002-aaaaa2"]
    paths = [
        make_run(roots, st, claim_value=v) for st, v in zip(stamps, (0.3, 0.01, 0.2), strict=True)
    ]
    summary = aggregate({s: Result.load(p) for s, p in enumerate(paths)}, "fake_analysis")
    seeds_path = roots / "fake_exp" / "20240301-000009-seedsx"
    summary.save(seeds_path)
    write_json(
        seeds_path / "run.json",
        {
            "experiment": "fake_exp",
            "preset": "quick",
            "analysis": "fake_analysis",
            "created": "20240301-000009",
            "seeds": [0, 1, 2],
            "runs": [f"fake_exp/{s}" for s in stamps],
        },
    )
    at = analysis_page()
    assert not at.exception
    assert "quick, seeds 0-2" in at.selectbox[0].options[0]
    table = frames(at)[0].set_index("name")
    assert table.loc["transformer_beats_lstm", "seeds held"] == "2 of 3"
    assert table.loc["exact_identity", "seeds held"] == "3 of 3"
    assert table.loc["transformer_beats_lstm", "seed 1"] == pytest.approx(0.01)
    assert "holds in every seed" in texts(at)
    at.selectbox[1].set_value(1).run()  # one seed's run in full, below the summary
    assert not at.exception
    assert CUSTOM_PANEL_TEXT in texts(at)
    at.selectbox[0].set_value(
        f"fake_exp/{stamps[0]}"
    ).run()  # a seed's own run says where it belongs
    assert not at.exception and "One seed of the seeds run" in texts(at)
