"""Experiments and run directories.

An experiment is ``experiments/<name>.yaml``: the analysis it runs and its presets::

    analysis: model_report
    description: ...
    presets:
      quick: {model: "zoo:code-lm-tiny", n_prompts: 16}
      full:  {model: "zoo:code-lm", n_prompts: 256}

``interp run <experiment> --preset quick --set seed=3`` validates the preset plus overrides
against the analysis's ``Config``, runs it, and writes atomically::

    runs/<experiment>/<YYYYmmdd-HHMMSS>.<microseconds>-<config hash>-<random>/
        config.json  metrics.json  arrays/*.npy  figures/*.json  log.txt  run.json

A crash leaves only a hidden ``.tmp`` directory, never a half run that looks complete (stale
ones are removed after a day). Two runs never share a directory, and no run replaces another.
"""

from __future__ import annotations

import logging
import os
import secrets
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from interp.fields import check_devices_present
from interp.models import zoo
from interp.results import Result, recheck_criteria
from interp.utils import (
    REPO_ROOT,
    atomic_path,
    clean_stale_tmp,
    config_hash,
    read_object,
    runs_dir,
    unknown_name_error,
    write_json,
)

log = logging.getLogger("interp")

# The analysis registry (interp.analyses) is imported inside the functions that build or run an
# analysis: loading it imports every analysis (torch and all), and listing or reading runs (the
# dashboard, `interp runs`) must not pay for that.


def experiments_dir() -> Path:
    """``$INTERP_EXPERIMENTS`` or ``<repo>/experiments``."""
    return Path(os.environ.get("INTERP_EXPERIMENTS", REPO_ROOT / "experiments"))


@dataclass(frozen=True)
class Experiment:
    name: str
    analysis: str
    description: str
    presets: dict[str, dict]
    path: Path


def experiments(errors: list[str] | None = None) -> dict[str, Experiment]:
    """Every experiment config in the experiments directory, by name. A broken file raises
    ``ValueError`` naming it, or, when an ``errors`` list is given, is skipped and described there
    (so one broken file does not hide the others)."""
    out = {}
    for f in sorted(experiments_dir().glob("*.yaml")):
        try:
            out[f.stem] = _read_experiment(f)
        except ValueError as e:
            if errors is None:
                raise
            errors.append(str(e))
    return out


def _read_experiment(f: Path) -> Experiment:
    try:
        data = yaml.safe_load(f.read_text()) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"experiment file {f} is not valid YAML: {e}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"experiment file {f} cannot be read: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("analysis"), str):
        raise ValueError(f"experiment file {f} has no 'analysis: <name>' key at the top level")
    presets = data.get("presets") or {}
    if not isinstance(presets, dict) or any(
        not isinstance(v, (dict, type(None))) for v in presets.values()
    ):
        raise ValueError(f"experiment file {f}: 'presets' must map each preset to its settings")
    presets = {str(k): dict(v or {}) for k, v in presets.items()}
    return Experiment(f.stem, data["analysis"], str(data.get("description") or ""), presets, f)


def get_experiment(name: str) -> Experiment:
    errors: list[str] = []
    exps = experiments(errors)  # a broken file elsewhere does not stop this experiment
    if name not in exps:
        if (experiments_dir() / f"{name}.yaml").exists():
            return _read_experiment(experiments_dir() / f"{name}.yaml")  # raises, naming the file
        raise unknown_name_error("experiment", name, sorted(exps))
    return exps[name]


# ------------------------------------------------------------------ config building
def field_paths(Config: type) -> list[str]:
    """Dotted names of every settable field of a pydantic config (nested models expanded)."""
    paths = []
    for name, f in Config.model_fields.items():
        ann = f.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            paths += [f"{name}.{sub}" for sub in field_paths(ann)]
        paths.append(name)
    return paths


