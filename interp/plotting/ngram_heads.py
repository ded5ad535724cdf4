"""Figures of the n-gram heads / in-context language learning analysis: data in, plotly out."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots


def accuracy_tvd_bars(accuracy: dict[str, float], tvd: dict[str, float]) -> go.Figure:
    """Accuracy and TVD per model and baseline, side by side."""
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=(
            "accuracy (greedy next symbol valid)",
            "TVD to the true next-symbol distribution",
        ),
    )
    names = list(accuracy)
    fig.add_trace(
        go.Bar(
            x=names,
            y=[accuracy[n] for n in names],
            name="accuracy",
            text=[f"{accuracy[n]:.3f}" for n in names],
            textposition="outside",
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Bar(
            x=names,
            y=[tvd[n] for n in names],
            name="TVD",
            text=[f"{tvd[n]:.3f}" for n in names],
            textposition="outside",
        ),
        row=1,
        col=2,
    )
    fig.update_yaxes(range=[0, 1.1])
    fig.update_layout(
        title="Unseen DFAs: accuracy and TVD (true TVD; the paper's code reports 2x)",
        showlegend=False,
    )
    return fig


def by_position(
    accuracy: dict[str, np.ndarray], tvd: dict[str, np.ndarray], window: int = 5
) -> go.Figure:
    """Accuracy and TVD against the position in the prompt (moving average over ``window``)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("accuracy by position", "TVD by position"))
    for col, data in ((1, accuracy), (2, tvd)):
        for i, (name, y) in enumerate(data.items()):
            y = _smooth(np.asarray(y, dtype=float), window)
            fig.add_trace(
                go.Scatter(
                    x=np.arange(len(y)),
                    y=y,
                    name=name,
                    mode="lines",
                    legendgroup=name,
                    showlegend=col == 1,
                    line=dict(color=_color(i)),
                ),
                row=1,
                col=col,
            )
    fig.update_xaxes(title_text="position in prompt")
    fig.update_layout(
        title="In-context learning curve: later positions have seen more of the language"
    )
    return fig


def head_score_heatmaps(scores: dict[int, dict[str, np.ndarray]]) -> go.Figure:
    """``[layer, head]`` heatmaps of n-gram attention mass and ratio to uniform, per n."""
    ns = sorted(scores)
    titles = [f"{n}-gram {what}" for n in ns for what in ("mass", "ratio to uniform")]
    fig = make_subplots(rows=len(ns), cols=2, subplot_titles=titles)
    for r, n in enumerate(ns, start=1):
        for c, key in ((1, "mass"), (2, "ratio")):
            z = scores[n][key]
            L, H = z.shape
            fig.add_trace(
                go.Heatmap(
                    z=z,
                    x=[f"H{h}" for h in range(H)],
                    y=[f"L{layer}" for layer in range(L)],
                    text=np.round(z, 2),
                    texttemplate="%{text}",
                    colorscale="Viridis",
                    zmin=0,
                    zmax=1 if key == "mass" else max(3.0, float(np.nanmax(z))),
                    showscale=False,
                ),
                row=r,
                col=c,
            )
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(
        title="n-gram heads: attention on keys after earlier occurrences of the context",
        height=300 * len(ns),
    )
    return fig


def attention_with_matches(
    pattern: np.ndarray, matches: np.ndarray, tokens: Sequence[str], title: str
) -> go.Figure:
    """One head's attention ``[query, key]`` on a prompt, n-gram matching keys marked."""
    T = pattern.shape[0]
    labels = [f"{i}:{t}" for i, t in enumerate(tokens[:T])]
    fig = go.Figure(go.Heatmap(z=pattern, x=labels, y=labels, colorscale="Blues", zmin=0, zmax=1))
    q, k = np.nonzero(matches[:T, :T])
    fig.add_trace(
        go.Scatter(
            x=[labels[j] for j in k],
            y=[labels[i] for i in q],
            mode="markers",
            marker=dict(symbol="circle-open", color="red", size=6),
            name="n-gram match",
        )
    )
    fig.update_layout(
        title=f"Attention of {title}",
        xaxis_title="key",
        yaxis_title="query",
        yaxis_autorange="reversed",
        height=700,
    )
    return fig


def ablation_bars(
    drop_top: float, drop_random: Sequence[float], top: Sequence[Sequence[int]]
) -> go.Figure:
    """Accuracy drop when the top n-gram heads are ablated vs random head sets."""
    heads = ", ".join(f"L{layer}H{h}" for layer, h in top)
    x = [f"top n-gram heads ({heads})"] + [f"random set {i}" for i in range(len(drop_random))]
    y = [drop_top] + list(drop_random)
    fig = go.Figure(go.Bar(x=x, y=y, marker_color=["crimson"] + ["grey"] * len(drop_random)))
    fig.add_hline(
        y=float(np.mean(drop_random)) if len(drop_random) else 0.0,
        line_dash="dot",
        annotation_text="mean random",
    )
    fig.update_layout(title="Accuracy drop under head ablation", yaxis_title="accuracy drop")
    return fig


def probe_r2(r2: dict[str, dict[str, float]]) -> go.Figure:
    """Held-out R^2 of linear probes for the in-context 2-gram statistics, per model and layer."""
    fig = go.Figure()
    for i, (model, per_hook) in enumerate(r2.items()):
        fig.add_trace(
            go.Scatter(
                x=list(per_hook),
                y=list(per_hook.values()),
                mode="lines+markers",
                name=model,
                line=dict(color=_color(i)),
            )
        )
    fig.update_layout(
        title="Probe: in-context 2-gram successor distribution of the current token",
        xaxis_title="activation (input -> output)",
        yaxis_title="held-out R^2",
    )
    return fig


def _smooth(y: np.ndarray, w: int) -> np.ndarray:
    if w <= 1:
        return y
    out = np.full_like(y, np.nan)
    for i in range(len(y)):
        seg = y[max(0, i - w + 1) : i + 1]
        seg = seg[~np.isnan(seg)]
        if len(seg):
            out[i] = seg.mean()
    return out


def _color(i: int) -> str:
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"]
    return palette[i % len(palette)]
