"""Edge-level circuits: EAP and EAP-IG edge scores, faithfulness curves, the heads kept.

On paired prompts of a task (IOI with the ABC corruption and the logit difference, or
greater-than with the probability difference; built from the model's own tokenizer by
:mod:`interp.data.sae_circuits`), every edge of the model's graph (writers: input, heads,
MLPs; readers: each head's q/k/v, each MLP, the logits) is scored by EAP and EAP-IG
(:mod:`interp.methods.circuits`), and the top-k edges of each are evaluated as circuits
(every other edge gets the corrupt run's value) over a range of edge shares, against random
edge sets of the same size. Sanity criteria test the machinery (the full circuit is the clean
run, the empty one the corrupt run; EAP agrees with exact edge patching on a small
corruption; EAP-IG converges as the steps grow; batching changes nothing); claims are Hanna
et al. (2024)'s and Wang et al. (2022)'s at our scale.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, fields
from typing import Annotated, Literal

import annotated_types as at
import numpy as np
import torch
from jaxtyping import Bool, Float, Int
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy.stats import spearmanr

import interp
from interp.analyses import register
from interp.data.sae_circuits import PromptSet, make_task
from interp.fields import Count, Device, Fraction, ModelName, Seed
from interp.methods.circuits import scorers
from interp.methods.circuits.attribution import Metric
from interp.methods.circuits.evaluation import CircuitEvaluator, Curve, areas
from interp.methods.circuits.forward import build_graph, fast_reader_grads
from interp.methods.circuits.graph import Edge, Graph, ScoredGraph, node_dicts, top_k_mask
from interp.plotting import circuits as plots
from interp.plotting.model_report import head_heatmap
from interp.results import Result
from interp.tracing.gradients import metric_grads_batch
from interp.tracing.model import Model
from interp.tracing.trace import trace
from interp.utils import seed_everything

log = logging.getLogger(__name__)

LEVEL = 0.8  # the faithfulness a "small" circuit must reach (share of edges reported)


class Config(BaseModel):
    """Settings of the edge-level circuit analysis."""

    model_config = ConfigDict(extra="forbid")

    model: ModelName = "zoo:circuit-lm-s0"
    task: Literal["ioi", "ioi_natural", "greater_than"] = "ioi"
    n_prompts: Count = 32
    ig_steps: Count = 5  # EAP-IG interpolation steps (Hanna et al. use 5)
    convergence_steps: list[Count] = Field(default_factory=lambda: [1, 2, 4, 8], min_length=3)
    # shares of the edges kept (MIB's grid); 0 and 1 are evaluated too (the sanity identities)
    shares: list[Fraction] = Field(
        default_factory=lambda: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5], min_length=2
    )
    random_draws: Count = 3
    check_prompts: Count = 8  # prompts of the exact-patching, convergence and batching checks
    check_edges: Count = 48  # edges exact-patched against EAP (half the top by |EAP|, half random)
    check_alpha: Annotated[float, at.Gt(0.0), at.Le(1.0)] = 0.05  # the "small corruption"
    n_figure_edges: Count = 40
    batch_size: Count = 16
    device: Device = "cpu"
    seed: Seed = 0

    @model_validator(mode="after")
    def _consistent(self) -> Config:
        if self.check_prompts > self.n_prompts:
            raise ValueError(
                f"check_prompts={self.check_prompts} exceeds n_prompts={self.n_prompts}"
            )
        if sorted(set(self.convergence_steps)) != self.convergence_steps:
            raise ValueError(f"convergence_steps {self.convergence_steps} must increase strictly")
        return self


@dataclass(frozen=True)
class Task:
    """The model, its edge graph, the task's paired prompts and their metric."""

    model: Model
    graph: Graph
    prompts: PromptSet
    metric: Metric


@dataclass(frozen=True)
class Scores:
    """The two scored graphs the circuits are built from (scores ``[writers, readers]``)."""

    eap: ScoredGraph
    eap_ig: ScoredGraph


