"""Figures and HTML of SAE feature pages (:mod:`interp.sae.features`): data in, figure or HTML out.

A latent's page shows its activation histogram (log10 bins of positive activations),
the tokens its decoder direction promotes and suppresses, and its top contexts as HTML
with each token's background intensity proportional to the latent's activation there.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

HIGHLIGHT = "255, 120, 0"  # rgb of the highlight; alpha carries the activation


def histogram_figure(
    edges: np.ndarray, counts: np.ndarray, density: float, title: str = ""
) -> go.Figure:
    """Bars of ``counts [n_bins]`` over log10-spaced ``edges [n_bins + 1]`` (a log x axis), the
    density (fraction of positions > 0) in the title."""
    edges, counts = np.asarray(edges, float), np.asarray(counts)
    centers = np.sqrt(edges[:-1] * edges[1:])  # geometric middle of each log bin
    fig = go.Figure(
        go.Bar(
            x=centers,
            y=counts,
            width=np.diff(edges),
            marker_color=f"rgb({HIGHLIGHT})",
            customdata=np.stack([edges[:-1], edges[1:]], 1),
            hovertemplate="[%{customdata[0]:.3g}, %{customdata[1]:.3g}): %{y}<extra></extra>",
        )
    )
    fig.update_xaxes(type="log", title_text="activation (> 0)")
    fig.update_yaxes(title_text="positions")
    fig.update_layout(
        title=f"Activations {title} · density {density:.3g}".strip(), height=300, bargap=0
    )
    return fig


def logit_figure(
    promoted: Sequence[str],
    promoted_values: Sequence[float],
    suppressed: Sequence[str],
    suppressed_values: Sequence[float],
    title: str = "",
) -> go.Figure:
    """Two horizontal bar panels: the most promoted tokens (top first) and the most suppressed."""
    fig = make_subplots(
        rows=1, cols=2, subplot_titles=["promoted", "suppressed"], horizontal_spacing=0.2
    )
    for col, (names, vals, color) in enumerate(
        (
            (promoted, promoted_values, "rgb(40, 120, 200)"),
            (suppressed, suppressed_values, "rgb(200, 60, 60)"),
        ),
        start=1,
    ):
        names = [repr(s)[1:-1] for s in names]  # show spaces and newlines
        fig.add_trace(
            go.Bar(x=list(vals), y=names, orientation="h", marker_color=color, showlegend=False),
            row=1,
            col=col,
        )
        fig.update_yaxes(autorange="reversed", type="category", row=1, col=col)
    fig.update_xaxes(title_text="logit effect of a unit activation")
    fig.update_layout(
        title=f"Logit effects {title}".strip(), height=max(250, 28 * max(len(promoted), 1) + 120)
    )
    return fig


def context_html(
    strings: Sequence[str], acts: Sequence[float], max_act: float, center: int | None = None
) -> str:
    """One context as HTML: each token (escaped) on a background whose alpha is ``act / max_act``;
    the top position ``center`` underlined; hovering a token shows its activation."""
    spans = []
    scale = max_act if max_act > 0 else 1.0
    for j, (s, a) in enumerate(zip(strings, acts, strict=True)):
        alpha = float(np.clip(a / scale, 0.0, 1.0))
        style = (
            f"background-color: rgba({HIGHLIGHT}, {alpha:.3f}); border-radius: 2px; "
            "white-space: pre"
        )
        if j == center:
            style += "; text-decoration: underline; font-weight: bold"
        spans.append(f'<span style="{style}" title="{a:.4g}">{html.escape(str(s))}</span>')
    return '<div style="font-family: monospace; line-height: 1.8">' + "".join(spans) + "</div>"


__all__ = ["histogram_figure", "logit_figure", "context_html", "HIGHLIGHT"]
