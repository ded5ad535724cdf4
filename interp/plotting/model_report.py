"""Figures of the model report: data in, plotly figure out."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots


def logit_lens_figure(
    loss: np.ndarray, accuracy: np.ndarray, unigram: float | None = None
) -> go.Figure:
    """Loss and top-1 accuracy of the logit lens by layer (0 = embedding)."""
    layers = ["embed"] + [f"L{layer}" for layer in range(len(loss) - 1)]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(
        go.Scatter(x=layers, y=loss, name="loss (nats)", mode="lines+markers"), secondary_y=False
    )
    fig.add_trace(
        go.Scatter(x=layers, y=accuracy, name="top-1 accuracy", mode="lines+markers"),
        secondary_y=True,
    )
    if unigram is not None:
        fig.add_hline(y=unigram, line_dash="dot", annotation_text="unigram loss", secondary_y=False)
    fig.update_layout(
        title="Logit lens: next-token prediction read from each layer", xaxis_title="layer"
    )
    fig.update_yaxes(title_text="loss (nats)", secondary_y=False)
    fig.update_yaxes(title_text="accuracy", secondary_y=True, range=[0, 1])
    return fig


def head_heatmap(
    values: np.ndarray, title: str, colorscale: str = "RdBu_r", zmid: float | None = 0.0
) -> go.Figure:
    """A ``[layer, head]`` heatmap."""
    L, H = values.shape
    fig = go.Figure(
        go.Heatmap(
            z=values,
            x=[f"H{h}" for h in range(H)],
            y=[f"L{layer}" for layer in range(L)],
            colorscale=colorscale,
            zmid=zmid,
            colorbar=dict(title=""),
        )
    )
    fig.update_layout(
        title=title, xaxis_title="head", yaxis_title="layer", yaxis_autorange="reversed"
    )
    return fig


def head_scores_figure(prev: np.ndarray, first: np.ndarray) -> go.Figure:
    """Previous-token and first-token attention scores per head, side by side."""
    L, H = prev.shape
    fig = make_subplots(
        rows=1, cols=2, subplot_titles=("previous-token attention", "first-token attention")
    )
    for col, z in ((1, prev), (2, first)):
        fig.add_trace(
            go.Heatmap(
                z=z,
                x=[f"H{h}" for h in range(H)],
                y=[f"L{layer}" for layer in range(L)],
                zmin=0,
                zmax=1,
                colorscale="Viridis",
                showscale=col == 2,
            ),
            row=1,
            col=col,
        )
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(title="Attention head scores (mean over held-out text)")
    return fig


def attention_grid(patterns: np.ndarray, tokens: Sequence[str], max_heads: int = 8) -> go.Figure:
    """Attention patterns ``[layer, head, query, key]`` on one prompt; a dropdown picks the
    layer."""
    L, H, T, _ = patterns.shape
    labels = [f"{i}:{t!r}"[:14] for i, t in enumerate(tokens[:T])]
    fig = go.Figure()
    shown = min(H, max_heads)
    fig = make_subplots(
        rows=1, cols=shown, subplot_titles=[f"H{h}" for h in range(shown)], horizontal_spacing=0.02
    )
    for layer in range(L):
        for h in range(shown):
            fig.add_trace(
                go.Heatmap(
                    z=patterns[layer, h],
                    x=labels,
                    y=labels,
                    zmin=0,
                    zmax=1,
                    colorscale="Blues",
                    showscale=False,
                    visible=(layer == 0),
                ),
                row=1,
                col=h + 1,
            )
    buttons = []
    for layer in range(L):
        vis = [tl == layer for tl in range(L) for _ in range(shown)]
        buttons.append(dict(label=f"layer {layer}", method="update", args=[{"visible": vis}]))
    fig.update_layout(
        title="Attention patterns on the prompt (query rows, key columns)",
        updatemenus=[dict(buttons=buttons, direction="down", x=0, y=1.15)],
        height=420,
    )
    fig.update_yaxes(autorange="reversed", showticklabels=False)
    fig.update_yaxes(showticklabels=True, row=1, col=1)
    fig.update_xaxes(showticklabels=False)
    return fig