@dataclass(frozen=True)
class Sanity:
    """The full and the empty circuit against the clean and corrupt runs (max gap over prompts
    in units of ``|clean - corrupt|``), and the two reference means."""

    full_vs_clean: float
    empty_vs_corrupt: float
    clean: float
    corrupt: float


@dataclass(frozen=True)
class Checks:
    """EAP x alpha against exact patching on ``edges`` (names), EAP-IG's relative change
    between consecutive ``convergence_steps``, batched against one prompt at a time."""

    eap_small: Float[np.ndarray, " edges"]
    exact_small: Float[np.ndarray, " edges"]
    spearman: float
    ig_change: list[float]
    batching: float
    edges: list[str]


@dataclass(frozen=True)
class HeadRoles:
    """Per head, means over the clean IOI prompts: attention last -> IO (``name_mover``),
    second subject -> first (``duplicate``) and -> the token after it (``induction``), and the
    head's direct effect on the metric."""

    name_mover: Float[np.ndarray, "layers heads"]
    duplicate: Float[np.ndarray, "layers heads"]
    induction: Float[np.ndarray, "layers heads"]
    direct: Float[np.ndarray, "layers heads"]

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays as saved (``head_<role>``)."""
        return {f"head_{f.name}": getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Timing:
    """Seconds of one plain forward+backward (the unit), of each scorer and of the curves."""

    fwd_bwd_s: float
    eap_s: float
    eap_ig_s: float
    curves_s: float
    eap_ratio: float
    eap_ig_ratio: float


@dataclass(frozen=True)
class Circuit:
    """The EAP-IG circuit at ``LEVEL`` faithfulness: its ``k80`` edges (``keep``) and the
    faithfulness of random circuits of that size."""

    k80: int
    keep: Bool[np.ndarray, "writers readers"]
    random_f: float


def load(config: Config) -> Task:
    """The model (a transformer whose graph passes :func:`build_graph`'s checks), its graph,
    the task's prompts and metric."""
    m = interp.load_model(config.model, device=config.device)
    if m.kind != "transformer" or not m.n_layers:
        raise ValueError(f"circuits needs a transformer with blocks; {config.model} is a {m.kind}")
    if m.tokenizer is None:
        raise ValueError(
            f"circuits builds its prompts from the model's tokenizer; {config.model} has none"
        )
    g = build_graph(m)
    ps = make_task(config.task, m.tokenizer, config.n_prompts, config.seed)
    log.info(
        "%s: %d writers, %d readers, %d edges; %d %s prompts",
        m.model_id,
        g.n_writers,
        g.n_readers,
        g.n_edges,
        len(ps),
        config.task,
    )
    return Task(m, g, ps, ps.metric_fn())


def edge_counts(n_edges: int, shares: list[float]) -> Int[np.ndarray, " sizes"]:
    """Distinct edge counts ``round(share * n_edges)`` (at least 1), with 0 and all edges."""
    ks = {0, n_edges} | {max(1, min(n_edges, int(round(s * n_edges)))) for s in shares}
    return np.asarray(sorted(ks))


def fwd_bwd_seconds(m: Model, x: torch.Tensor, metric: Metric) -> float:
    """Wall time of one plain forward and backward of ``x`` (the cost unit of the ratios)."""
    t = time.perf_counter()
    metric_grads_batch(m, x, metric, [m.hook("resid_pre", 0)])
    return time.perf_counter() - t


def score(task: Task, config: Config) -> tuple[Scores, float, float]:
    """EAP and EAP-IG scores of every edge, and the seconds each took."""
    ps, bs = task.prompts, config.batch_size
    seconds = []
    graphs = []
    for name, options in (("eap", {}), ("eap-ig", {"steps": config.ig_steps})):
        t = time.perf_counter()
        graphs.append(
            scorers.get(name)(
                task.model,
                ps.clean,
                ps.corrupt,
                task.metric,
                graph=task.graph,
                batch_size=bs,
                **options,
            )
        )
        seconds.append(time.perf_counter() - t)
    return Scores(*graphs), seconds[0], seconds[1]


def checks(task: Task, config: Config) -> Checks:
    """On the first ``check_prompts`` prompts: EAP against exact edge patching on a small
    corruption, EAP-IG's convergence over ``convergence_steps``, batched against one by one."""
    m, g, metric = task.model, task.graph, task.metric
    sub = task.prompts.subset(range(config.check_prompts))
    clean, corrupt = sub.clean, sub.corrupt
    eap, eap_ig, exact = scorers.get("eap"), scorers.get("eap-ig"), scorers.get("exact")
    rng = np.random.default_rng(config.seed)
    small = eap(m, clean, corrupt, metric, graph=g, batch_size=config.batch_size)
    flat = np.nan_to_num(np.abs(small.scores), nan=-1.0).ravel()
    top = np.argsort(-flat, kind="stable")[: config.check_edges // 2]
    others = np.setdiff1d(np.flatnonzero(g.valid.ravel()), top)
    pick = np.r_[
        top, rng.choice(others, min(len(others), config.check_edges - len(top)), replace=False)
    ]
    edges = [Edge(int(i // g.n_readers), int(i % g.n_readers)) for i in pick]
    ex = exact(
        m,
        clean,
        corrupt,
        metric,
        edges=edges,
        graph=g,
        alpha=config.check_alpha,
        batch_size=config.batch_size,
    )
    a = np.array([small.scores[e.writer, e.reader] for e in edges]) * config.check_alpha
    b = np.array([ex.scores[e.writer, e.reader] for e in edges])
    steps = config.convergence_steps
    ig = [
        eap_ig(
            m, clean, corrupt, metric, graph=g, steps=s, batch_size=config.batch_size
        ).edge_scores()
        for s in steps
    ]
    ref = np.linalg.norm(ig[-1]) or 1.0
    change = [float(np.linalg.norm(ig[i + 1] - ig[i]) / ref) for i in range(len(steps) - 1)]
    one = eap(m, clean, corrupt, metric, graph=g, batch_size=1)
    batching = float(
        np.nanmax(np.abs(one.scores - small.scores)) / (np.nanmax(np.abs(small.scores)) or 1.0)
    )
    return Checks(
        eap_small=a,
        exact_small=b,
        spearman=float(spearmanr(a, b).correlation),
        ig_change=change,
        batching=batching,
        edges=[g.edge_name(e) for e in edges],
    )


def head_roles(task: Task, batch_size: int) -> HeadRoles:
    """Per head ``[layers, heads]`` on the clean IOI prompts: attention from the last position
    to the indirect object (name movers), from the second subject to the first (duplicate
    token) and to the token after it (induction), and each head's direct effect on the
    metric (its output at every position dotted with the gradient at the logits' input)."""
    m, g, ps = task.model, task.graph, task.prompts
    n_layers, n_heads = g.n_layers, g.n_heads
    att = {k: np.zeros((n_layers, n_heads)) for k in ("name_mover", "duplicate", "induction")}
    direct = np.zeros((n_layers, n_heads))
    n = len(ps)
    for i in range(0, n, batch_size):
        x = ps.clean[i : i + batch_size]
        idx = torch.arange(i, i + len(x))
        io = (x == ps.answer[idx, None]).float().argmax(1)  # the IO name's position
        is_s = (x == ps.wrong[idx, None]).long()
        s1 = is_s.argmax(1)
        s2 = (is_s.cumsum(1) == 2).float().argmax(1)  # the second subject
        last = ps.answer_pos[idx]
        rows = torch.arange(len(x))
        hooks = [m.hook("pattern", layer) for layer in range(n_layers)]
        _, acts = trace(m, x, capture=hooks)
        for layer, hook in enumerate(hooks):
            p = acts[hook].float().cpu()  # [b, head, q, k]
            after = (s1 + 1).clamp(max=x.shape[1] - 1)
            att["name_mover"][layer] += p[rows, :, last, io].sum(0).numpy()
            att["duplicate"][layer] += p[rows, :, s2, s1].sum(0).numpy()
            att["induction"][layer] += p[rows, :, s2, after].sum(0).numpy()
        groups, writers = fast_reader_grads(m, g, x, task.metric, idx)
        grad = groups[-1][1][:, :, 0]  # [b, pos, d]: the gradient at the logits' input
        heads = writers[
            :, :, [g.head_writer(layer, h) for layer in range(n_layers) for h in range(n_heads)]
        ]
        effect = torch.einsum("bpd,bpud->u", grad, heads).view(n_layers, n_heads)
        direct += effect.double().cpu().numpy()
    return HeadRoles(**{k: v / n for k, v in att.items()}, direct=direct / n)


def kept_heads(
    keep: Bool[np.ndarray, "writers readers"], g: Graph
) -> Bool[np.ndarray, "layers heads"]:
    """``[layers, heads]``: heads with at least one out-edge in the circuit ``keep``."""
    return np.array(
        [
            [bool(keep[g.head_writer(layer, h)].any()) for h in range(g.n_heads)]
            for layer in range(g.n_layers)
        ]
    )


def known_heads(roles: HeadRoles, top: int = 3) -> dict[str, list[tuple[int, int]]]:
    """The heads the scorers single out: name-mover-like (most attention from the end to the
    IO among heads whose direct effect raises the metric) and duplicate-token / induction
    (most attention from the second subject to the first or the token after it)."""
    n_heads = roles.direct.shape[1]
    nm = np.where(roles.direct > 0, roles.name_mover, -1.0).ravel()
    dup = np.maximum(roles.duplicate, roles.induction).ravel()

    def pick(s: np.ndarray) -> list[tuple[int, int]]:
        order = np.argsort(-s, kind="stable")[:top]
        return [(int(i // n_heads), int(i % n_heads)) for i in order if s[i] > 0]

    return {"name_mover": pick(nm), "duplicate_or_induction": pick(dup)}


def curves(task: Task, config: Config, scores: Scores) -> tuple[dict[str, Curve], Sanity]:
    """Faithfulness curves of each scored graph (by display name) and of random edge sets
    (``"random"``), and the sanity runs of the full and the empty circuit."""
    g, ps = task.graph, task.prompts
    ev = CircuitEvaluator(
        task.model, ps.clean, ps.corrupt, task.metric, graph=g, batch_size=config.batch_size
    )
    ks = edge_counts(g.n_edges, config.shares)
    scored = {"EAP": scores.eap, "EAP-IG": scores.eap_ig}
    out = {name: ev.curve(sg, ks, name=name) for name, sg in scored.items()}
    out["random"] = ev.random_curve(ks, draws=config.random_draws, seed=config.seed)
    ends = ev.circuits(np.stack([g.valid, np.zeros_like(g.valid)]))  # [2, n]
    scale = max(abs(ev.clean_mean - ev.corrupt_mean), 1e-6)
    sanity = Sanity(
        full_vs_clean=float((ends[0] - ev.clean_values).abs().max()) / scale,
        empty_vs_corrupt=float((ends[1] - ev.corrupt_values).abs().max()) / scale,
        clean=ev.clean_mean,
        corrupt=ev.corrupt_mean,
    )
    return out, sanity


def circuit_at_level(curve: dict[str, Curve], scores: Scores, g: Graph) -> Circuit:
    """The smallest EAP-IG circuit on the curve reaching ``LEVEL`` (else the largest), and the
    random circuits' faithfulness at its size."""
    ig_c, rnd = curve["EAP-IG"], curve["random"]
    hit = np.nonzero(ig_c.f >= LEVEL)[0]
    k80 = int(ig_c.k[hit[0]]) if len(hit) else int(ig_c.k[-1])
    keep = top_k_mask(scores.eap_ig.scores, g.valid, k80)
    f_rnd = float(rnd.f[int(np.nonzero(rnd.k == k80)[0][0])])
    return Circuit(k80, keep, f_rnd)


@register(
    "circuits",
    Config,
    title="Edge-level circuits: EAP, EAP-IG and faithfulness",
    paper="Syed et al. 2023; Hanna et al. 2024; Wang et al. 2022; Mueller et al. 2025 (MIB)",
    figure_order=("faithfulness", "circuit", "eap_vs_exact", "head_roles"),
)
def run(config: Config) -> Result:
    """EAP and EAP-IG edge scores of a task, their circuits' faithfulness against random ones."""
    seed_everything(config.seed)
    task = load(config)
    ps, bs = task.prompts, config.batch_size
    unit = fwd_bwd_seconds(task.model, ps.clean[:bs], task.metric)
    scores, t_eap, t_ig = score(task, config)
    t = time.perf_counter()
    curve, sanity = curves(task, config, scores)
    t_curves = time.perf_counter() - t
    chk = checks(task, config)
    roles = head_roles(task, bs) if ps.task.startswith("ioi") else None
    n_batches = -(-len(ps) // bs)
    timing = Timing(
        fwd_bwd_s=unit,
        eap_s=t_eap,
        eap_ig_s=t_ig,
        curves_s=t_curves,
        eap_ratio=t_eap / (n_batches * unit),
        eap_ig_ratio=t_ig / (n_batches * unit),
    )
    return report(config, task, scores, curve, sanity, chk, roles, timing)


def _circuit_edges(sg: ScoredGraph, keep: np.ndarray, limit: int) -> list[dict]:
    ws, rs = np.nonzero(keep)
    order = np.argsort(-np.abs(sg.scores[ws, rs]), kind="stable")[:limit]
    return [
        {"writer": int(ws[i]), "reader": int(rs[i]), "score": float(sg.scores[ws[i], rs[i]])}
        for i in order
    ]


def report(
    config: Config,
    task: Task,
    scores: Scores,
    curve: dict[str, Curve],
    sanity: Sanity,
    chk: Checks,
    roles: HeadRoles | None,
    timing: Timing,
) -> Result:
    """The result: metrics, criteria, arrays and figures."""
    g, ig = task.graph, scores.eap_ig
    r = Result("circuits")
    cpr = {k: areas(c.share, c.f) for k, c in curve.items()}
    share80 = {k: c.share_for(LEVEL) for k, c in curve.items()}
    circuit = circuit_at_level(curve, scores, g)
    top = [{"edge": g.edge_name(Edge(w, rd)), "score": float(ig.scores[w, rd])}
           for w, rd in _top(ig, 15)]  # fmt: skip
    r.metrics.update({
        "model": task.model.model_id, "task": config.task, "n_prompts": len(task.prompts),
        "n_writers": g.n_writers, "n_readers": g.n_readers, "n_edges": g.n_edges,
        "graph": g.to_json(), "clean_metric": sanity.clean, "corrupt_metric": sanity.corrupt,
        "curves": {k: c.to_dict() for k, c in curve.items()},
        "cpr": {k: v[0] for k, v in cpr.items()}, "cmd": {k: v[1] for k, v in cpr.items()},
        "share_for_80": share80, "edges_for_80_eap_ig": circuit.k80,
        "random_f_at_80": circuit.random_f, "eap_exact_spearman": chk.spearman,
        "ig_step_change": chk.ig_change, "convergence_steps": config.convergence_steps,
        "timing": asdict(timing), "top_edges_eap_ig": top,
    })  # fmt: skip
    _criteria(r, config, sanity, chk, cpr, share80, circuit)
    r.figures.update(_figures(config, g, ig, curve, chk, circuit))
    if roles is not None:
        _head_claims(r, g, roles, circuit.keep)
        r.figures["head_roles"] = head_heatmap(
            roles.name_mover * np.sign(roles.direct),
            "Attention last -> IO, signed by the head's direct effect",
        )
        r.arrays.update(roles.arrays())
    r.arrays.update({"scores_eap": scores.eap.scores, "scores_eap_ig": ig.scores,
                     "circuit_80": circuit.keep,
                     "kept_heads_80": kept_heads(circuit.keep, g)})  # fmt: skip
    return r


def _criteria(
    r: Result,
    config: Config,
    sanity: Sanity,
    chk: Checks,
    cpr: dict[str, tuple[float, float]],
    share80: dict[str, float],
    circuit: Circuit,
) -> None:
    steps, ch = config.convergence_steps, chk.ig_change
    gap = "over prompts / |m(clean) - m(corrupt)|"
    rows = [
        ("full_circuit_equals_clean", sanity.full_vs_clean, "<=", 1e-3, "sanity",
         f"max |m(all edges kept) - m(clean)| {gap}"),
        ("empty_circuit_equals_corrupt", sanity.empty_vs_corrupt, "<=", 1e-3, "sanity",
         f"max |m(no edge kept) - m(corrupt)| {gap}"),
        ("eap_rank_matches_exact_on_small_corruption", chk.spearman, ">=", 0.9, "sanity",
         f"Spearman of EAP x alpha and exact single-edge patching at alpha={config.check_alpha} "
         f"on {len(chk.edges)} edges (half the top by |EAP|, half random)"),
        ("eap_ig_converges", ch[-1] / max(ch[0], 1e-12), "<", 1.0, "sanity",
         f"change of EAP-IG scores from {steps[-2]} to {steps[-1]} steps over the change from "
         f"{steps[0]} to {steps[1]}"),
        ("batched_equals_one_by_one", chk.batching, "<=", 1e-4, "sanity",
         "max |EAP(batch) - EAP(one prompt at a time)| / max |EAP|"),
        ("eap_ig_more_faithful_than_eap", cpr["EAP-IG"][0] - cpr["EAP"][0], ">", 0.0, "claim",
         "CPR (area under faithfulness over edge share) of EAP-IG minus that of EAP"),
        ("small_share_recovers_80pct", share80["EAP-IG"], "<=", 0.1, "claim",
         "smallest edge share whose EAP-IG circuit reaches 80% faithfulness (NaN: none)"),
        ("random_circuits_near_zero", abs(circuit.random_f), "<=", 0.2, "claim",
         f"|faithfulness| of random circuits of the EAP-IG 80% size ({circuit.k80} edges)"),
    ]  # fmt: skip
    for name, value, op, threshold, kind, desc in rows:
        r.add_criterion(name, value, op, threshold, kind=kind, description=desc)


def _figures(
    config: Config,
    g: Graph,
    ig: ScoredGraph,
    curve: dict[str, Curve],
    chk: Checks,
    circuit: Circuit,
) -> dict:
    n = config.n_figure_edges
    title = f"EAP-IG circuit at {LEVEL:.0%} faithfulness ({circuit.k80} edges; strongest {n} drawn)"
    return {
        "faithfulness": plots.faithfulness_figure([c.to_dict() for c in curve.values()], LEVEL),
        "circuit": plots.circuit_figure(
            node_dicts(g.writers), node_dicts(g.readers), _circuit_edges(ig, circuit.keep, n),
            g.n_layers, g.n_heads, g.n_kv_heads, title=title,
        ),
        "eap_vs_exact": plots.edge_scatter_figure(chk.eap_small, chk.exact_small),
    }  # fmt: skip


def _top(sg: ScoredGraph, k: int) -> list[tuple[int, int]]:
    flat = np.nan_to_num(np.abs(sg.scores), nan=-1.0).ravel()
    return [
        (int(i // sg.scores.shape[1]), int(i % sg.scores.shape[1]))
        for i in np.argsort(-flat, kind="stable")[:k]
    ]


def _head_claims(r: Result, g: Graph, roles: HeadRoles, keep: np.ndarray) -> None:
    heads = kept_heads(keep, g)
    known = known_heads(roles)
    base = float(heads.mean())
    r.metrics.update(
        {
            "known_heads": {k: [f"L{layer}H{h}" for layer, h in v] for k, v in known.items()},
            "kept_heads": [f"L{layer}H{h}" for layer, h in zip(*np.nonzero(heads), strict=True)],
            "kept_head_share": base,
        }
    )
    for name, hs in known.items():
        frac = float(np.mean([heads[layer, h] for layer, h in hs])) if hs else float("nan")
        r.metrics[f"{name}_kept"] = frac
        r.add_criterion(
            f"circuit_keeps_{name}_heads",
            frac,
            ">=",
            0.5,
            kind="claim",
            description=f"share of the top {name.replace('_', ' ')} heads (head scorers) with an "
            f"edge in the 80% EAP-IG circuit; {base:.0%} of all heads have one",
        )
