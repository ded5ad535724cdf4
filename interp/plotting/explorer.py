"""Figures of the live explorer: data in, plotly figure out."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots


def _labels(tokens: Sequence[str]) -> list[str]:
    return [f"{i}:{t!r}"[:16] for i, t in enumerate(tokens)]


def predictions_figure(tokens: Sequence[str], probs: np.ndarray) -> go.Figure:
    fig = go.Figure(go.Bar(x=list(probs)[::-1], y=[repr(t) for t in tokens][::-1], orientation="h"))
    fig.update_layout(title="Top next-token predictions", xaxis_title="probability", height=320)
    return fig


def heads_grid(patterns: np.ndarray, tokens: Sequence[str]) -> go.Figure:
    """All heads of one layer, ``patterns``: [head, query, key]."""
    H = patterns.shape[0]
    cols = min(H, 4)
    rows = (H + cols - 1) // cols
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=[f"head {h}" for h in range(H)],
        horizontal_spacing=0.03,
        vertical_spacing=0.08,
    )
    for h in range(H):
        fig.add_trace(
            go.Heatmap(z=patterns[h], zmin=0, zmax=1, colorscale="Blues", showscale=False),
            row=h // cols + 1,
            col=h % cols + 1,
        )
    fig.update_yaxes(autorange="reversed", showticklabels=False)
    fig.update_xaxes(showticklabels=False)
    fig.update_layout(height=260 * rows, title="Attention (query rows, key columns)")
    return fig


def head_pattern(pattern: np.ndarray, tokens: Sequence[str], title: str) -> go.Figure:
    labels = _labels(tokens)
    fig = go.Figure(go.Heatmap(z=pattern, x=labels, y=labels, zmin=0, zmax=1, colorscale="Blues"))
    fig.update_layout(title=f"{title} attention", yaxis_autorange="reversed", height=520)
    return fig


def lens_figure(
    lens_probs: np.ndarray, tokens: Sequence[str], target_prob: np.ndarray, target: str
) -> go.Figure:
    """Heatmap [layer, pos] of the probability of the actual next token, plus the target's curve."""
    rows = ["embed"] + [f"L{layer}" for layer in range(lens_probs.shape[0] - 1)]
    fig = make_subplots(
        rows=1,
        cols=2,
        column_widths=[0.7, 0.3],
        subplot_titles=(
            "P(actual next token) read from each layer",
            f"P({target!r}) at the last position",
        ),
    )
    fig.add_trace(
        go.Heatmap(z=lens_probs, x=_labels(tokens), y=rows, zmin=0, zmax=1, colorscale="Viridis"),
        1,
        1,
    )
    fig.add_trace(go.Scatter(x=target_prob, y=rows, mode="lines+markers", showlegend=False), 1, 2)
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(range=[0, 1], row=1, col=2)
    fig.update_layout(height=380)
    return fig


def head_effect_figure(effect: np.ndarray, target: str) -> go.Figure:
    L, H = effect.shape
    fig = go.Figure(
        go.Heatmap(
            z=effect,
            x=[f"H{h}" for h in range(H)],
            y=[f"L{layer}" for layer in range(L)],
            colorscale="RdBu",
            zmid=0,
        )
    )
    fig.update_layout(
        title=f"Change in the logit of {target!r} when each head is zero-ablated",
        yaxis_autorange="reversed",
        height=320,
    )
    return fig
