"""Figures of the reversal-curse probes: data in, plotly figure out."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from interp.data.reversal import OBJECTIVE_NAMES, TRAINED

_DIR = {"n2d": "name→desc", "d2n": "desc→name"}


def accuracy_grid(
    acc: np.ndarray,
    variants: Sequence[str],
    objectives: Sequence[str],
    groups: Sequence[str],
    directions: Sequence[str],
    splits: Sequence[str],
    title: str = "Exact-match accuracy by model, direction and training group",
) -> go.Figure:
    """Exact-match accuracy, mean over seeds: one heatmap per (variant, split), rows =
    models, columns = direction x group (cells the group was never trained in are marked
    "reverse"). ``acc``: ``[variant, objective, seed, direction, group, split]``; ``title``
    names the way the question was asked."""
    mean = np.nanmean(acc, axis=2)  # [V, O, D, G, S]
    titles = [
        f"{v}-level, {'training templates' if s == 'train' else 'held-out paraphrases'}"
        for v in variants
        for s in splits
    ]
    fig = make_subplots(
        rows=len(variants), cols=len(splits), subplot_titles=titles, vertical_spacing=0.18
    )
    cols = [(di, gi) for di in range(len(directions)) for gi in range(len(groups))]
    x = [
        f"{_DIR.get(directions[di], directions[di])}<br>{groups[gi]}"
        + ("" if directions[di] in TRAINED.get(groups[gi], directions) else " (reverse)")
        for di, gi in cols
    ]
    y = [OBJECTIVE_NAMES.get(o, o) for o in objectives]
    for vi in range(len(variants)):
        for si in range(len(splits)):
            z = np.array(
                [[mean[vi, oi, di, gi, si] for di, gi in cols] for oi in range(len(objectives))]
            )
            fig.add_trace(
                go.Heatmap(
                    z=z,
                    x=x,
                    y=y,
                    zmin=0,
                    zmax=1,
                    colorscale="Viridis",
                    showscale=vi == si == 0,
                    text=np.round(z, 2),
                    texttemplate="%{text}",
                    colorbar=dict(title="acc"),
                ),
                row=vi + 1,
                col=si + 1,
            )
    fig.update_layout(title=f"{title} (mean over seeds)", height=320 * len(variants) + 80)
    return fig


def logprob_figure(
    data: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    objectives: Sequence[str],
    groups: Sequence[str],
    directions: Sequence[str],
) -> go.Figure:
    """Log-prob of the correct target minus the mean over random same-group targets, per
    pair (mean over seeds; training templates), split by whether the pair was trained in
    the asked direction. ``data[variant] = (correct, random, pair_group)`` with correct and
    random ``[objective, seed, direction, split, pair]``."""
    variants = list(data)
    fig = make_subplots(
        rows=1,
        cols=len(variants),
        subplot_titles=[f"{v}-level facts" for v in variants],
        shared_yaxes=True,
    )
    colors = {"trained direction": "#1f77b4", "reverse (never trained)": "#d62728"}
    for vi, v in enumerate(variants):
        correct, rand, pair_group = data[v]
        diff = np.nanmean(correct - rand, axis=1)[:, :, 0]  # [objective, direction, pair]
        for kind, color in colors.items():
            xs, ys = [], []
            for oi, o in enumerate(objectives):
                for di, d in enumerate(directions):
                    trained = np.array([d in TRAINED.get(groups[g], ()) for g in pair_group])
                    sel = trained if kind == "trained direction" else ~trained
                    vals = diff[oi, di, sel]
                    ys += vals.tolist()
                    xs += [OBJECTIVE_NAMES.get(o, o)] * len(vals)
            fig.add_trace(
                go.Box(
                    x=xs,
                    y=ys,
                    name=kind,
                    marker_color=color,
                    boxpoints="all",
                    jitter=0.4,
                    pointpos=0,
                    legendgroup=kind,
                    showlegend=vi == 0,
                ),
                row=1,
                col=vi + 1,
            )
    fig.add_hline(y=0, line_dash="dot")
    fig.update_layout(
        boxmode="group",
        title="log p(correct target) − mean log p(random same-group target), per pair",
        yaxis_title="nats",
    )
    return fig


def probe_figure(
    probe: np.ndarray,
    variants: Sequence[str],
    objectives: Sequence[str],
    directions: Sequence[str],
    kinds: Sequence[str],
    chance: dict[str, float],
) -> go.Figure:
    """Probe accuracy by layer (mean over seeds and directions): solid = entities trained in
    the probed direction, dashed = entities never trained in it. ``probe``: ``[variant,
    objective, seed, direction, kind, layer+1]``."""
    fig = make_subplots(
        rows=1,
        cols=len(variants),
        subplot_titles=[f"{v}-level facts" for v in variants],
        shared_yaxes=True,
    )
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd"]
    n = probe.shape[-1]
    layers = ["embed"] + [f"L{layer}" for layer in range(n - 1)]
    for vi, v in enumerate(variants):
        for oi, o in enumerate(objectives):
            for ki, kind in enumerate(kinds):
                y = np.nanmean(probe[vi, oi, :, :, ki], axis=(0, 1))
                fig.add_trace(
                    go.Scatter(
                        x=layers,
                        y=y,
                        mode="lines+markers",
                        name=f"{OBJECTIVE_NAMES.get(o, o)}, {kind}",
                        line=dict(
                            color=palette[oi % len(palette)], dash="solid" if ki == 0 else "dash"
                        ),
                        legendgroup=f"{o}{kind}",
                        showlegend=vi == 0,
                    ),
                    row=1,
                    col=vi + 1,
                )
        fig.add_hline(y=chance[v], line_dash="dot", annotation_text="chance", row=1, col=vi + 1)
    fig.update_layout(
        title="Linear probe for the target entity at the query position, by layer",
        yaxis_title="probe accuracy (nearest target in group)",
        yaxis_range=[0, 1.05],
    )
    return fig
