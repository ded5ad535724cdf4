"""The ``interp`` command line: a thin layer over the library.

    interp list                                   registered experiments
    interp run EXPERIMENT [--preset quick|full] [--set key=value]...
    interp runs [list|show RUN]                   saved runs
    interp zoo list | interp zoo build NAME       model zoo
    interp app [--port N]                         the Streamlit dashboard
    interp demo                                   every experiment's quick preset, then the dashboard

Only typer is imported at start-up; torch, TransformerLens and nnsight load when a
command needs them, so ``interp --help`` stays fast.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import List, Optional

import typer

app = typer.Typer(help="interp: trace transformers and RNNs, collect activations, run interpretability analyses.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
runs_app = typer.Typer(help="List and inspect saved runs.", invoke_without_command=True)
zoo_app = typer.Typer(help="The model zoo: seeded recipes trained once and cached.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")
app.add_typer(zoo_app, name="zoo")


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


@app.command("list")
def list_experiments() -> None:
    """List registered experiments and the analysis each one runs."""
    from interp.runs import experiments

    for name, exp in experiments().items():
        typer.echo(f"{name:<20} analysis={exp.analysis:<16} presets={','.join(exp.presets)}")
        if exp.description:
            typer.echo(f"    {' '.join(exp.description.split())[:110]}")


@app.command("run")
def run(
    experiment: str = typer.Argument(..., help="Experiment name (see `interp list`)."),
    preset: str = typer.Option("quick", "--preset", "-p", help="Preset: quick (CPU, minutes) or full."),
    sets: List[str] = typer.Option([], "--set", "-s", help="Override a config value: key=value (repeatable)."),
) -> None:
    """Run an experiment and write runs/<experiment>/<timestamp>-<hash>/."""
    from interp.runs import build_config, get_experiment, run_experiment

    try:
        exp = get_experiment(experiment)
        build_config(exp, preset, sets)  # validate before any heavy work
    except (KeyError, ValueError) as e:
        _fail(e.args[0] if e.args else str(e))
    typer.echo(f"running {experiment} ({exp.analysis}, preset {preset})")
    path = run_experiment(experiment, preset, sets)
    from interp.results import Result

    typer.echo(Result.load(path).summary())
    typer.echo(f"\nrun written to {path}")


@runs_app.callback()
def runs_main(ctx: typer.Context, experiment: Optional[str] = typer.Option(None, "--experiment", "-e")) -> None:
    """List saved runs (newest first)."""
    if ctx.invoked_subcommand is None:
        runs_list(experiment)


@runs_app.command("list")
def runs_list(experiment: Optional[str] = typer.Option(None, "--experiment", "-e")) -> None:
    """List saved runs (newest first)."""
    from interp.runs import list_runs

    rows = list_runs(experiment)
    if not rows:
        typer.echo("no runs yet: try `interp run model_report --preset quick`")
        return
    for r in rows:
        flag = f"  SANITY FAILURES: {r.sanity_failures}" if r.sanity_failures else ""
        typer.echo(f"{r.id:<48} {r.preset:<6} criteria {r.n_hold}/{r.n_criteria} hold{flag}")


@runs_app.command("show")
def runs_show(run: str = typer.Argument(..., help="A run path, <experiment>/<run>, or an experiment (its latest).")) -> None:
    """Show a run's config and criteria."""
    import json

    from interp.runs import find_run
    from interp.results import Result

    try:
        path = find_run(run)
        result = Result.load(path)
    except (KeyError, FileNotFoundError, ValueError) as e:
        _fail(e.args[0] if e.args else str(e))
    typer.echo(f"{path}\nanalysis: {result.analysis}\nconfig: {json.dumps(result.config)}\n")
    typer.echo(result.summary())


@zoo_app.command("list")
def zoo_list() -> None:
    """List zoo recipes and whether each is built."""
    from interp.models import zoo

    for name in zoo.names():
        r = zoo.get(name)
        state = "built" if zoo.is_built(name) else "not built"
        typer.echo(f"{name:<22} {state:<10} {r.description}")


@zoo_app.command("build")
def zoo_build(name: str, rebuild: bool = typer.Option(False, "--rebuild", help="Retrain even if cached.")) -> None:
    """Train (or load from cache) a zoo recipe."""
    from interp.models import zoo

    try:
        zoo.get(name)
    except KeyError as e:
        _fail(e.args[0])
    model = zoo.load(name, rebuild=rebuild)
    typer.echo(f"{model} at {zoo.get(name).path}")


@app.command("app")
def run_app(port: int = typer.Option(8501, help="Port to serve on."),
            address: str = typer.Option("127.0.0.1", help="Address to bind."),
            headless: bool = typer.Option(True, help="Do not open a browser.")) -> None:
    """Start the Streamlit dashboard."""
    home = Path(__file__).resolve().parents[1] / "app" / "Home.py"
    if not home.exists():
        _fail(f"dashboard entry point {home} is missing")
    cmd = [sys.executable, "-m", "streamlit", "run", str(home), "--server.port", str(port),
           "--server.address", address, "--server.headless", str(headless).lower(),
           "--browser.gatherUsageStats", "false"]
    typer.echo(f"dashboard at http://{address}:{port}")
    raise typer.Exit(subprocess.call(cmd))


@app.command("demo")
def demo(
    serve: bool = typer.Option(True, help="Start the dashboard after the runs."),
    port: int = typer.Option(8501),
    only: List[str] = typer.Option([], "--only", help="Run only these experiments."),
) -> None:
    """Run every registered experiment's quick preset, print a verdict table, start the dashboard."""
    from interp.results import Result
    from interp.runs import experiments, run_experiment

    exps = [e for e in experiments() if not only or e in only]
    summary = []
    for i, name in enumerate(exps, 1):
        typer.secho(f"[{i}/{len(exps)}] {name} (quick)", bold=True)
        try:
            result = Result.load(run_experiment(name, "quick"))
            crit = result.criteria
            summary.append((name, sum(c.holds for c in crit), len(crit),
                            sum(c.kind == "sanity" and not c.holds for c in crit), ""))
        except Exception as e:  # one broken experiment must not hide the others
            summary.append((name, 0, 0, 0, f"{type(e).__name__}: {e}"))
    typer.echo("\nexperiment            criteria held   sanity failures")
    for name, ok, n, bad, err in summary:
        typer.echo(f"{name:<22}{ok:>3}/{n:<12}{bad:>3}   {err}")
    if serve:
        run_app(port=port, address="127.0.0.1", headless=True)


def main() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    app()


if __name__ == "__main__":
    main()