def parse_sets(items: list[str] | dict | None) -> dict[str, Any]:
    """``["a=1", "b.c=x"]`` -> ``{"a": 1, "b.c": "x"}`` (values parsed as YAML scalars)."""
    if isinstance(items, dict):
        return dict(items)
    out = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        try:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            out[key.strip()] = value
    return out


def build_config(experiment: str | Experiment, preset: str = "quick", overrides: Any = None):
    """The validated analysis Config for ``experiment``'s ``preset`` plus ``overrides``."""
    import interp.analyses as analyses

    exp = experiment if isinstance(experiment, Experiment) else get_experiment(experiment)
    cfg = config_from_presets(
        analyses.get(exp.analysis).Config,
        exp.presets,
        preset,
        overrides,
        what=f"experiment {exp.name!r}, analysis {exp.analysis!r}",
    )
    return with_training_seed(cfg)


def with_training_seed(cfg: Any) -> Any:
    """``cfg`` with its zoo models swapped for those trained with the run's seed.

    A run's ``seed`` picks its models' training seeds too (``--set seed=7`` trains and uses
    ``zoo:<recipe>@7``; see :func:`interp.models.zoo.seeded_names`), so that a result checked
    over seeds is checked over trained models, not only over evaluation draws. Seed 0 is the
    recipes as registered. Pin a model with ``zoo:<recipe>@N`` to keep it whatever the seed."""
    seed = getattr(cfg, "seed", None)
    if not isinstance(cfg, BaseModel) or not isinstance(seed, int) or seed == 0:
        return cfg
    values = {k: getattr(cfg, k) for k in type(cfg).model_fields}
    names = [
        v
        for value in values.values()
        for v in (value if isinstance(value, list) else [value])
        if isinstance(v, str)
    ]
    swap = zoo.seeded_names(names, seed)
    if not swap:
        return cfg
    update = {
        k: ([swap.get(v, v) for v in value] if isinstance(value, list) else swap[value])
        for k, value in values.items()
        if (isinstance(value, list) and any(isinstance(v, str) and v in swap for v in value))
        or (isinstance(value, str) and value in swap)
    }
    log.info(
        "seed %d: models trained with seed %s",
        seed,
        ", ".join(f"{k}={v}" for k, v in update.items()),
    )
    return type(cfg).model_validate({**cfg.model_dump(), **update})


def config_from_presets(
    Config: type,
    presets: dict[str, dict],
    preset: str,
    overrides: Any = None,
    *,
    what: str = "config",
):
    """``Config`` validated from ``presets[preset]`` plus ``--set`` style ``overrides``."""
    if preset not in presets:
        raise unknown_name_error("preset", preset, sorted(presets))
    values = _nested(dict(presets[preset]))
    valid = field_paths(Config)
    for key, value in parse_sets(overrides).items():
        if key not in valid:
            err = unknown_name_error("config key", key, valid)
            raise KeyError(f"--set {key}=...: {err.args[0]} ({what})")
        _assign(values, key.split("."), value)
    try:
        return Config(**values)
    except ValidationError as e:
        lines = [
            f"  {'.'.join(map(str, err['loc']))}: {err['msg']} (got {err.get('input')!r})"
            for err in e.errors()
        ]
        raise ValueError(
            f"invalid config ({what}, preset {preset!r}):\n" + "\n".join(lines)
        ) from None


def _nested(values: dict) -> dict:
    out: dict = {}
    for k, v in values.items():
        _assign(out, k.split("."), v)
    return out


def _assign(d: dict, keys: list[str], value: Any) -> None:
    for k in keys[:-1]:
        d = d.setdefault(k, {})
    d[keys[-1]] = value


# ------------------------------------------------------------------ running
def run_experiment(
    name: str, preset: str = "quick", overrides: Any = None, *, root: Path | None = None
) -> Path:
    """Run an experiment and write its run directory atomically; return its path."""
    import interp.analyses as analyses

    exp = get_experiment(name)
    cfg = build_config(exp, preset, overrides)
    return write_run(
        name, preset, overrides, cfg, analyses.get(exp.analysis).run, exp.analysis, root=root
    )


