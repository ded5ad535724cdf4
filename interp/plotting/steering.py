"""Figures of the steering analysis and of the explorer's steering view: data in, figure out."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go


def relevance_figure(
    coefs: Sequence[float], actadd: np.ndarray, random: np.ndarray, topic: str
) -> go.Figure:
    """Topic log-probability of the completions against the coefficient, ActAdd and a random
    direction of equal norm."""
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(x=list(coefs), y=list(actadd), mode="lines+markers", name="ActAdd vector")
    )
    fig.add_trace(
        go.Scatter(
            x=list(coefs),
            y=list(random),
            mode="lines+markers",
            name="random, equal norm",
            line=dict(dash="dot"),
        )
    )
    fig.update_layout(
        title=f"Topic relevance ({topic!r} words) of steered completions",
        xaxis_title="coefficient",
        yaxis_title="mean log P(topic words) per new token (nats)",
    )
    return fig


def loss_figure(coefs: Sequence[float], losses: np.ndarray) -> go.Figure:
    """Off-topic held-out loss under ActAdd against the coefficient."""
    fig = go.Figure(
        go.Scatter(x=list(coefs), y=list(losses), mode="lines+markers", name="held-out loss")
    )
    fig.update_layout(
        title="Off-topic held-out loss under ActAdd",
        xaxis_title="coefficient",
        yaxis_title="next-token loss (nats)",
    )
    return fig


def caa_figure(
    minus: np.ndarray, zero: np.ndarray, plus: np.ndarray, coef: float, behaviour: str
) -> go.Figure:
    """P(behaviour-matching answer) on held-out A/B questions at -c, 0, +c (mean and each)."""
    labels = [f"-{coef:g}", "0", f"+{coef:g}"]
    fig = go.Figure()
    for i in range(len(zero)):
        fig.add_trace(
            go.Scatter(
                x=labels,
                y=[minus[i], zero[i], plus[i]],
                mode="lines",
                showlegend=False,
                line=dict(color="lightgray", width=1),
            )
        )
    fig.add_trace(
        go.Scatter(
            x=labels,
            y=[float(np.mean(v)) for v in (minus, zero, plus)],
            mode="lines+markers",
            name="mean",
            line=dict(width=3),
        )
    )
    fig.update_layout(
        title=f"CAA ({behaviour}): P(matching answer) on held-out A/B questions",
        xaxis_title="coefficient",
        yaxis_title="P(matching) / (P(A) + P(B))",
        yaxis_range=[0, 1],
    )
    return fig


def sae_figure(base: float, steered: float, promoted: Sequence[str], latent: int) -> go.Figure:
    """Log-probability of an SAE latent's promoted tokens, unsteered and steered."""
    fig = go.Figure(go.Bar(x=["unsteered", "steered"], y=[base, steered]))
    shown = ", ".join(repr(t) for t in list(promoted)[:8])
    fig.update_layout(
        title=f"SAE latent {latent}: log P(promoted tokens) per new token<br><sub>{shown}</sub>",
        yaxis_title="nats",
    )
    return fig


def examples_table(rows: Sequence[dict]) -> go.Figure:
    """Completions side by side: one row per prompt, one column per condition."""
    if not rows:
        return go.Figure()
    cols = list(rows[0])
    fig = go.Figure(
        go.Table(
            header=dict(values=cols, align="left"),
            cells=dict(values=[[str(r.get(c, "")) for r in rows] for c in cols], align="left"),
        )
    )
    fig.update_layout(title="Completions, unsteered and steered")
    return fig


def token_shift_figure(
    tokens: Sequence[str],
    steered_p: Sequence[float],
    base_p: Sequence[float],
    title: str = "Per-token probability shift",
) -> go.Figure:
    """For each token of a steered completion: its probability under the steered model and under
    the unsteered model given the same prefix (bars: the shift)."""
    x = [f"{i}:{t!r}"[:16] for i, t in enumerate(tokens)]
    shift = np.asarray(steered_p) - np.asarray(base_p)
    fig = go.Figure()
    fig.add_trace(
        go.Bar(
            x=x,
            y=shift,
            name="steered - unsteered",
            marker_color=["#2b8cbe" if s >= 0 else "#e34a33" for s in shift],
        )
    )
    fig.add_trace(go.Scatter(x=x, y=list(steered_p), mode="markers", name="P steered"))
    fig.add_trace(go.Scatter(x=x, y=list(base_p), mode="markers", name="P unsteered"))
    fig.update_layout(
        title=title, yaxis_title="probability", xaxis_title="token of the steered completion"
    )
    return fig
