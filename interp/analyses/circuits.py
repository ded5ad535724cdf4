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
from typing import Annotated, Literal

import annotated_types as at
import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from interp.analyses import register
from interp.fields import Count, Device, Fraction, ModelName, Seed
from interp.results import Result

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


def load(config: Config):
    """The model (a transformer whose graph passes :func:`build_graph`'s checks), its graph,
    the task's prompts and metric."""
    import interp
    from interp.data.sae_circuits import make_task
    from interp.methods.circuits.forward import build_graph

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
    return m, g, ps


def edge_counts(n_edges: int, shares: list[float]) -> np.ndarray:
    """Distinct edge counts ``round(share * n_edges)`` (at least 1), with 0 and all edges."""
    ks = {0, n_edges} | {max(1, min(n_edges, int(round(s * n_edges)))) for s in shares}
    return np.asarray(sorted(ks))


def fwd_bwd_seconds(m, g, x: torch.Tensor, metric) -> float:
    """Wall time of one plain forward and backward of ``x`` (the cost unit of the ratios)."""
    from interp.tracing.gradients import metric_grads_batch

    t = time.perf_counter()
    metric_grads_batch(m, x, metric, [m.hook("resid_pre", 0)])
    return time.perf_counter() - t


def checks(m, g, ps, metric, config: Config) -> dict:
    """On the first ``check_prompts`` prompts: EAP against exact edge patching on a small
    corruption, EAP-IG's convergence over ``convergence_steps``, batched against one by one."""
    from scipy.stats import spearmanr

    from interp.methods.circuits.attribution import edge_attribution, exact_edge_scores
    from interp.methods.circuits.graph import Edge

    sub = ps.subset(range(config.check_prompts))
    clean, corrupt = sub.clean, sub.corrupt
    rng = np.random.default_rng(config.seed)
    small = edge_attribution(m, clean, corrupt, metric, graph=g, batch_size=config.batch_size)
    flat = np.nan_to_num(np.abs(small.scores), nan=-1.0).ravel()
    top = np.argsort(-flat, kind="stable")[: config.check_edges // 2]
    others = np.setdiff1d(np.flatnonzero(g.valid.ravel()), top)
    pick = np.r_[
        top, rng.choice(others, min(len(others), config.check_edges - len(top)), replace=False)
    ]
    edges = [Edge(int(i // g.n_readers), int(i % g.n_readers)) for i in pick]
    ex = exact_edge_scores(
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
        edge_attribution(
            m,
            clean,
            corrupt,
            metric,
            graph=g,
            method="eap-ig",
            steps=s,
            batch_size=config.batch_size,
        ).edge_scores()
        for s in steps
    ]
    ref = np.linalg.norm(ig[-1]) or 1.0
    change = [float(np.linalg.norm(ig[i + 1] - ig[i]) / ref) for i in range(len(steps) - 1)]
    one = edge_attribution(m, clean, corrupt, metric, graph=g, batch_size=1)
    batching = float(
        np.nanmax(np.abs(one.scores - small.scores)) / (np.nanmax(np.abs(small.scores)) or 1.0)
    )
    return {
        "eap_small": a,
        "exact_small": b,
        "spearman": float(spearmanr(a, b).correlation),
        "ig_change": change,
        "batching": batching,
        "edges": [g.edge_name(e) for e in edges],
    }


def head_roles(m, g, ps, metric, batch_size: int) -> dict[str, np.ndarray]:
    """Per head ``[layers, heads]`` on the clean IOI prompts: attention from the last position
    to the indirect object (name movers), from the second subject to the first (duplicate
    token) and to the token after it (induction), and each head's direct effect on the
    metric (its output at every position dotted with the gradient at the logits' input)."""
    from interp.methods.circuits.forward import fast_reader_grads
    from interp.tracing.trace import trace

    L, H = g.n_layers, g.n_heads
    att = {k: np.zeros((L, H)) for k in ("name_mover", "duplicate", "induction")}
    direct = np.zeros((L, H))
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
        _, acts = trace(m, x, capture=[m.hook("pattern", l) for l in range(L)])
        for l in range(L):
            p = acts[m.hook("pattern", l)].float().cpu()  # [b, head, q, k]
            att["name_mover"][l] += p[rows, :, last, io].sum(0).numpy()
            att["duplicate"][l] += p[rows, :, s2, s1].sum(0).numpy()
            att["induction"][l] += p[rows, :, s2, (s1 + 1).clamp(max=x.shape[1] - 1)].sum(0).numpy()
        groups, writers = fast_reader_grads(m, g, x, metric, idx)
        G = groups[-1][1][:, :, 0]  # [b, pos, d]: the gradient at the logits' input
        heads = writers[:, :, [g.head_writer(l, h) for l in range(L) for h in range(H)]]
        direct += torch.einsum("bpd,bpud->u", G, heads).view(L, H).double().cpu().numpy()
    res = {k: v / n for k, v in att.items()}
    res["direct"] = direct / n
    return res


def kept_heads(keep: np.ndarray, g) -> np.ndarray:
    """``[layers, heads]``: heads with at least one out-edge in the circuit ``keep``."""
    return np.array(
        [
            [bool(keep[g.head_writer(l, h)].any()) for h in range(g.n_heads)]
            for l in range(g.n_layers)
        ]
    )


def known_heads(roles: dict[str, np.ndarray], top: int = 3) -> dict[str, list[tuple[int, int]]]:
    """The heads the scorers single out: name-mover-like (most attention from the end to the
    IO among heads whose direct effect raises the metric) and duplicate-token / induction
    (most attention from the second subject to the first or the token after it)."""
    H = roles["direct"].shape[1]
    nm = np.where(roles["direct"] > 0, roles["name_mover"], -1.0).ravel()
    dup = np.maximum(roles["duplicate"], roles["induction"]).ravel()

    def pick(s: np.ndarray) -> list[tuple[int, int]]:
        return [(int(i // H), int(i % H)) for i in np.argsort(-s, kind="stable")[:top] if s[i] > 0]

    return {"name_mover": pick(nm), "duplicate_or_induction": pick(dup)}


def curves(m, g, ps, metric, config: Config, scored: dict) -> tuple[dict, dict]:
    """Faithfulness curves of each scored graph and of random edge sets, and the sanity runs
    of the full and the empty circuit."""
    from interp.methods.circuits.evaluation import CircuitEvaluator

    ev = CircuitEvaluator(m, ps.clean, ps.corrupt, metric, graph=g, batch_size=config.batch_size)
    ks = edge_counts(g.n_edges, config.shares)
    out = {name: ev.curve(sg, ks, name=name) for name, sg in scored.items()}
    out["random"] = ev.random_curve(ks, draws=config.random_draws, seed=config.seed)
    ends = ev.circuits(np.stack([g.valid, np.zeros_like(g.valid)]))  # [2, n]
    scale = max(abs(ev.clean_mean - ev.corrupt_mean), 1e-6)
    sanity = {
        "full_vs_clean": float((ends[0] - ev.clean_values).abs().max()) / scale,
        "empty_vs_corrupt": float((ends[1] - ev.corrupt_values).abs().max()) / scale,
        "clean": ev.clean_mean,
        "corrupt": ev.corrupt_mean,
    }
    return out, sanity


@register(
    "circuits",
    Config,
    title="Edge-level circuits: EAP, EAP-IG and faithfulness",
    paper="Syed et al. 2023; Hanna et al. 2024; Wang et al. 2022; Mueller et al. 2025 (MIB)",
    figure_order=("faithfulness", "circuit", "eap_vs_exact", "head_roles"),
)
def run(config: Config) -> Result:
    """EAP and EAP-IG edge scores of a task, their circuits' faithfulness against random ones."""
    from interp.methods.circuits.attribution import edge_attribution
    from interp.utils import seed_everything

    seed_everything(config.seed)
    m, g, ps = load(config)
    metric = ps.metric_fn()
    bs = config.batch_size
    unit = fwd_bwd_seconds(m, g, ps.clean[:bs], metric)
    t = time.perf_counter()
    eap = edge_attribution(m, ps.clean, ps.corrupt, metric, method="eap", graph=g, batch_size=bs)
    t_eap = time.perf_counter() - t
    t = time.perf_counter()
    ig = edge_attribution(
        m,
        ps.clean,
        ps.corrupt,
        metric,
        method="eap-ig",
        steps=config.ig_steps,
        graph=g,
        batch_size=bs,
    )
    t_ig = time.perf_counter() - t
    t = time.perf_counter()
    curve, sanity = curves(m, g, ps, metric, config, {"EAP": eap, "EAP-IG": ig})
    t_curves = time.perf_counter() - t
    chk = checks(m, g, ps, metric, config)
    roles = head_roles(m, g, ps, metric, bs) if ps.task.startswith("ioi") else None
    n_batches = -(-len(ps) // bs)
    timing = {
        "fwd_bwd_s": unit,
        "eap_s": t_eap,
        "eap_ig_s": t_ig,
        "curves_s": t_curves,
        "eap_ratio": t_eap / (n_batches * unit),
        "eap_ig_ratio": t_ig / (n_batches * unit),
    }
    return report(config, m, g, ps, eap, ig, curve, sanity, chk, roles, timing)


def _circuit_edges(sg, keep: np.ndarray, limit: int) -> list[dict]:
    ws, rs = np.nonzero(keep)
    order = np.argsort(-np.abs(sg.scores[ws, rs]), kind="stable")[:limit]
    return [
        {"writer": int(ws[i]), "reader": int(rs[i]), "score": float(sg.scores[ws[i], rs[i]])}
        for i in order
    ]


def report(
    config: Config, m, g, ps, eap, ig, curve: dict, sanity: dict, chk: dict, roles, timing: dict
) -> Result:
    """The result: metrics, criteria, arrays and figures."""
    from interp.methods.circuits.evaluation import areas
    from interp.methods.circuits.graph import Edge, top_k_mask

    r = Result("circuits")
    cpr = {k: areas(c.share, c.f) for k, c in curve.items()}
    share80 = {k: c.share_for(LEVEL) for k, c in curve.items()}
    ig_c, rnd = curve["EAP-IG"], curve["random"]
    hit = np.nonzero(ig_c.f >= LEVEL)[0]
    k80 = int(ig_c.k[hit[0]]) if len(hit) else int(ig_c.k[-1])
    keep = top_k_mask(ig.scores, g.valid, k80)
    f_rnd = float(rnd.f[int(np.nonzero(rnd.k == k80)[0][0])])
    top = [{"edge": g.edge_name(Edge(w, rd)), "score": float(ig.scores[w, rd])}
           for w, rd in _top(ig, 15)]  # fmt: skip
    r.metrics.update({
        "model": m.model_id, "task": config.task, "n_prompts": len(ps), "n_writers": g.n_writers,
        "n_readers": g.n_readers, "n_edges": g.n_edges, "graph": g.to_json(),
        "clean_metric": sanity["clean"], "corrupt_metric": sanity["corrupt"],
        "curves": {k: c.to_dict() for k, c in curve.items()},
        "cpr": {k: v[0] for k, v in cpr.items()}, "cmd": {k: v[1] for k, v in cpr.items()},
        "share_for_80": share80, "edges_for_80_eap_ig": k80, "random_f_at_80": f_rnd,
        "eap_exact_spearman": chk["spearman"], "ig_step_change": chk["ig_change"],
        "convergence_steps": config.convergence_steps, "timing": timing, "top_edges_eap_ig": top,
    })  # fmt: skip
    steps, ch = config.convergence_steps, chk["ig_change"]
    gap = "over prompts / |m(clean) - m(corrupt)|"
    rows = [
        ("full_circuit_equals_clean", sanity["full_vs_clean"], "<=", 1e-3, "sanity",
         f"max |m(all edges kept) - m(clean)| {gap}"),
        ("empty_circuit_equals_corrupt", sanity["empty_vs_corrupt"], "<=", 1e-3, "sanity",
         f"max |m(no edge kept) - m(corrupt)| {gap}"),
        ("eap_rank_matches_exact_on_small_corruption", chk["spearman"], ">=", 0.9, "sanity",
         f"Spearman of EAP x alpha and exact single-edge patching at alpha={config.check_alpha} "
         f"on {len(chk['edges'])} edges (half the top by |EAP|, half random)"),
        ("eap_ig_converges", ch[-1] / max(ch[0], 1e-12), "<", 1.0, "sanity",
         f"change of EAP-IG scores from {steps[-2]} to {steps[-1]} steps over the change from "
         f"{steps[0]} to {steps[1]}"),
        ("batched_equals_one_by_one", chk["batching"], "<=", 1e-4, "sanity",
         "max |EAP(batch) - EAP(one prompt at a time)| / max |EAP|"),
        ("eap_ig_more_faithful_than_eap", cpr["EAP-IG"][0] - cpr["EAP"][0], ">", 0.0, "claim",
         "CPR (area under faithfulness over edge share) of EAP-IG minus that of EAP"),
        ("small_share_recovers_80pct", share80["EAP-IG"], "<=", 0.1, "claim",
         "smallest edge share whose EAP-IG circuit reaches 80% faithfulness (NaN: none)"),
        ("random_circuits_near_zero", abs(f_rnd), "<=", 0.2, "claim",
         f"|faithfulness| of random circuits of the EAP-IG 80% size ({k80} edges)"),
    ]  # fmt: skip
    for name, value, op, threshold, kind, desc in rows:
        r.add_criterion(name, value, op, threshold, kind=kind, description=desc)
    r.figures.update(_figures(config, g, ig, curve, chk, keep, k80))
    if roles is not None:
        from interp.plotting.model_report import head_heatmap

        _head_claims(r, g, roles, keep)
        r.figures["head_roles"] = head_heatmap(
            roles["name_mover"] * np.sign(roles["direct"]),
            "Attention last -> IO, signed by the head's direct effect",
        )
        r.arrays.update({f"head_{k}": v for k, v in roles.items()})
    r.arrays.update({"scores_eap": eap.scores, "scores_eap_ig": ig.scores, "circuit_80": keep,
                     "kept_heads_80": kept_heads(keep, g)})  # fmt: skip
    return r


def _figures(config: Config, g, ig, curve: dict, chk: dict, keep: np.ndarray, k80: int) -> dict:
    from interp.methods.circuits.graph import node_dicts
    from interp.plotting import circuits as plots

    n = config.n_figure_edges
    title = f"EAP-IG circuit at {LEVEL:.0%} faithfulness ({k80} edges; strongest {n} drawn)"
    return {
        "faithfulness": plots.faithfulness_figure([c.to_dict() for c in curve.values()], LEVEL),
        "circuit": plots.circuit_figure(
            node_dicts(g.writers), node_dicts(g.readers), _circuit_edges(ig, keep, n),
            g.n_layers, g.n_heads, g.n_kv_heads, title=title,
        ),
        "eap_vs_exact": plots.edge_scatter_figure(chk["eap_small"], chk["exact_small"]),
    }  # fmt: skip


def _top(sg, k: int) -> list[tuple[int, int]]:
    flat = np.nan_to_num(np.abs(sg.scores), nan=-1.0).ravel()
    return [
        (int(i // sg.scores.shape[1]), int(i % sg.scores.shape[1]))
        for i in np.argsort(-flat, kind="stable")[:k]
    ]


def _head_claims(r: Result, g, roles: dict, keep: np.ndarray) -> None:
    heads = kept_heads(keep, g)
    known = known_heads(roles)
    base = float(heads.mean())
    r.metrics.update(
        {
            "known_heads": {k: [f"L{l}H{h}" for l, h in v] for k, v in known.items()},
            "kept_heads": [f"L{l}H{h}" for l, h in zip(*np.nonzero(heads))],
            "kept_head_share": base,
        }
    )
    for name, hs in known.items():
        frac = float(np.mean([heads[l, h] for l, h in hs])) if hs else float("nan")
        r.metrics[f"{name}_kept"] = frac
        r.add_criterion(
            f"circuit_keeps_{name}_heads",
            frac,
            ">=",
            0.5,
            kind="claim",
            description=f"share of the top {name.replace('_', ' ')} heads (head scorers) with an "
            f"edge in "
            f"the 80% EAP-IG circuit; {base:.0%} of all heads have one",
        )