def write_run(
    name: str,
    preset: str,
    overrides: Any,
    cfg: Any,
    fn: Any,
    analysis: str,
    *,
    root: Path | None = None,
    extra: dict | None = None,
) -> Path:
    """Run ``fn(cfg) -> Result`` and write ``<root>/<name>/<stamp>-<hash>/`` atomically, with its
    log (``extra`` goes into ``run.json``, e.g. a seeds run's ``seeds`` and ``runs``)."""
    now = time.time()
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    dump = cfg.model_dump(mode="json")
    # microseconds + randomness: two identical runs started together get two directories
    run_id = f"{stamp}.{int(now % 1 * 1e6):06d}-{config_hash(dump, 6)}-{secrets.token_hex(2)}"
    run_path = Path(root or runs_dir()) / name / run_id
    check_devices_present(cfg)  # before any work: a device this machine lacks
    _check_writable(run_path.parent)  # ... and a read-only or missing runs folder
    result = None
    try:
        with atomic_path(run_path, replace=False) as tmp:
            tmp.mkdir(parents=True)
            header = f"experiment {name} preset {preset} analysis {analysis} config {dump}"
            result, seconds = _run_logged(fn, cfg, tmp / "log.txt", header)
            result._write(tmp)
            write_json(
                tmp / "run.json",
                {
                    "experiment": name,
                    "preset": preset,
                    "analysis": analysis,
                    "created": stamp,
                    "overrides": parse_sets(overrides),
                    "seconds": seconds,
                    **(extra or {}),
                },
            )
    except OSError as e:
        if result is None:
            raise
        raise RunNotSaved(result, run_path, e) from None
    return run_path


def _run_logged(fn: Any, cfg: Any, log_file: Path, header: str) -> tuple[Any, float]:
    """``(fn(cfg), seconds)`` with the ``interp`` log also written to ``log_file``."""
    handler = logging.FileHandler(log_file)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    old_level = log.level
    log.setLevel(logging.INFO)
    t0 = time.time()
    try:
        log.info("%s", header)
        result = fn(cfg)
        result.config = result.config or cfg.model_dump(mode="json")
        seconds = time.time() - t0
        result.metrics.setdefault("wall_seconds", seconds)
        log.info("done in %.1f s\n%s", seconds, result.summary())
    except BaseException:
        log.exception("run failed")
        raise
    finally:
        log.removeHandler(handler)
        handler.close()
        log.setLevel(old_level)
    return result, seconds


class RunNotSaved(OSError):
    """The run finished but its directory could not be written (disk full, folder gone read-only).
    Nothing half-written is left behind; ``result`` keeps what was computed: save it with
    ``result.save(<dir>)`` where there is room."""

    def __init__(self, result: Any, path: Path, cause: OSError):
        self.result, self.path, self.cause = result, path, cause
        why = cause.strerror or cause
        super().__init__(
            cause.errno,
            f"the run finished, but {path} could not be written ({why}); "
            "nothing half-written was left there",
        )


