"""Figures of the cross-modal knockout analysis: data in, plotly figure out."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

_COLORS = {
    "image->question": "#1f77b4",
    "image->last": "#ff7f0e",
    "question->last": "#2ca02c",
    "last->last": "#d62728",
    "object->question": "#9467bd",
    "nonobject->question": "#8c564b",
    "all->last": "#7f7f7f",
    "random->question": "#9467bd",
    "nonrandom->question": "#8c564b",
}
# Size-matched random controls share their patch set's colour, dashed.
_CONTROLS = ("random->question", "nonrandom->question")


def _dash(name: str) -> str | None:
    return "dot" if name == "all->last" else "dash" if name in _CONTROLS else None


def edge_curves(
    scores: np.ndarray, edges: Sequence[str], window: int, title: str | None = None
) -> go.Figure:
    """Mean relative change of the answer probability (%) by layer, one line per edge (``[E,
    L]``)."""
    scores = np.asarray(scores)
    layers = list(range(scores.shape[1]))
    fig = go.Figure()
    for e, name in enumerate(edges):
        fig.add_trace(
            go.Scatter(
                x=layers,
                y=scores[e],
                name=str(name),
                mode="lines+markers",
                line=dict(color=_COLORS.get(str(name)), dash=_dash(str(name))),
            )
        )
    fig.add_hline(y=0, line_color="black", line_width=1)
    fig.update_layout(
        title=title or f"Attention knockout (window {window}): change in answer probability",
        xaxis_title="layer (window centre)",
        yaxis_title="(p_new - p_base) / p_base (%)",
    )
    return fig


def edges_by_type(
    scores: np.ndarray, edges: Sequence[str], types: Sequence[str], window: int
) -> go.Figure:
    """One panel per question type (``scores``: ``[type, E, L]``); the all->last sanity edge left
    out."""
    n = len(types)
    cols = min(3, max(n, 1))
    rows = (n + cols - 1) // cols
    fig = make_subplots(
        rows=rows, cols=cols, subplot_titles=[str(t) for t in types], shared_yaxes=True
    )
    for t in range(n):
        r, c = t // cols + 1, t % cols + 1
        for e, name in enumerate(edges):
            if name == "all->last":
                continue
            fig.add_trace(
                go.Scatter(
                    x=list(range(scores.shape[2])),
                    y=scores[t, e],
                    name=str(name),
                    legendgroup=str(name),
                    showlegend=t == 0,
                    mode="lines",
                    line=dict(color=_COLORS.get(str(name))),
                ),
                row=r,
                col=c,
            )
    fig.update_layout(
        title=f"Knockout by question type (window {window}; % change of answer probability)",
        height=300 * rows,
    )
    return fig


def patch_set_curves(scores: np.ndarray, names: Sequence[str], window: int) -> go.Figure:
    """Change (%) when a patch set is blocked from the question, ``scores`` ``[4, L]``: object
    patches and a size-matched random set (solid), non-object patches and the rest of the image
    around that random set (dashed); each pair cuts as many patches."""
    layers = list(range(scores.shape[1]))
    fig = go.Figure()
    for j, name in enumerate(names):
        fig.add_trace(
            go.Scatter(
                x=layers,
                y=scores[j],
                name=str(name),
                mode="lines+markers",
                line=dict(color=_COLORS.get(str(name)), dash=_dash(str(name))),
            )
        )
    fig.add_hline(y=0, line_color="black", line_width=1)
    fig.update_layout(
        title="Object vs non-object patches against size-matched random patch sets "
        f"(window {window})",
        xaxis_title="layer (window centre)",
        yaxis_title="% change of p(answer)",
    )
    return fig


def logit_lens(with_norm: np.ndarray, without_norm: np.ndarray) -> go.Figure:
    """Answer probability at the last position read from each layer (0 = embedding)."""
    x = ["embed"] + [f"L{layer}" for layer in range(len(with_norm) - 1)]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(x=x, y=with_norm, name="through final norm + unembed", mode="lines+markers")
    )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=without_norm,
            name="unembed only, no final norm (the paper's code)",
            mode="lines+markers",
            line=dict(dash="dash"),
        )
    )
    fig.update_layout(
        title="Logit lens at the last position: probability of the model's answer",
        xaxis_title="residual stream after layer",
        yaxis_title="p(answer)",
        yaxis_range=[0, 1],
    )
    return fig


def attention_on_image(
    image: np.ndarray,
    attention: np.ndarray,
    question: str,
    layer: int | None = None,
    object_patches: np.ndarray | None = None,
) -> go.Figure:
    """The image with the last position's attention to each patch (mean over heads) overlaid;
    ``attention`` is ``[L, 64]``; ``layer=None`` averages over layers."""
    img = (np.clip(np.asarray(image), 0, 1) * 255).astype(np.uint8)
    att = np.asarray(attention)
    a = att.mean(0) if layer is None else att[layer]
    grid = int(round(np.sqrt(a.size)))
    size = img.shape[0] // grid
    heat = np.kron(a.reshape(grid, grid), np.ones((size, size)))
    fig = go.Figure(go.Image(z=img))
    fig.add_trace(
        go.Heatmap(
            z=heat, colorscale="Hot", opacity=0.55, showscale=True, colorbar=dict(title="attention")
        )
    )
    if object_patches is not None:
        for p in np.flatnonzero(np.asarray(object_patches)):
            r, c = divmod(int(p), grid)
            fig.add_shape(
                type="rect",
                x0=c * size - 0.5,
                x1=(c + 1) * size - 0.5,
                y0=r * size - 0.5,
                y1=(r + 1) * size - 0.5,
                line=dict(color="cyan", width=1),
            )
    which = "mean over layers" if layer is None else f"layer {layer}"
    fig.update_layout(
        title=f"Last-position attention to image patches ({which})<br><sub>{question}</sub>",
        yaxis=dict(autorange="reversed", scaleanchor="x"),
        width=460,
        height=460,
    )
    return fig
