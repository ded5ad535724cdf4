"""Figures of the RNN-emulates-HMM analysis: data in, plotly figure out."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

OUTPUT_COLORS = ["#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]
REGION_NAMES = ("transition (RT<2)", "kick zone (2-8)", "cluster (RT>8)")
STABILITY_SYMBOLS = {
    "stable": "circle",
    "saddle": "x",
    "unstable": "diamond",
    "marginal": "square",
    "kink": "star",
    "unknown": "cross",
}


def _thin(n: int, max_points: int = 6000) -> np.ndarray:
    return np.linspace(0, n - 1, min(n, max_points)).astype(int)


def orbit_figure(
    Z: np.ndarray,
    outputs: np.ndarray,
    residency: np.ndarray,
    switch_paths: tuple | None = None,
    regions: np.ndarray | None = None,
) -> go.Figure:
    """PCA orbit (PC1-PC2) coloured by argmax output (left) and by residency region (right).

    ``regions`` (codes 0 transition, 1 kick zone, 2 cluster, -1 none) when given, else from
    the residency thresholds alone; states in no region are not drawn on the right."""
    idx = _thin(len(Z))
    fig = make_subplots(
        rows=1, cols=2, subplot_titles=("coloured by output", "coloured by residency time")
    )
    for k in np.unique(outputs[idx]):
        sel = idx[outputs[idx] == k]
        fig.add_trace(
            go.Scattergl(
                x=Z[sel, 0],
                y=Z[sel, 1],
                mode="markers",
                name=f"output {k}",
                marker=dict(size=3, color=OUTPUT_COLORS[int(k) % 5], opacity=0.5),
            ),
            1,
            1,
        )
    if regions is None:
        rt = residency[idx]
        reg = np.where(rt < 2, 0, np.where(rt <= 8, 1, 2))
        reg[np.isnan(rt)] = -1
    else:
        reg = np.asarray(regions)[idx]
    for r, name in enumerate(REGION_NAMES):
        sel = idx[reg == r]
        fig.add_trace(
            go.Scattergl(
                x=Z[sel, 0],
                y=Z[sel, 1],
                mode="markers",
                name=name,
                marker=dict(size=3, color=["#d62728", "#ff7f0e", "#7f7f7f"][r], opacity=0.5),
            ),
            1,
            2,
        )
    if switch_paths is not None:
        for p, name in zip(switch_paths, ("switch a->b (mean)", "switch b->a (mean)"), strict=True):
            fig.add_trace(
                go.Scatter(
                    x=[p[0]],
                    y=[p[1]],
                    mode="markers",
                    name=name,
                    marker=dict(size=14, symbol="star", line=dict(width=1)),
                ),
                1,
                1,
            )
    fig.update_xaxes(title_text="PC1")
    fig.update_yaxes(title_text="PC2")
    fig.update_layout(title="Noise-driven orbit in PCA space", height=450)
    return fig


def transition_matrices_figure(P_rnn: np.ndarray, P_hmm: np.ndarray) -> go.Figure:
    """One-step output transition matrices of the RNN and the HMM, side by side."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("RNN", "HMM"))
    for c, P in enumerate((P_rnn, P_hmm), start=1):
        fig.add_trace(
            go.Heatmap(
                z=P,
                zmin=0,
                zmax=1,
                colorscale="Viridis",
                showscale=c == 2,
                text=np.round(P, 3),
                texttemplate="%{text}",
            ),
            1,
            c,
        )
        fig.update_yaxes(title_text="output t", autorange="reversed", row=1, col=c)
        fig.update_xaxes(title_text="output t+1", row=1, col=c)
    fig.update_layout(title="P(o_{t+1} | o_t)", height=380)
    return fig


def fixed_points_figure(Z: np.ndarray, fp_pcs: np.ndarray, stability: Sequence[str]) -> go.Figure:
    """Fixed/slow points (no input) over the orbit, marker by stability."""
    idx = _thin(len(Z), 3000)
    fig = go.Figure(
        go.Scattergl(
            x=Z[idx, 0],
            y=Z[idx, 1],
            mode="markers",
            name="orbit",
            marker=dict(size=3, color="lightgray"),
        )
    )
    for lab in sorted(set(stability)):
        sel = np.asarray([s == lab for s in stability])
        fig.add_trace(
            go.Scatter(
                x=fp_pcs[sel, 0],
                y=fp_pcs[sel, 1],
                mode="markers",
                name=lab,
                marker=dict(
                    size=12, symbol=STABILITY_SYMBOLS.get(lab, "circle"), line=dict(width=1)
                ),
            )
        )
    fig.update_layout(
        title="Fixed points without input, with stability",
        xaxis_title="PC1",
        yaxis_title="PC2",
        height=420,
    )
    return fig


