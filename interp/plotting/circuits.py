"""Figures of the edge-level circuits analysis: data in, plotly figure out."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go


def faithfulness_figure(curves: Sequence[dict], level: float = 0.8) -> go.Figure:
    """Faithfulness against the share of edges kept (log x), one line per method; a curve
    with ``f_std`` (random circuits) gets a band of one standard deviation."""
    fig = go.Figure()
    for c in curves:
        share, f = np.asarray(c["share"], float), np.asarray(c["f"], float)
        keep = share > 0
        if c.get("f_std") is not None:
            sd = np.asarray(c["f_std"], float)[keep]
            fig.add_trace(
                go.Scatter(
                    x=np.r_[share[keep], share[keep][::-1]],
                    y=np.r_[f[keep] + sd, (f[keep] - sd)[::-1]],
                    fill="toself",
                    line=dict(width=0),
                    opacity=0.2,
                    showlegend=False,
                    hoverinfo="skip",
                    name=f"{c['name']} +- sd",
                )
            )
        fig.add_trace(
            go.Scatter(
                x=share[keep],
                y=f[keep],
                mode="lines+markers",
                name=c["name"],
                customdata=np.asarray(c["k"])[keep],
                hovertemplate="%{x:.4f} of edges (%{customdata}): f = %{y:.3f}",
            )
        )
    fig.add_hline(y=1.0, line_dash="dot", annotation_text="clean")
    fig.add_hline(y=level, line_dash="dash", line_color="grey", annotation_text=f"{level:.0%}")
    fig.add_hline(y=0.0, line_dash="dot", annotation_text="corrupt")
    fig.update_layout(
        title="Faithfulness of the top-k edges: (m(C) - m(corrupt)) / (m(clean) - m(corrupt))",
        xaxis_title="share of edges kept",
        yaxis_title="faithfulness",
        xaxis_type="log",
    )
    return fig


def _node_xy(
    kind: str, layer: int, head: int | None, n_heads: int, n_layers: int
) -> tuple[float, float]:
    """Writers and readers of one component share a spot: heads spread along x, MLP at the right."""
    if kind == "input":
        return (n_heads - 1) / 2, -1.0
    if kind == "logits":
        return (n_heads - 1) / 2, float(n_layers)
    if kind in ("mlp", "mlp_in"):
        return float(n_heads) + 0.5, layer + 0.5
    return float(head or 0), float(layer)


def circuit_figure(
    writers: Sequence[dict],
    readers: Sequence[dict],
    edges: Sequence[dict],
    n_layers: int,
    n_heads: int,
    n_kv_heads: int,
    title: str = "Circuit",
) -> go.Figure:
    """The circuit on a layers x components grid: components with a kept edge as markers
    (heads by layer and head, MLPs at the right, input below, logits on top), each kept edge
    a line from its writer to its reader's component, width and colour by score. ``edges``:
    ``{"writer": i, "reader": j, "score": s}``; keys and values reach their query heads'
    group (grouped-query attention), drawn at the group's first head."""
    group = max(1, n_heads // max(n_kv_heads, 1))
    fig = go.Figure()
    smax = max([abs(e["score"]) for e in edges] or [1.0]) or 1.0
    used: dict[tuple, str] = {}
    for e in edges:
        w, r = writers[e["writer"]], readers[e["reader"]]
        rh = r.get("head")
        if r["kind"] in ("k", "v") and rh is not None:
            rh = rh * group
        x0, y0 = _node_xy(w["kind"], w["layer"], w.get("head"), n_heads, n_layers)
        x1, y1 = _node_xy(r["kind"], r["layer"], rh, n_heads, n_layers)
        # readers sit just below their component, so edges into a layer's heads are visible
        y1 -= 0.15
        colour = "rgba(200,30,30,0.7)" if e["score"] > 0 else "rgba(30,60,200,0.7)"
        fig.add_trace(
            go.Scatter(
                x=[x0, x1],
                y=[y0, y1],
                mode="lines",
                showlegend=False,
                line=dict(width=0.5 + 4 * abs(e["score"]) / smax, color=colour),
                hovertext=f"{w['name']} -> {r['name']}: {e['score']:.4g}",
                hoverinfo="text",
            )
        )
        used[(x0, y0)] = w["name"]
        used.setdefault((x1, y1 + 0.15), r["name"].split("<")[0])
    if used:
        xy = np.asarray(list(used))
        fig.add_trace(
            go.Scatter(
                x=xy[:, 0],
                y=xy[:, 1],
                mode="markers+text",
                text=list(used.values()),
                textposition="middle right",
                marker=dict(size=10, color="black"),
                showlegend=False,
            )
        )
    fig.update_layout(
        title=title,
        xaxis=dict(title="head (MLP at the right)", zeroline=False),
        yaxis=dict(title="layer (input below, logits on top)", zeroline=False),
    )
    return fig


def edge_scatter_figure(approx: np.ndarray, exact: np.ndarray, name: str = "EAP") -> go.Figure:
    """Approximate against exact single-edge patching effects, one dot per edge."""
    lim = float(np.nanmax(np.abs(np.r_[approx, exact]))) if len(approx) else 1.0
    fig = go.Figure(
        go.Scatter(x=exact, y=approx, mode="markers", marker=dict(size=5), name="edges")
    )
    fig.add_trace(
        go.Scatter(x=[-lim, lim], y=[-lim, lim], mode="lines", line=dict(dash="dot"), name="y = x")
    )
    fig.update_layout(
        title=f"{name} against exact edge patching (small corruption)",
        xaxis_title="exact effect of patching the edge",
        yaxis_title=f"{name} score",
    )
    return fig
