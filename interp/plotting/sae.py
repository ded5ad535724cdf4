"""Figures of the ``sae`` experiment: data in, plotly figure out."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go


def loss_bars(ce_clean: float, ce_spliced: float, ce_zero: float) -> go.Figure:
    """Held-out cross-entropy: clean, with the SAE spliced in, with the activation zeroed."""
    names, vals = ["clean", "SAE spliced in", "zero-ablated"], [ce_clean, ce_spliced, ce_zero]
    gap = ce_zero - ce_clean
    rec = (ce_zero - ce_spliced) / gap if abs(gap) > 1e-12 else float("nan")
    fig = go.Figure(
        go.Bar(x=names, y=vals, text=[f"{v:.3f}" for v in vals], textposition="outside")
    )
    fig.update_layout(
        title=f"Next-token loss on held-out text (loss recovered {rec:.3f})",
        yaxis_title="nats / token",
    )
    return fig


def density_histogram(density: np.ndarray) -> go.Figure:
    """How often each latent fires: log10 of its firing fraction (dead latents counted apart)."""
    density = np.asarray(density, dtype=float)
    alive = density[density > 0]
    fig = go.Figure(go.Histogram(x=np.log10(alive), nbinsx=40))
    fig.update_layout(
        title=f"Latent density (log10 fraction of tokens); {int((density == 0).sum())} of "
        f"{len(density)} latents never fire",
        xaxis_title="log10 density",
        yaxis_title="latents",
    )
    return fig


def training_curve(log: Sequence[dict]) -> go.Figure:
    """The SAE's training loss by step."""
    steps = [e["step"] for e in log if "loss" in e]
    loss = [e["loss"] for e in log if "loss" in e]
    fig = go.Figure(go.Scatter(x=steps, y=loss, mode="lines+markers"))
    fig.update_layout(
        title="SAE training loss", xaxis_title="step", yaxis_title="loss", yaxis_type="log"
    )
    return fig
