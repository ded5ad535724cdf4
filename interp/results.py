"""Results: plain objects of metrics, arrays and figures that save, load and compare.

A :class:`Result` holds no model. ``metrics["criteria"]`` lists the paper's pass criteria
in one shape (:class:`Criterion`), read by the dashboard, the demo summary and outside checks.
On disk (a run directory)::

    config.json  metrics.json  arrays/<name>.npy  figures/<name>.json (plotly)
"""

from __future__ import annotations

import json
import math
import operator
import re
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from interp.utils import (
    atomic_path,
    owned_dir_problem,
    read_json,
    read_object,
    unknown_name_error,
    write_json,
)

_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq}


class Criterion(BaseModel):
    """One pass criterion: ``value op threshold``.

    ``kind``: "sanity" (must hold, or the implementation is wrong), "claim" (a paper's finding
    at our scale: it may honestly not hold) or "target" (a performance target of the benchmark)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    value: float | None
    threshold: float | None
    op: Literal[">=", "<=", ">", "<", "=="]
    holds: bool
    kind: Literal["sanity", "claim", "target"]
    description: str = ""
    # a seeds run's criterion (interp.seeds): held in seeds_held of seeds_run seeds, each seed's
    # value
    seeds_held: int | None = None
    seeds_run: int | None = None
    values: list[float | None] | None = None

    @classmethod
    def check(
        cls, name: str, value: Any, op: str, threshold: float, *, kind: str, description: str = ""
    ) -> Criterion:
        """Build a criterion and decide ``holds`` from the numbers (NaN/None never holds)."""
        v = None if value is None else float(value)
        ok = v is not None and not math.isnan(v) and bool(_OPS[op](v, threshold))
        return cls(
            name=name,
            value=None if v is None or math.isnan(v) else v,
            threshold=float(threshold),
            op=op,
            holds=ok,
            kind=kind,
            description=description,
        )

    def recomputed(self) -> Criterion:
        """This criterion with ``holds`` (and a seeds run's ``seeds_held``) decided again from its
        numbers: verdicts read from disk are never trusted (NaN/None never holds)."""
        if self.values is not None:  # a seeds run: held in every seed where it was judged
            held = sum(_holds(v, self.op, self.threshold) for v in self.values)
            return self.model_copy(update={"seeds_held": held, "holds": held == len(self.values)})
        return self.model_copy(update={"holds": _holds(self.value, self.op, self.threshold)})

    def verdict(self) -> str:
        if self.seeds_run is not None:
            verb = "holds" if self.kind != "target" else "met"
            return f"{verb} in {self.seeds_held} of {self.seeds_run} seeds"
        if self.holds:
            return "holds" if self.kind != "target" else "met"
        return {"sanity": "FAILS (implementation?)", "claim": "does not hold", "target": "missed"}[
            self.kind
        ]


def _holds(value: float | None, op: str, threshold: float | None) -> bool:
    if value is None or threshold is None or math.isnan(value) or math.isnan(threshold):
        return False
    return bool(_OPS[op](value, threshold))


def recheck_criteria(raw: Any, where: str = "metrics") -> tuple[list[Criterion], list[str]]:
    """``(criteria, names whose stored verdict disagreed)`` from a stored ``criteria`` list, each
    verdict recomputed from value, op and threshold. A malformed list or entry raises
    ``ValueError`` naming ``where`` (the file) and the entry."""
    if not isinstance(raw, list):
        raise ValueError(f"{where}: 'criteria' is not a list (got {type(raw).__name__})")
    out, changed = [], []
    for i, c in enumerate(raw):
        if isinstance(c, Criterion):
            c = c.model_dump()
        if not isinstance(c, dict):
            raise ValueError(
                f"{where}: criterion {i} is {c!r}, not an object with name, value, "
                "threshold, op, holds and kind"
            )
        try:
            stored = Criterion(**c)
        except ValidationError as e:
            bad = "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors()[:3])
            name = c.get("name", "?")
            raise ValueError(f"{where}: criterion {i} ({name!r}) is malformed: {bad}") from None
        fresh = stored.recomputed()
        if (fresh.holds, fresh.seeds_held) != (stored.holds, stored.seeds_held):
            changed.append(stored.name)
        out.append(fresh)
    return out, changed


class Result:
    """What an analysis returns: ``metrics`` (JSON), ``arrays`` (numpy), ``figures`` (plotly)."""

    def __init__(
        self,
        analysis: str,
        config: dict | None = None,
        metrics: dict | None = None,
        arrays: dict[str, np.ndarray] | None = None,
        figures: dict[str, Any] | None = None,
    ):
        self.analysis = analysis
        self.config = dict(config or {})
        self.metrics = dict(metrics or {})
        self.metrics.setdefault("criteria", [])
        self.arrays = {k: np.asarray(v) for k, v in (arrays or {}).items()}
        self.figures = dict(figures or {})
        # names of criteria whose verdict on disk disagreed with their numbers (set by load)
        self.verdict_mismatches: list[str] = []

    def __repr__(self) -> str:
        crit = self.criteria
        ok = sum(c.holds for c in crit)
        return (
            f"Result({self.analysis!r}, criteria {ok}/{len(crit)} hold, "
            f"arrays={sorted(self.arrays)}, figures={sorted(self.figures)})"
        )

    # ------------------------------------------------------------- criteria
    @property
    def criteria(self) -> list[Criterion]:
        """The criteria, each verdict recomputed from its value, op and threshold."""
        return recheck_criteria(self.metrics.get("criteria", []), f"result {self.analysis!r}")[0]

    def add_criterion(
        self, name: str, value: Any, op: str, threshold: float, *, kind: str, description: str = ""
    ) -> Criterion:
        c = Criterion.check(name, value, op, threshold, kind=kind, description=description)
        self.metrics["criteria"] = [x for x in self.metrics["criteria"] if _cname(x) != name] + [
            c.model_dump()
        ]
        return c

    def summary(self) -> str:
        """A plain-text table of the criteria (and a warning when stored verdicts were wrong)."""
        rows = (
            [
                f"WARNING: stored verdicts disagreed with their values and were recomputed: "
                f"{', '.join(self.verdict_mismatches)}"
            ]
            if self.verdict_mismatches
            else []
        )
        rows += [
            f"{'criterion':<44} {'kind':<7} {'value':>10} {'op':>3} {'threshold':>10}  verdict"
        ]
        for c in self.criteria:
            v = "n/a" if c.value is None else f"{c.value:.4g}"
            t = "" if c.threshold is None else f"{c.threshold:.4g}"
            rows.append(f"{c.name:<44} {c.kind:<7} {v:>10} {c.op:>3} {t:>10}  {c.verdict()}")
        return "\n".join(rows)

    # ------------------------------------------------------------- figures
    def figure(self, name: str):
        """A plotly ``Figure`` by name."""
        # plotly loads when a figure is asked for: reading a run's verdicts does not need it
        import plotly.graph_objects as go
        import plotly.io as pio

        if name not in self.figures:
            raise unknown_name_error("figure", name, sorted(self.figures))
        fig = self.figures[name]
        if isinstance(fig, go.Figure):
            return fig
        return pio.from_json(fig if isinstance(fig, str) else _dumps(fig))

    # ------------------------------------------------------------- save/load
    def save(self, path: str | Path) -> Path:
        """Write the result directory atomically (a crash never leaves a half result).

        An existing ``path`` is replaced only if it is a result directory holding nothing but
        what :meth:`save` writes; any other directory is left alone (``FileExistsError``)."""
        path = Path(path)
        with atomic_path(path, owned=result_dir_problem) as tmp:
            self._write(tmp)
        return path

    def _write(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        write_json(directory / "config.json", {"analysis": self.analysis, **self.config})
        write_json(directory / "metrics.json", self.metrics)
        (directory / "arrays").mkdir(exist_ok=True)
        for name, arr in self.arrays.items():
            np.save(directory / "arrays" / f"{name}.npy", arr, allow_pickle=False)
        (directory / "figures").mkdir(exist_ok=True)
        for name, fig in self.figures.items():
            text = (
                fig.to_json()
                if hasattr(fig, "to_json")
                else (fig if isinstance(fig, str) else _dumps(fig))
            )
            (directory / "figures" / f"{name}.json").write_text(text)

    @classmethod
    def load(cls, path: str | Path) -> Result:
        """Read a result directory; a missing or corrupted file raises a clear error."""
        path = Path(path)
        if not (path / "metrics.json").exists():
            raise FileNotFoundError(f"{path} is not a result directory (no metrics.json)")
        config = read_object(path / "config.json") if (path / "config.json").exists() else {}
        analysis = config.pop("analysis", "unknown")
        metrics = read_object(path / "metrics.json")
        where = str(path / "metrics.json")
        criteria, changed = recheck_criteria(metrics.get("criteria", []), where)
        metrics["criteria"] = [c.model_dump() for c in criteria]
        arrays = {}
        for f in sorted((path / "arrays").glob("*.npy")) if (path / "arrays").is_dir() else []:
            try:
                arrays[f.stem] = np.load(f, allow_pickle=False)
            except (ValueError, OSError) as e:
                raise ValueError(f"array file {f} is corrupted: {e}") from None
        figures = {}
        for f in sorted((path / "figures").glob("*.json")) if (path / "figures").is_dir() else []:
            try:
                figures[f.stem] = json.loads(f.read_text())
            except json.JSONDecodeError as e:
                raise ValueError(f"figure file {f} is corrupted: {e}") from None
        result = cls(analysis, config, metrics, arrays, figures)
        result.verdict_mismatches = changed
        return result


_RESULT_FILES = re.compile(
    r"(config|metrics|run)\.json|log\.txt|arrays/[^/]+\.npy"
    r"|figures/[^/]+\.json"
)


def result_dir_problem(path: Path) -> str:
    """ "" when ``path`` is a result (or run) directory holding only what interp writes there,
    else why it must not be replaced (see :func:`interp.utils.atomic_path`)."""

    def marker(p: Path) -> bool:
        return isinstance(read_json(p / "metrics.json").get("criteria"), list)

    def allowed(rel: str) -> bool:
        return bool(_RESULT_FILES.fullmatch(rel))

    return owned_dir_problem(path, "a result directory", allowed, marker)


def _cname(c: Any) -> str:
    return c.name if isinstance(c, Criterion) else c["name"]


def _dumps(obj: Any) -> str:
    return json.dumps(obj)