def speed_figure(Z: np.ndarray, q: np.ndarray) -> go.Figure:
    """The speed q(h) = 0.5||F(h,0) - h||^2 along the orbit (log colour)."""
    idx = _thin(len(Z))
    fig = go.Figure(
        go.Scattergl(
            x=Z[idx, 0],
            y=Z[idx, 1],
            mode="markers",
            marker=dict(
                size=3,
                color=np.log10(q[idx] + 1e-12),
                colorscale="Magma",
                colorbar=dict(title="log10 q"),
            ),
        )
    )
    fig.update_layout(
        title="Speed q(h) without input along the orbit",
        xaxis_title="PC1",
        yaxis_title="PC2",
        height=420,
    )
    return fig


def spectra_figure(eigenvalues: np.ndarray, region: np.ndarray) -> go.Figure:
    """Leading Jacobian eigenvalues along the orbit in the complex plane, by residency region."""
    fig = go.Figure()
    th = np.linspace(0, 2 * np.pi, 200)
    fig.add_trace(
        go.Scatter(
            x=np.cos(th),
            y=np.sin(th),
            mode="lines",
            name="|lambda| = 1",
            line=dict(color="black", dash="dot"),
        )
    )
    lead = eigenvalues[:, :3]
    for r, name in enumerate(REGION_NAMES):
        sel = region == r
        if sel.any():
            v = lead[sel].reshape(-1)
            fig.add_trace(
                go.Scatter(
                    x=v.real, y=v.imag, mode="markers", name=name, marker=dict(size=4, opacity=0.6)
                )
            )
    fig.update_layout(
        title="Top-3 Jacobian eigenvalues along the orbit",
        xaxis_title="Re",
        yaxis_title="Im",
        height=420,
        yaxis_scaleanchor="x",
    )
    return fig


def residency_figure(residency: np.ndarray, cap: int = 60) -> go.Figure:
    """Histogram of residency times per state (steps until the argmax output changes, mean over
    fresh-noise continuations), clipped at ``cap``; dashed lines at the region thresholds."""
    rt = residency[np.isfinite(residency)]
    fig = go.Figure(go.Histogram(x=np.minimum(rt, cap), nbinsx=max(10, int(cap))))
    for v in (2, 8):
        fig.add_vline(x=v, line_dash="dash")
    fig.update_layout(
        title=f"Residency time per state (clipped at {cap})",
        xaxis_title="steps",
        yaxis_title="states",
        height=350,
    )
    return fig


def ablation_figure(abl: dict) -> go.Figure:
    """Relative switch-rate change when zeroing each direction's kick neurons, the activity
    candidates and random sets of active neurons."""
    kicks = abl.get("kick_deltas", {})
    names = (
        [f"kick {d}" for d in kicks]
        + ["activity top"]
        + [f"random {i}" for i in range(len(abl["random_deltas"]))]
    )
    vals = [*kicks.values(), abl["activity_delta"], *abl["random_deltas"]]
    colors = ["#d62728"] * len(kicks) + ["#ff7f0e"] + ["#7f7f7f"] * len(abl["random_deltas"])
    fig = go.Figure(go.Bar(x=names, y=vals, marker_color=colors))
    fig.update_layout(
        title="Ablation at rnn.hook_h: relative switch-rate change "
        f"(base {abl['base_switch_rate']:.4f})",
        yaxis_title="relative change",
        height=380,
    )
    return fig


def training_figure(rows: list[dict]) -> go.Figure:
    """Metrics over training snapshots."""
    steps = [r["step"] for r in rows]
    keys = [
        "row_error",
        "switch_error",
        "freq_error",
        "pc1",
        "cluster_purity",
        "frac_unstable_jacobian",
        "frac_complex_leading",
    ]
    fig = go.Figure()
    for k in keys:
        fig.add_trace(go.Scatter(x=steps, y=[r.get(k) for r in rows], mode="lines+markers", name=k))
    fig.update_layout(title="Metrics over training", xaxis_title="step", height=400)
    return fig
