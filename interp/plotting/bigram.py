"""Figures of the bigram-subnetwork analysis: data in, plotly figure out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots


def sweep_figure(
    kept: Sequence[float],
    r: Sequence[float],
    lambdas: Sequence[float],
    chosen: int | None = None,
    r_soft: Sequence[float] | None = None,
    floor_r: float | None = None,
) -> go.Figure:
    """Surprisal r with the bigram model against the fraction of maskable weights kept
    (hard masks; ``r_soft``: the same masks soft, at their final temperature; ``floor_r``: the
    r of the zero mask, nothing kept in the blocks, drawn as a horizontal line)."""
    kept, r = np.asarray(kept, float) * 100, np.asarray(r, float)
    fig = go.Figure(
        go.Scatter(
            x=kept,
            y=r,
            mode="lines+markers+text",
            text=[f"λ={lam:g}" for lam in lambdas],
            textposition="top center",
            name="hard mask 1[s>0]",
        )
    )
    if r_soft is not None:
        fig.add_trace(
            go.Scatter(
                x=kept,
                y=np.asarray(r_soft, float),
                mode="markers",
                name="soft mask sigmoid(T s)",
                marker=dict(symbol="x"),
            )
        )
    if chosen is not None:
        fig.add_trace(
            go.Scatter(
                x=[kept[chosen]],
                y=[r[chosen]],
                mode="markers",
                name="chosen",
                marker=dict(size=14, symbol="circle-open", line=dict(width=2)),
            )
        )
    if floor_r is not None and np.isfinite(floor_r):
        fig.add_hline(
            y=float(floor_r),
            line_dash="dot",
            line_color="gray",
            annotation_text=f"zero mask: nothing kept (r={floor_r:.3f})",
        )
    fig.update_layout(
        title="Bigram subnetworks: surprisal r vs weights kept",
        xaxis_title="% of maskable weights kept",
        yaxis_title="Pearson r with bigram surprisal",
    )
    return fig


def density_heatmap(table: np.ndarray, layers: Sequence[int], matrices: Sequence[str]) -> go.Figure:
    """Kept fraction ``[layer, matrix]`` of the chosen subnetwork."""
    fig = go.Figure(
        go.Heatmap(
            z=np.asarray(table) * 100,
            x=list(matrices),
            y=[f"L{layer}" for layer in layers],
            colorscale="Blues",
            colorbar=dict(title="% kept"),
            text=np.round(np.asarray(table) * 100, 2),
            texttemplate="%{text}",
        )
    )
    fig.update_layout(
        title="Kept density by layer and matrix (%)", yaxis=dict(autorange="reversed")
    )
    return fig


def head_density(by_head: Mapping[str, np.ndarray]) -> go.Figure:
    """Kept fraction per head of each attention matrix (rows ``blocks.l.W_X``)."""
    keys = list(by_head)
    # grouped-query attention: K and V have fewer heads than Q and O; their rows end in NaN
    width = max((len(np.asarray(by_head[k])) for k in keys), default=0)
    z = np.full((len(keys), width), np.nan)
    for i, k in enumerate(keys):
        z[i, : len(by_head[k])] = np.asarray(by_head[k]) * 100
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=[f"H{h}" for h in range(z.shape[1])],
            y=keys,
            colorscale="Blues",
            colorbar=dict(title="% kept"),
        )
    )
    fig.update_layout(title="Kept density per attention head (%)", yaxis=dict(autorange="reversed"))
    return fig


def surprisal_bars(rows: Mapping[str, float], bigram: float | None = None) -> go.Figure:
    """Mean held-out surprisal of the full model, the subnetwork, and the controls."""
    names, vals = list(rows), [rows[k] for k in rows]
    fig = go.Figure(
        go.Bar(x=names, y=vals, text=[f"{v:.2f}" for v in vals], textposition="outside")
    )
    if bigram is not None:
        fig.add_hline(y=bigram, line_dash="dash", annotation_text="bigram model (finite tokens)")
    fig.update_layout(
        title="Necessity and sufficiency: mean held-out surprisal (nats)", yaxis_title="nats"
    )
    return fig


def residual_figure(
    recall: Mapping[str, np.ndarray], final_r: Mapping[str, np.ndarray], k: int
) -> go.Figure:
    """Per residual stream (0 = embedding): current-token recall@k and next-token r via the final
    layer."""
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=(f"current token recall@{k}", "surprisal r via ridge map to final layer"),
    )
    for i, name in enumerate(recall):
        x = list(range(len(recall[name])))
        fig.add_trace(
            go.Scatter(
                x=x,
                y=recall[name],
                mode="lines+markers",
                name=name,
                legendgroup=name,
                line=dict(color=_COLORS[i % len(_COLORS)]),
            ),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=final_r[name],
                mode="lines+markers",
                name=name,
                legendgroup=name,
                showlegend=False,
                line=dict(color=_COLORS[i % len(_COLORS)]),
            ),
            row=1,
            col=2,
        )
    fig.update_xaxes(title_text="residual stream after layer (0 = embedding)")
    fig.update_layout(title="Residual stream: current-token vs next-token information")
    return fig


def null_histogram(null: np.ndarray, observed: float, p: float) -> go.Figure:
    """Null distribution of the overlap with the pruning mask, and the observed overlap."""
    fig = go.Figure(go.Histogram(x=np.asarray(null), nbinsx=50, name="row-shuffle null"))
    fig.add_vline(x=observed, line_color="red", annotation_text=f"observed (p={p:.2g})")
    fig.update_layout(
        title="Overlap with the optimal-pruning mask vs within-matrix row shuffles",
        xaxis_title="weights kept by both masks",
        yaxis_title="count",
    )
    return fig


_COLORS = ("#1f77b4", "#d62728", "#7f7f7f", "#2ca02c", "#9467bd")


def sweep_rows(sweep: Sequence[Mapping]) -> list[dict]:
    """One row per lambda: weights kept, surprisal r, held-out loss, steps, early stop."""
    return [
        {
            "lambda": p["lambda"],
            "% kept": round(100 * p["kept_fraction"], 3),
            "r": round(p["r"], 4),
            "r (soft mask)": round(p.get("r_soft", float("nan")), 4),
            "loss (nats)": round(p["loss"], 3),
            "steps": p["steps"],
            "stopped early": p["stopped_early"],
        }
        for p in sweep
    ]


def surprisal_rows(table: Mapping[str, float]) -> list[dict]:
    """The necessity/sufficiency table as rows (mean held-out surprisal in nats)."""
    return [{"condition": k, "mean surprisal (nats)": round(float(v), 4)} for k, v in table.items()]
