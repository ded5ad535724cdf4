"""Evaluating circuits: the circuit run, faithfulness curves, CPR / CMD areas, path patching.

The *circuit run* of an edge set ``C`` (Hanna et al. 2024): every edge outside ``C`` carries
the corrupt run's writer value, every edge in ``C`` the value its writer computes in this run
(writers are recomputed from their own, possibly patched, inputs). Faithfulness of ``C``:
``f(C) = (m(C) - m(corrupt)) / (m(clean) - m(corrupt))`` with ``m`` the metric's mean over
prompts; 1 = the circuit does the whole task, 0 = no better than the corrupt run.

The MIB areas (Mueller et al. 2025) summarise a curve of ``f`` over the share of edges kept
(``share`` in [0, 1], trapezoids): **CPR** = area under ``f`` (higher is better), **CMD** =
area under ``|1 - f|`` (lower is better). Our curves are sampled at the shares asked for,
plus 0 and 1 (where ``f`` is 0 and 1 by construction).

*Path patching* (Wang et al. 2022; Goldowsky-Dill et al. 2023) of senders ``S`` to receivers
``R``: only the edges ``s -> r`` carry the corrupt value; everything else, including every
other path from ``S``, is the clean run's, and the receivers' changed outputs propagate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from jaxtyping import Bool, Float

from interp.methods.circuits.attribution import Prompts, _pairs, patched_metric
from interp.methods.circuits.forward import RunActs, build_graph, run
from interp.methods.circuits.graph import Graph, ScoredGraph, top_k_mask
from interp.tracing.model import Model

Metric = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class Curve:
    """Faithfulness of circuits of growing size: ``k`` edges (``share`` of all edges) and
    ``f`` per size; ``metric`` the mean metric per circuit; ``clean`` / ``corrupt`` the two
    reference means. ``f_std`` (random circuits) is the spread over draws."""

    name: str
    k: np.ndarray
    share: np.ndarray
    metric: np.ndarray
    f: np.ndarray
    clean: float
    corrupt: float
    f_std: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def share_for(self, level: float) -> float:
        """Smallest sampled share whose faithfulness reaches ``level`` (NaN if none does)."""
        hit = np.nonzero(self.f >= level)[0]
        return float(self.share[hit[0]]) if len(hit) else float("nan")

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": self.name,
            "k": self.k.tolist(),
            "share": self.share.tolist(),
            "metric": self.metric.tolist(),
            "f": self.f.tolist(),
            "clean": self.clean,
            "corrupt": self.corrupt,
            "extra": self.extra,
        }
        if self.f_std is not None:
            d["f_std"] = self.f_std.tolist()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Curve:
        return cls(
            d["name"],
            np.asarray(d["k"]),
            np.asarray(d["share"]),
            np.asarray(d["metric"]),
            np.asarray(d["f"]),
            d["clean"],
            d["corrupt"],
            None if d.get("f_std") is None else np.asarray(d["f_std"]),
            d.get("extra", {}),
        )


def areas(share: Sequence[float], f: Sequence[float]) -> tuple[float, float]:
    """``(CPR, CMD)``: trapezoid areas of ``f`` and ``|1 - f|`` over ``share`` (0 and 1 added,
    where ``f`` is 0 and 1, if missing)."""
    s, y = np.asarray(share, float), np.asarray(f, float)
    order = np.argsort(s)
    s, y = s[order], y[order]
    if s[0] > 0:
        s, y = np.r_[0.0, s], np.r_[0.0, y]
    if s[-1] < 1:
        s, y = np.r_[s, 1.0], np.r_[y, 1.0]
    return float(np.trapezoid(y, s)), float(np.trapezoid(np.abs(1 - y), s))


class CircuitEvaluator:
    """Circuit runs of one task: caches the clean and corrupt runs of every batch once, then
    evaluates any number of edge sets (``[writers, readers]`` masks, True = in the circuit)."""

    def __init__(
        self,
        m: Model,
        clean: Prompts,
        corrupt: Prompts,
        metric: Metric,
        *,
        graph: Graph | None = None,
        batch_size: int = 16,
        max_rows: int = 256,
    ) -> None:
        self.m = m
        self.clean, self.corrupt = _pairs(m, clean, corrupt)
        self.g = graph or build_graph(m)
        self.metric, self.batch_size, self.max_rows = metric, batch_size, max_rows
        self.batches: list[tuple[torch.Tensor, torch.Tensor, RunActs]] = []
        clean_v: list[torch.Tensor] = []
        corrupt_v: list[torch.Tensor] = []
        with torch.no_grad():
            for i in range(0, len(self.clean), batch_size):
                x, xc = self.clean[i : i + batch_size], self.corrupt[i : i + batch_size]
                idx = torch.arange(i, i + len(x))
                c = run(m, self.g, xc)
                self.batches.append((x, idx, c.recorded()))
                clean_v.append(metric(run(m, self.g, x, record=False).logits, idx).float().cpu())
                corrupt_v.append(metric(c.logits, idx).float().cpu())
        self.clean_values = torch.cat(clean_v)  # [n]
        self.corrupt_values = torch.cat(corrupt_v)

    @property
    def clean_mean(self) -> float:
        return float(self.clean_values.mean())

    @property
    def corrupt_mean(self) -> float:
        return float(self.corrupt_values.mean())

    def patched(
        self, patches: Bool[torch.Tensor, "copies writers readers"]
    ) -> Float[torch.Tensor, "copies n"]:
        """Metric per prompt with each patch (True = the edge carries the corrupt value)."""
        return torch.cat(
            [
                patched_metric(
                    self.m, self.g, x, src, self.metric, patches, idx=idx, max_rows=self.max_rows
                )
                for x, idx, src in self.batches
            ],
            1,
        )

    def circuits(
        self, keep: Bool[np.ndarray, "copies writers readers"]
    ) -> Float[torch.Tensor, "copies n"]:
        """Metric per prompt of each circuit run (edges outside ``keep[c]`` corrupted)."""
        keep_t = torch.as_tensor(np.asarray(keep, dtype=bool))
        if keep_t.ndim == 2:
            keep_t = keep_t[None]
        return self.patched(~keep_t & torch.as_tensor(self.g.valid))

    def faithfulness(self, values: torch.Tensor) -> np.ndarray:
        """``f`` of mean metric values ``[copies, n]`` -> ``[copies]``."""
        gap = self.clean_mean - self.corrupt_mean
        if abs(gap) < 1e-12:
            raise ValueError(
                "the clean and corrupt runs give the same mean metric: faithfulness is undefined"
            )
        return ((values.mean(1) - self.corrupt_mean) / gap).numpy()

    def curve(
        self, sg: ScoredGraph, ks: Sequence[int], absolute: bool = True, name: str = ""
    ) -> Curve:
        """Faithfulness of the top-``k`` edges of ``sg`` for each ``k``."""
        keep = np.stack([top_k_mask(sg.scores, self.g.valid, int(k), absolute) for k in ks])
        vals = self.circuits(keep)
        return Curve(
            name or sg.method,
            np.asarray(ks),
            np.asarray(ks) / self.g.n_edges,
            vals.mean(1).numpy(),
            self.faithfulness(vals),
            self.clean_mean,
            self.corrupt_mean,
        )

    def random_curve(self, ks: Sequence[int], draws: int = 3, seed: int = 0) -> Curve:
        """Faithfulness of ``draws`` random edge sets of each size (mean, and spread in
        ``f_std``): the baseline a scored circuit must beat."""
        rng = np.random.default_rng(seed)
        valid = self.g.valid
        keep = np.stack(
            [
                top_k_mask(rng.random(valid.shape), valid, int(k), False)
                for k in ks
                for _ in range(draws)
            ]
        )
        vals = self.circuits(keep)
        f = self.faithfulness(vals).reshape(len(ks), draws)
        return Curve(
            "random",
            np.asarray(ks),
            np.asarray(ks) / self.g.n_edges,
            vals.mean(1).view(len(ks), draws).mean(1).numpy(),
            f.mean(1),
            self.clean_mean,
            self.corrupt_mean,
            f_std=f.std(1),
        )


def path_patching(
    m: Model,
    clean: Prompts,
    corrupt: Prompts,
    metric: Metric,
    senders: Sequence[int],
    receivers: Sequence[int],
    *,
    graph: Graph | None = None,
    batch_size: int = 16,
) -> Float[torch.Tensor, " n"]:
    """Effect on ``metric`` per prompt (patched minus clean) of patching the paths from the
    writers ``senders`` to the readers ``receivers`` (indices into the graph) with the corrupt
    run's values; edges that do not exist (sender after receiver) are skipped."""
    ev = CircuitEvaluator(m, clean, corrupt, metric, graph=graph, batch_size=batch_size)
    g = ev.g
    P = torch.zeros(1, g.n_writers, g.n_readers, dtype=torch.bool)
    for s in senders:
        for r in receivers:
            if s < g.n_up[r]:
                P[0, s, r] = True
    if not bool(P.any()):
        raise ValueError("no sender runs before any receiver: the path set is empty")
    return ev.patched(P)[0] - ev.clean_values
