"""Edge scores: EAP, EAP-IG and exact single-edge activation patching.

Every score estimates the mean over prompts of ``metric(edge u -> r patched) - metric(clean)``
where patching the edge gives reader ``r`` the corrupt run's ``a_u`` instead of the clean one.

- **EAP** (Syed et al. 2023): ``(a_u(corrupt) - a_u(clean)) . d metric / d input_r`` at the
  clean run: one corrupt forward, one clean forward and one backward per batch for all edges.
- **EAP-IG** (Hanna et al. 2024, "inputs" variant): the gradient is averaged over ``steps``
  runs whose input embedding is ``corrupt + k/steps (clean - corrupt)``, ``k = 1..steps``
  (the right Riemann sum, so ``steps=1`` is EAP; Hanna et al.'s code uses ``k = 0..steps-1``).
  ``steps`` forwards and backwards plus one corrupt forward.
- **exact**: one circuit run per edge with only that edge patched (edges batched as copies of
  the prompts); for verification on small graphs.

Memory: per batch the writers' difference ``[batch, pos, writers, d_model]`` and the
readers' gradients ``[batch, pos, readers, d_model]`` (float32: 4 bytes each), e.g. 8 prompts
x 20 positions x (301 + 481) x 576 x 4 B = 0.3 GB on a 30-layer, 9-head model; lower
``batch_size`` to fit. The score is one matrix product ``[writers, b*pos*d] @ [b*pos*d,
readers]`` per batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from jaxtyping import Int

from interp.methods.circuits.forward import (
    ReaderGrads,
    RunActs,
    build_graph,
    fast_reader_grads,
    run,
)
from interp.methods.circuits.graph import Edge, Graph, ScoredGraph
from interp.tracing.model import Model

Metric = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Prompts = Int[torch.Tensor, "n pos"] | Sequence[str]  # token ids, or text Model.prepare tokenizes
MAX_RUN_BYTES = 512 * 2**20  # bound on the writers' outputs one patched run holds


def _pairs(m: Model, clean: Prompts, corrupt: Prompts) -> tuple[torch.Tensor, torch.Tensor]:
    x: torch.Tensor = m.prepare(clean)
    xc: torch.Tensor = m.prepare(corrupt)
    if x.shape != xc.shape:
        raise ValueError(
            f"clean {tuple(x.shape)} and corrupt {tuple(xc.shape)} prompts must have the "
            "same shape (paired prompts with aligned positions)"
        )
    return x, xc


def _contract(D: torch.Tensor, groups: ReaderGrads, g: Graph) -> torch.Tensor:
    """``sum_{b, pos} (a_u' - a_u) . grad_r`` for every valid edge: ``D [writers, b*pos*d]``
    times each reader group's gradient, over the writers before that group only."""
    out = torch.zeros(g.n_writers, g.n_readers, dtype=D.dtype, device=D.device)
    for readers, gr in groups:
        n_up = int(g.n_up[readers[0]])
        out[:n_up, readers] = D[:n_up] @ gr.permute(2, 0, 1, 3).reshape(len(readers), -1).T.to(
            D.dtype
        )
    return out


def edge_attribution(
    m: Model,
    clean: Prompts,
    corrupt: Prompts,
    metric: Metric,
    *,
    method: str = "eap",
    steps: int = 5,
    graph: Graph | None = None,
    batch_size: int = 16,
) -> ScoredGraph:
    """Scores of every edge by EAP (``method="eap"``) or EAP-IG (``"eap-ig"``, ``steps``
    interpolation steps); see the module docstring. ``metric(logits [b, pos, vocab], idx [b])
    -> [b]`` with ``idx`` the prompts' indices. Returns a :class:`ScoredGraph` whose scores
    are means over prompts."""
    if method not in ("eap", "eap-ig"):
        raise ValueError(f"unknown edge attribution method {method!r}: 'eap' or 'eap-ig'")
    if steps < 1:
        raise ValueError(f"steps={steps}: EAP-IG needs at least one step")
    clean, corrupt = _pairs(m, clean, corrupt)
    g = graph or build_graph(m)
    n_steps = 1 if method == "eap" else steps
    total = torch.zeros(g.n_writers, g.n_readers, dtype=torch.float64)
    for i in range(0, len(clean), batch_size):
        x, xc = clean[i : i + batch_size], corrupt[i : i + batch_size]
        idx = torch.arange(i, i + len(x))
        with torch.no_grad():
            src = run(m, g, xc).recorded()
        # step k = steps (alpha 1) is the clean run itself: it also gives the clean writers
        groups, clean_w = fast_reader_grads(m, g, x, metric, idx)
        if clean_w is None:
            raise ValueError("fast_reader_grads kept no writers")  # it does with writers=True
        D = (
            (src.writers - clean_w).permute(2, 0, 1, 3).reshape(g.n_writers, -1)
        )  # [writers, b*pos*d]
        acc = _contract(D, groups, g)
        for k in range(1, n_steps):
            emb = src.writers[:, :, 0] + (k / n_steps) * (clean_w[:, :, 0] - src.writers[:, :, 0])
            acc += _contract(
                D, fast_reader_grads(m, g, x, metric, idx, input_embed=emb, writers=False)[0], g
            )
        total += acc.double().cpu() / n_steps
    scores = (total / len(clean)).numpy()
    meta = {"n_prompts": len(clean), "steps": n_steps}
    return ScoredGraph(g, scores, method=method, meta=meta)


def patched_metric(
    m: Model,
    g: Graph,
    clean: torch.Tensor,
    src: RunActs,
    metric: Metric,
    patches: torch.Tensor,
    *,
    idx: torch.Tensor | None = None,
    max_rows: int = 256,
) -> torch.Tensor:
    """``metric`` on ``clean`` [b, pos] with each of ``patches [copies, writers, readers]``
    (1 = the edge carries ``src``'s value): ``[copies, b]``. Copies run side by side, as many
    as keep the rows at most ``max_rows`` and the writers' outputs of the run (``rows x pos x
    writers x d_model`` floats) within ``MAX_RUN_BYTES``."""
    idx = torch.arange(len(clean)) if idx is None else idx
    row_bytes = src.writers[0].numel() * src.writers.element_size()  # one row's writers' outputs
    rows_fit = max(1, min(max_rows, MAX_RUN_BYTES // max(row_bytes, 1)))
    per = max(1, rows_fit // len(clean))
    rows = []
    with torch.no_grad():
        for c in range(0, len(patches), per):
            P = patches[c : c + per]
            out = run(m, g, clean, patch=P, src=src, record=True)
            rows.append(
                metric(out.logits, idx.repeat(len(P))).float().cpu().view(len(P), len(clean))
            )
    return torch.cat(rows)


def exact_edge_scores(
    m: Model,
    clean: Prompts,
    corrupt: Prompts,
    metric: Metric,
    *,
    edges: Sequence[Edge] | None = None,
    graph: Graph | None = None,
    alpha: float = 1.0,
    batch_size: int = 16,
    max_rows: int = 256,
) -> ScoredGraph:
    """Exact single-edge activation patching: for each edge (default every edge of the graph),
    the mean over prompts of ``metric`` with only that edge patched minus ``metric`` clean.
    The edge carries ``a_u(clean) + alpha (a_u(corrupt) - a_u(clean))`` (small ``alpha``: the
    regime where EAP must agree, to first order). Edges not asked for score NaN."""
    clean, corrupt = _pairs(m, clean, corrupt)
    g = graph or build_graph(m)
    edges = list(edges) if edges is not None else g.edges()
    patches = torch.zeros(len(edges), g.n_writers, g.n_readers, dtype=torch.bool)
    for c, e in enumerate(edges):
        if e.writer >= g.n_up[e.reader]:
            raise ValueError(
                f"edge {g.edge_name(e)} does not exist: the writer runs after the reader"
            )
        patches[c, e.writer, e.reader] = True
    total = torch.zeros(len(edges), dtype=torch.float64)
    for i in range(0, len(clean), batch_size):
        x, xc = clean[i : i + batch_size], corrupt[i : i + batch_size]
        idx = torch.arange(i, i + len(x))
        with torch.no_grad():
            base = run(m, g, x)
            src = base.recorded().mix(run(m, g, xc).recorded(), alpha)
            clean_vals = metric(base.logits, idx).float().cpu()
        vals = patched_metric(m, g, x, src, metric, patches, idx=idx, max_rows=max_rows)
        total += (vals - clean_vals[None]).sum(1).double()
    scores = np.full((g.n_writers, g.n_readers), np.nan)
    for c, e in enumerate(edges):
        scores[e.writer, e.reader] = float(total[c]) / len(clean)
    return ScoredGraph(g, scores, method="exact", meta={"n_prompts": len(clean), "alpha": alpha})