def _check_writable(folder: Path) -> None:
    """``OSError`` naming ``folder`` and ``INTERP_RUNS`` when runs cannot be written there."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        clean_stale_tmp(folder)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise OSError(
            e.errno,
            f"cannot write runs in {folder} ({e.strerror or e}); "
            "set INTERP_RUNS to a writable folder",
        ) from None


@dataclass(frozen=True)
class RunInfo:
    path: Path
    experiment: str
    analysis: str
    preset: str
    created: str
    n_criteria: int
    n_hold: int
    sanity_failures: int
    damaged: str = ""  # why the run cannot be read ("<file>: <reason>"), or "" for a sound run
    seeds: tuple[int, ...] = ()  # a seeds run (interp.seeds): the seeds it summarises
    seed_runs: tuple[str, ...] = ()  # ... and their run ids, in the same order
    mismatched: tuple[str, ...] = ()  # criteria whose stored verdict disagreed with their numbers

    @property
    def id(self) -> str:
        return f"{self.experiment}/{self.path.name}"


def list_runs(
    experiment: str | None = None, *, root: Path | None = None, include_damaged: bool = False
) -> list[RunInfo]:
    """Complete runs, newest first (incomplete ``.tmp`` directories are skipped). A run whose
    ``run.json`` or ``metrics.json`` cannot be read is left out, or with ``include_damaged``
    listed with ``damaged`` saying which file and why."""
    root = Path(root or runs_dir())
    out = []
    if not root.is_dir():
        return out
    for exp_dir in sorted(root.iterdir()):
        if (
            not exp_dir.is_dir()
            or exp_dir.name.startswith(".")
            or (experiment and exp_dir.name != experiment)
        ):
            continue
        for run in exp_dir.iterdir():
            if run.name.startswith(".") or not (run / "run.json").exists():
                continue
            try:
                info = run_info(run, exp_dir.name)
            except (ValueError, FileNotFoundError, OSError) as e:
                if include_damaged:
                    out.append(
                        RunInfo(
                            run,
                            exp_dir.name,
                            "?",
                            "?",
                            run.name[:15],
                            0,
                            0,
                            0,
                            damaged=str(e.args[0] if e.args else e),
                        )
                    )
                continue
            out.append(info)
    return sorted(out, key=lambda r: r.path.name, reverse=True)


def run_info(run: Path, experiment: str) -> RunInfo:
    """What ``interp runs`` shows of one run directory; ``ValueError`` naming the damaged file.
    Verdicts are recomputed from the values, never taken from disk."""
    meta, metrics = read_object(run / "run.json"), read_object(run / "metrics.json")
    if (run / "config.json").exists():
        read_object(run / "config.json")
    crit, changed = recheck_criteria(metrics.get("criteria", []), str(run / "metrics.json"))
    seeds, seed_runs = meta.get("seeds") or [], meta.get("runs") or []
    if not (isinstance(seeds, list) and isinstance(seed_runs, list)) or len(seeds) != len(
        seed_runs
    ):
        raise ValueError(
            f"{run / 'run.json'} is damaged: 'seeds' and 'runs' must be lists of the same length "
            "(one run id per seed)"
        )
    sanity_failures = sum(c.kind == "sanity" and not c.holds for c in crit)
    return RunInfo(
        run,
        str(meta.get("experiment", experiment)),
        str(meta.get("analysis", "?")),
        str(meta.get("preset", "?")),
        str(meta.get("created", run.name[:15])),
        len(crit),
        sum(c.holds for c in crit),
        sanity_failures,
        seeds=tuple(seeds),
        seed_runs=tuple(map(str, seed_runs)),
        mismatched=tuple(changed),
    )


def find_run(ref: str, *, root: Path | None = None) -> Path:
    """A run by path, ``<experiment>/<run>``, ``<experiment>`` (its latest) or a unique run-name
    prefix."""
    p = Path(ref)
    if (p / "metrics.json").exists():
        return p
    runs = list_runs(root=root, include_damaged=True)
    for r in runs:
        if r.id == ref or r.path.name == ref:
            return r.path
    latest = [r for r in runs if r.experiment == ref]
    if latest:
        if latest[0].damaged:  # never call an older run "latest" without a word
            older = [r.id for r in latest[1:] if not r.damaged][:3]
            raise ValueError(
                f"the latest run of {ref!r}, {latest[0].id}, is damaged ({latest[0].damaged}). "
                + (f"Older runs: {', '.join(older)}" if older else "It has no older sound run.")
            )
        return latest[0].path
    pref = [r for r in runs if r.path.name.startswith(ref) or r.id.startswith(ref)]
    if len(pref) == 1:
        return pref[0].path
    raise unknown_name_error("run", ref, [r.id for r in runs])


def load_run(ref: str | Path, *, root: Path | None = None):
    """The :class:`interp.Result` of a run."""
    return Result.load(find_run(str(ref), root=root))
