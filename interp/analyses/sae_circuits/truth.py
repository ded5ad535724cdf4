"""The ground truth: a sparse circuit of heads by exact activation patching on held-out prompts,
and (optionally) a sparse circuit of head -> head edges estimated by EAP-IG; and the check that
attribution patching agrees with activation patching where it must."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from jaxtyping import Bool, Float

from interp.analyses.sae_circuits.config import Config, seed_of

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GroundTruth:
    """One model and task's truth. ``effect [heads]``: each head's share of the clean -> corrupt
    metric gap when its output alone is patched from the counterfactual (exact activation
    patching); ``truths``: the circuit per ``gt_fractions`` entry (top heads by ``|effect|``).
    ``edge_effect [heads, heads]``: the estimated effect of each head -> head edge (NaN where
    the writer does not run before the reader); ``edge_truths``: the edge circuits per
    ``gt_edge_fractions`` entry (empty without edge truth)."""

    effect: Float[np.ndarray, " heads"]
    clean_metric: float
    corrupt_metric: float
    accuracy: float
    truths: list[Bool[np.ndarray, " heads"]]
    seconds: float = 0.0
    edge_effect: Float[np.ndarray, "heads heads"] | None = None
    edge_truths: list[Bool[np.ndarray, "heads heads"]] = field(default_factory=list)
    edge_seconds: float = 0.0

    @property
    def edge_valid(self) -> Bool[np.ndarray, "heads heads"] | None:
        """Head pairs with an edge (the writer's layer before the reader's)."""
        return None if self.edge_effect is None else ~np.isnan(self.edge_effect)

    def info(self) -> dict[str, float]:
        """The task's metrics, for the run's ``tasks_info``."""
        out = {
            "clean_metric": self.clean_metric,
            "corrupt_metric": self.corrupt_metric,
            "accuracy": self.accuracy,
        }
        if self.edge_effect is not None:
            out["circuit_edges"] = [int(t.sum()) for t in self.edge_truths]
            out["head_edges"] = int(np.sum(self.edge_valid))
        return out


def node_effects(m, ps, batch_size: int) -> tuple[np.ndarray, float, float, float]:
    """Per-head fraction of the clean->corrupt metric gap carried by the head (``[layers*heads]``)
    by exact activation patching of ``hook_z``, plus the clean / corrupt metric and the clean
    accuracy (NaN for a probability-difference task)."""
    from interp.methods.patching import activation_patching
    from interp.tracing.trace import trace

    metric = ps.metric_fn()
    idx = torch.arange(len(ps))
    with torch.no_grad():
        out_c, _ = trace(m, ps.clean)
        out_k, _ = trace(m, ps.corrupt)
    mc, mk = metric(out_c, idx).float(), metric(out_k, idx).float()
    gap = float((mk - mc).mean())
    eff = activation_patching(m, ps.clean, metric, corrupt=ps.corrupt, batch_size=batch_size)
    frac = (eff.mean(0) / gap).flatten().numpy() if abs(gap) > 1e-9 else np.zeros(eff[0].numel())
    acc = (
        float((out_c[idx, ps.answer_pos].argmax(-1) == ps.answer).float().mean())
        if ps.metric != "prob_diff"
        else float("nan")
    )
    return frac, float(mc.mean()), float(mk.mean()), acc


def head_edge_effects(m, ps, method: str, steps: int, batch_size: int) -> np.ndarray:
    """``[heads, heads]``: each head -> head edge's estimated effect, the sum of the absolute
    EAP / EAP-IG scores (:mod:`interp.methods.circuits`) of the writer head's edges into the
    reader head's query, key and value inputs (under grouped-query attention the key and value
    inputs are the reader's key/value head's, shared by its group); NaN where the writer's layer
    is not before the reader's."""
    from interp.methods.circuits.attribution import edge_attribution
    from interp.methods.circuits.forward import build_graph

    g = build_graph(m)
    sg = edge_attribution(
        m, ps.clean, ps.corrupt, ps.metric_fn(), method=method, steps=steps, graph=g,
        batch_size=batch_size,
    )  # fmt: skip
    L, H, KV = g.n_layers, g.n_heads, max(g.n_kv_heads, 1)
    writers = np.array([g.head_writer(l_, h) for l_ in range(L) for h in range(H)])
    s = np.abs(np.nan_to_num(sg.scores))  # [writers, readers]
    out = np.full((L * H, L * H), np.nan)
    for lr in range(L):
        start = g.attn_readers(lr).start
        for h in range(H):
            kv = h // (H // KV)
            readers = [start + h, start + H + kv, start + H + KV + kv]
            out[: lr * H, lr * H + h] = s[writers[: lr * H]][:, readers].sum(1)
    return out


