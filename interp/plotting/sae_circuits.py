"""Figures of the SAE circuit-discovery comparison: data in, plotly figure out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

Labels = Mapping[str, str]  # {scorer: label}; the analysis passes its scorer registry's
NO_LABELS: Labels = MappingProxyType({})  # keys shown as they are


def method_label(k: str, labels: Labels) -> str:
    """``"flip.position"`` -> ``"<flip's label> [position]"``; a key without a label stays."""
    scorer, _, mode = k.partition(".")
    return labels.get(scorer, scorer) + (f" [{mode}]" if mode else "")


def head_heatmaps(
    scores: Mapping[str, np.ndarray], truth: np.ndarray, title: str = "", labels: Labels = NO_LABELS
) -> go.Figure:
    """One ``[layer, head]`` heatmap per method beside the ground truth (each min-max scaled)."""
    panels = {"ground_truth": truth, **scores}
    labels = {"ground_truth": "ground truth |effect|", **labels}
    n = len(panels)
    cols = min(4, n)
    rows = int(np.ceil(n / cols))
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=[method_label(k, labels) for k in panels],
        horizontal_spacing=0.06,
        vertical_spacing=0.14,
    )
    for i, v in enumerate(panels.values()):
        v = np.asarray(v, float)
        span = v.max() - v.min()
        z = (v - v.min()) / span if span > 0 else np.zeros_like(v)
        fig.add_trace(
            go.Heatmap(
                z=z,
                colorscale="Viridis",
                zmin=0,
                zmax=1,
                showscale=i == 0,
                hovertemplate="layer %{y} head %{x}: %{customdata:.3g}<extra></extra>",
                customdata=v,
            ),
            row=i // cols + 1,
            col=i % cols + 1,
        )
    fig.update_xaxes(title_text="head")
    fig.update_yaxes(title_text="layer", autorange="reversed")
    fig.update_layout(title=f"Head scores (min-max scaled) {title}", height=300 * rows)
    return fig


def roc_figure(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]], title: str = "", labels: Labels = NO_LABELS
) -> go.Figure:
    """ROC curves, one per method (``{method: (fpr, tpr)}``)."""
    fig = go.Figure()
    for k, (fpr, tpr) in curves.items():
        fig.add_trace(
            go.Scatter(
                x=fpr, y=tpr, mode="lines+markers", name=method_label(k, labels), line_shape="hv"
            )
        )
    fig.add_trace(
        go.Scatter(
            x=[0, 1], y=[0, 1], mode="lines", name="chance", line=dict(dash="dot", color="grey")
        )
    )
    fig.update_layout(
        title=f"ROC (seed-mean scores) {title}",
        xaxis_title="false positive rate",
        yaxis_title="true positive rate",
    )
    return fig


def auc_summary(
    auc_by_threshold: Mapping[str, Sequence[float]],
    fractions: Sequence[float],
    labels: Labels = NO_LABELS,
) -> go.Figure:
    """Mean ROC AUC per method, one bar group per ground-truth threshold."""
    fig = go.Figure()
    for j, f in enumerate(fractions):
        fig.add_trace(
            go.Bar(
                x=[method_label(k, labels) for k in auc_by_threshold],
                y=[v[j] for v in auc_by_threshold.values()],
                name=f"top {f:.0%} heads",
            )
        )
    fig.add_hline(y=0.5, line_dash="dot", line_color="grey")
    fig.add_hline(y=0.8, line_dash="dash", line_color="red", annotation_text="paper claim 0.8")
    fig.update_layout(
        barmode="group",
        title="ROC AUC against the patching ground truth",
        yaxis_title="ROC AUC",
        yaxis_range=[0, 1],
    )
    return fig


def auc_vs_prompts(
    n_prompts: Sequence[int], aucs: Mapping[str, Sequence[float]], labels: Labels = NO_LABELS
) -> go.Figure:
    """AUC of the SAE scorers against the number of positive prompts the SAE is trained on."""
    fig = go.Figure()
    for k, v in aucs.items():
        fig.add_trace(
            go.Scatter(
                x=list(n_prompts), y=list(v), mode="lines+markers", name=method_label(k, labels)
            )
        )
    fig.add_hline(y=0.5, line_dash="dot", line_color="grey")
    fig.update_layout(
        title="AUC vs number of prompts the SAE is trained on (drawn from positives and negatives)",
        xaxis_title="SAE training prompts",
        yaxis_title="ROC AUC",
        yaxis_range=[0, 1],
    )
    return fig


def null_control(
    real: Mapping[str, float], null: Mapping[str, float], labels: Labels = NO_LABELS
) -> go.Figure:
    """AUC with the true labels beside AUC with labels flipped at random within pairs."""
    keys = list(real)
    fig = go.Figure(
        [
            go.Bar(
                x=[method_label(k, labels) for k in keys],
                y=[real[k] for k in keys],
                name="true labels",
            ),
            go.Bar(
                x=[method_label(k, labels) for k in keys],
                y=[null[k] for k in keys],
                name="shuffled labels (null)",
            ),
        ]
    )
    fig.add_hrect(y0=0.35, y1=0.65, fillcolor="grey", opacity=0.15, line_width=0)
    fig.update_layout(
        barmode="group",
        title="Null control: shuffled positive/negative labels",
        yaxis_title="ROC AUC",
        yaxis_range=[0, 1],
    )
    return fig


def planted_control(aucs: Mapping[str, float], labels: Labels = NO_LABELS) -> go.Figure:
    """ROC AUC of each scorer against heads planted with a known label-dependent shift."""
    fig = go.Figure(go.Bar(x=[method_label(k, labels) for k in aucs], y=list(aucs.values())))
    fig.add_hline(y=0.5, line_dash="dot", line_color="grey")
    fig.update_layout(
        title="Planted positive control: the real heads' label information erased, a shift planted "
        "in some heads' positives",
        yaxis_title="ROC AUC of the planted heads",
        yaxis_range=[0, 1],
    )
    return fig


def runtime_bars(seconds: Mapping[str, float], labels: Labels = NO_LABELS) -> go.Figure:
    """Mean wall time per method (SAE methods include features + SAE training)."""
    fig = go.Figure(go.Bar(x=[method_label(k, labels) for k in seconds], y=list(seconds.values())))
    fig.update_layout(title="Wall time per run (s)", yaxis_title="seconds", yaxis_type="log")
    return fig


def run_figures(
    config, metrics: Mapping, cells: Mapping, shown: Sequence[str], labels: Labels
) -> dict[str, go.Figure]:
    """The analysis's figures, for its first model: per-task heatmaps of the ``shown`` methods'
    seed-mean scores beside the ground-truth effects, the ROC curves on the first task, AUC by
    circuit size and against SAE training prompts, the null and planted controls, runtimes.
    ``config`` is the analysis's Config; ``cells`` its per-(model, task) cells (``shape``,
    ``truth.effect``, ``mean_scores``, ``roc``); ``labels`` the scorers' labels."""
    first, task0 = config.models[0], config.tasks[0]
    L, H = cells[(first, task0)].shape
    mid = len(config.gt_fractions) // 2

    def heatmaps(task: str) -> go.Figure:
        c = cells[(first, task)]
        return head_heatmaps(
            {meth: c.mean_scores[meth].reshape(L, H) for meth in shown},
            np.abs(c.truth.effect).reshape(L, H),
            f"{first} / {task}",
            labels,
        )

    sweep = metrics["auc_vs_prompts"]
    figs = {
        "auc_summary": auc_summary(metrics["auc_by_threshold"], config.gt_fractions, labels),
        "heatmaps": heatmaps(task0),
        "roc": roc_figure(
            {k: cells[(first, task0)].roc[k] for k in shown},
            f"{first} / {task0}, top {config.gt_fractions[mid]:.0%} of heads",
            labels,
        ),
        "auc_vs_prompts": auc_vs_prompts(
            config.prompt_sweep,
            {k: [sweep[str(n)][k] for n in config.prompt_sweep] for k in config.sweep_methods},
            labels,
        ),
        "null_control": null_control(metrics["auc_mean"], metrics["null_auc"], labels),
        "planted_control": planted_control(metrics["planted_auc"], labels),
        "runtime": runtime_bars(metrics["seconds_mean"], labels),
    }
    for task in config.tasks[1:]:
        figs[f"heatmaps_{task}"] = heatmaps(task)
    return figs
