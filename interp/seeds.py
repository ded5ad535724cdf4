"""Runs over training seeds: does each criterion hold for one trained model, or for k of n?

A result that holds for one trained model is an anecdote. ``interp run <experiment> --seeds 0-2``
runs the experiment once per seed (each run's ``seed`` also picks its models' training seed,
:func:`interp.runs.with_training_seed`, so seed 1 trains and uses ``zoo:<recipe>@1``) and then
writes one more run, the *seeds run*, whose criteria say per criterion in how many seeds it
holds::

    runs/<experiment>/<stamp>-<hash>-<random>/     one per seed, ordinary runs
    runs/<experiment>/<stamp>-<hash>-<random>/     the seeds run: run.json has "seeds" and "runs"

In the seeds run each criterion keeps its name, kind, op and threshold; ``value`` is the median
over seeds, ``values`` lists every seed's value, ``seeds_held`` / ``seeds_run`` count the seeds
where it holds / where it was judged, and ``holds`` means it held in every seed. The dashboard
shows "k of n seeds" per criterion.

    from interp.seeds import parse_seeds, run_seeds
    path = run_seeds("bigram", "quick", seeds=parse_seeds("0-2"))
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from interp.results import Criterion, Result
from interp.runs import build_config, get_experiment, parse_sets, write_run
from interp.utils import seed_label  # noqa: F401  (re-exported; it lives in utils for plotting)

log = logging.getLogger("interp")

MAX_SEEDS = 100  # a longer list is a typo ("0-1000"), not a plan


class SeedsConfig(BaseModel):
    """What a seeds run was asked for (its ``config.json``)."""

    model_config = ConfigDict(extra="forbid")

    experiment: str
    preset: str
    seeds: list[int]
    overrides: dict[str, Any] = {}


def parse_seeds(text: str | Sequence[int]) -> list[int]:
    """``"0-2"`` -> ``[0, 1, 2]``; ``"0,3,5"`` -> ``[0, 3, 5]``; ``"0-1,7"`` -> ``[0, 1, 7]``."""
    if not isinstance(text, str):
        seeds = [int(s) for s in text]
    else:
        seeds = []
        for part in text.replace(" ", "").split(","):
            lo, dash, hi = part.partition("-")
            try:
                if dash:
                    a, b = int(lo), int(hi)
                    if b < a:
                        raise ValueError
                    if len(seeds) + b - a + 1 > MAX_SEEDS:  # counted before any list is built
                        raise OverflowError
                    seeds += range(a, b + 1)
                else:
                    seeds.append(int(part))
                if len(seeds) > MAX_SEEDS:
                    raise OverflowError
            except OverflowError:
                raise ValueError(
                    f"--seeds {text!r}: more than {MAX_SEEDS} seeds; at most {MAX_SEEDS}"
                ) from None
            except ValueError:
                raise ValueError(
                    f"--seeds {text!r}: expected seeds like '0-2', '0,3,5' or '0-1,7' "
                    f"(whole numbers >= 0, ranges low-high)"
                ) from None
    if not seeds or any(s < 0 for s in seeds):
        raise ValueError(f"--seeds {text!r}: give at least one seed, each >= 0")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds {text!r}: seed listed twice")
    if len(seeds) > MAX_SEEDS:
        raise ValueError(f"--seeds {text!r}: {len(seeds)} seeds; at most {MAX_SEEDS}")
    return seeds


def aggregate(results: dict[int, Result], analysis: str) -> Result:
    """One :class:`Result` whose criteria count, per criterion, the seeds where it holds."""
    by_name: dict[str, dict[int, Criterion]] = {}
    for seed, result in results.items():
        for c in result.criteria:
            by_name.setdefault(c.name, {})[seed] = c
    criteria = []
    for name, per_seed in by_name.items():
        first = next(iter(per_seed.values()))
        values = [per_seed[s].value if s in per_seed else None for s in results]
        judged = [
            v for s, v in zip(results, values, strict=True) if s in per_seed and v is not None
        ]
        held = sum(c.holds for c in per_seed.values())
        criteria.append(
            Criterion(
                name=name,
                value=statistics.median(judged) if judged else None,
                threshold=first.threshold,
                op=first.op,
                kind=first.kind,
                holds=held == len(results),
                description=first.description,
                seeds_held=held,
                seeds_run=len(per_seed),
                values=values,
            ).model_dump()
        )
    per_seed_summary = {
        str(s): {
            "criteria held": f"{sum(c.holds for c in r.criteria)}/{len(r.criteria)}",
            "wall_seconds": r.metrics.get("wall_seconds"),
        }
        for s, r in results.items()
    }
    return Result(
        analysis,
        metrics={"criteria": criteria, "seeds": list(results), "per_seed": per_seed_summary},
    )


def run_seeds(
    name: str,
    preset: str = "quick",
    overrides: Any = None,
    *,
    seeds: Sequence[int],
    root: Path | None = None,
) -> Path:
    """Run experiment ``name`` once per seed, then write the seeds run; return its path."""
    # the analysis registry imports every analysis: loaded only when seeds are run, so that the
    # dashboard can import this module's helpers cheaply
    import interp.analyses as analyses

    sets = parse_sets(overrides)
    if "seed" in sets:
        raise ValueError("--seeds sets each run's seed: drop --set seed=... (or drop --seeds)")
    exp = get_experiment(name)
    configs = {
        s: build_config(exp, preset, {**sets, "seed": s}) for s in seeds
    }  # all valid before any work
    fn = analyses.get(exp.analysis).run
    runs: dict[int, Path] = {}
    t0 = time.time()
    for i, seed in enumerate(seeds):
        log.info("seed %d (%d of %d)", seed, i + 1, len(seeds))
        print(f"[seed {seed}: {i + 1} of {len(seeds)}]", flush=True)
        runs[seed] = write_run(
            name, preset, {**sets, "seed": seed}, configs[seed], fn, exp.analysis, root=root
        )
    results = {s: Result.load(p) for s, p in runs.items()}
    spent = time.time() - t0
    summary = aggregate(results, exp.analysis)
    summary.metrics["runs"] = {str(s): f"{name}/{p.name}" for s, p in runs.items()}
    summary.metrics["seeds_wall_seconds"] = spent
    cfg = SeedsConfig(experiment=name, preset=preset, seeds=list(seeds), overrides=sets)
    return write_run(
        name,
        preset,
        sets,
        cfg,
        lambda _: summary,
        exp.analysis,
        root=root,
        extra={"seeds": list(seeds), "runs": [f"{name}/{p.name}" for p in runs.values()]},
    )