def top_edges(effect: Float[np.ndarray, "heads heads"], frac: float) -> np.ndarray:
    """The edge circuit: the ``ceil(frac * edges)`` valid edges of largest effect."""
    valid = ~np.isnan(effect)
    k = max(1, int(np.ceil(frac * valid.sum())))
    flat = np.where(valid, effect, -np.inf).ravel()
    truth = np.zeros(flat.size, dtype=bool)
    truth[np.argsort(-flat, kind="stable")[:k]] = True
    return truth.reshape(effect.shape)


def task_truth(m, name: str, task: str, config: Config) -> GroundTruth:
    """Ground truth on ``n_gt_prompts`` held-out prompts: exact node effects and their circuits,
    and with ``edge_truth`` the estimated head -> head edge effects and their circuits."""
    from interp.data.sae_circuits import make_task
    from interp.methods.sae_scores import top_fraction

    gt_ps = make_task(
        task, m.tokenizer, config.n_gt_prompts, seed_of(config.seed, name, task, "gt")
    )
    t0 = time.perf_counter()
    effect, clean, corrupt, acc = node_effects(m, gt_ps, config.batch_size)
    seconds = time.perf_counter() - t0
    log.info(
        "%s %s: clean %.3f corrupt %.3f acc %.2f; top heads %s (%.0f s)",
        name, task, clean, corrupt, acc, np.argsort(-np.abs(effect))[:4].tolist(), seconds,
    )  # fmt: skip
    truths = [top_fraction(np.abs(effect), f) for f in config.gt_fractions]
    if config.edge_truth == "none":
        return GroundTruth(effect, clean, corrupt, acc, truths, seconds)
    t0 = time.perf_counter()
    edges = head_edge_effects(m, gt_ps, config.edge_truth, config.ig_steps, config.batch_size)
    edge_seconds = time.perf_counter() - t0
    log.info("%s %s: %s head->head edges in %.0f s", name, task, config.edge_truth, edge_seconds)
    edge_truths = [top_edges(edges, f) for f in config.gt_edge_fractions]
    return GroundTruth(
        effect, clean, corrupt, acc, truths, seconds, edges, edge_truths, edge_seconds
    )


@dataclass(frozen=True)
class AttributionCheck:
    """Attribution vs activation patching on one model: Pearson r at small alpha (divided by
    alpha; first order, they must agree), r at alpha = 1 (how linear the model is on the real
    counterfactuals), and the largest relative error at small alpha."""

    r_small_alpha: float
    r_full: float
    max_rel_err_small_alpha: float


def attribution_check(m, ps, alpha: float, batch_size: int) -> AttributionCheck:
    """:class:`AttributionCheck` on the paired prompts ``ps``."""
    from interp.methods.patching import activation_patching, attribution_patching

    metric = ps.metric_fn()
    kw = dict(corrupt=ps.corrupt, batch_size=batch_size)
    attr = attribution_patching(m, ps.clean, metric, **kw).flatten()
    small = activation_patching(m, ps.clean, metric, alpha=alpha, **kw).flatten() / alpha
    full = activation_patching(m, ps.clean, metric, **kw).flatten()

    def r(a: torch.Tensor, b: torch.Tensor) -> float:
        return float(np.corrcoef(a.numpy(), b.numpy())[0, 1])

    return AttributionCheck(
        r(small, attr),
        r(full, attr),
        float((small - attr).abs().max() / attr.abs().max().clamp_min(1e-12)),
    )
