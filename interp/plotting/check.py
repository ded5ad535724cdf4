"""Figures of the checkpoint check: data in, plotly figure out."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

FLOOR = 1e-12  # an exact match (error 0) is drawn here: a log axis has no zero


def parity_figure(
    names: Sequence[str],
    errors: np.ndarray,
    tolerance: float,
    logits_error: float | None = None,
    logits_tolerance: float | None = None,
) -> go.Figure:
    """Max abs error of each residual-stream hook against the model's own hidden state (log
    scale), with the tolerance; the logits as a last point when the model has an LM head."""
    errors = np.asarray(errors, dtype=float)
    labels = list(names)
    fig = go.Figure(
        go.Scatter(
            x=labels,
            y=np.maximum(errors, FLOOR),
            mode="lines+markers",
            name="hidden states",
            customdata=errors,
            hovertemplate="%{x}<br>max abs error %{customdata:.3g}<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=labels,
            y=[tolerance] * len(labels),
            mode="lines",
            line=dict(dash="dash"),
            name=f"tolerance {tolerance:.2g}",
        )
    )
    if logits_error is not None:
        fig.add_trace(
            go.Scatter(
                x=["logits"],
                y=[max(logits_error, FLOOR)],
                mode="markers",
                marker=dict(symbol="diamond", size=11),
                name="logits",
                customdata=[logits_error],
                hovertemplate="logits<br>max abs error %{customdata:.3g}<extra></extra>",
            )
        )
        if logits_tolerance is not None:
            fig.add_trace(
                go.Scatter(
                    x=["logits"],
                    y=[logits_tolerance],
                    mode="markers",
                    marker=dict(symbol="line-ew-open", size=24),
                    name="logits tolerance",
                )
            )
    fig.update_layout(
        title="Parity with the model's own forward: max abs error per layer",
        xaxis_title="hook (residual stream, input to output)",
        yaxis_title=f"max abs error (0 drawn at {FLOOR:g})",
    )
    fig.update_yaxes(type="log")
    return fig


def timing_figure(times: dict[str, list[float]], ratio: float, bare_what: str = "") -> go.Figure:
    """Milliseconds per call of the bare forward and of ``collect``, round by round
    (interleaved), with the median paired ratio in the title."""
    fig = go.Figure()
    for name, ts in times.items():
        fig.add_trace(
            go.Scatter(
                x=list(range(1, len(ts) + 1)),
                y=[1e3 * t for t in ts],
                mode="lines+markers",
                name=name,
            )
        )
    sub = f"<br><sup>bare: {bare_what}</sup>" if bare_what else ""
    fig.update_layout(
        title=f"collect of every resid_post / bare forward: {ratio:.2f}x "
        f"(median of paired rounds){sub}",
        xaxis_title="round (variants interleaved)",
        yaxis_title="ms per call",
    )
    return fig
