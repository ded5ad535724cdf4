"""A run's metrics (means over models, tasks, seeds and circuits), criteria and per-head arrays,
from the stacked :class:`~interp.analyses.sae_circuits.cells.Grids` and the cells."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np

from interp.analyses.sae_circuits.cells import Cell, Grids
from interp.analyses.sae_circuits.config import Config
from interp.results import Result

Cells = dict[tuple[str, str], Cell]


def _mean(a: np.ndarray) -> float:
    return float(np.nanmean(a)) if np.isfinite(a).any() else float("nan")


def method_metrics(config: Config, g: Grids) -> dict:
    """Per method: AUC (mean, by circuit, by model and task, its SD over seeds), Spearman,
    precision / recall at the best F1, seconds, null-control and planted-control AUC."""
    methods, n_thr = config.methods, len(config.gt_fractions)

    def per(a: np.ndarray) -> dict[str, float]:
        return {meth: _mean(a[..., k]) for k, meth in enumerate(methods)}

    return {
        "auc_mean": {meth: _mean(g.auc[..., k, :]) for k, meth in enumerate(methods)},
        "auc_by_threshold": {
            meth: [_mean(g.auc[..., k, j]) for j in range(n_thr)] for k, meth in enumerate(methods)
        },
        "auc_by_model_task": {
            f"{mod}/{task}": {meth: _mean(g.auc[mi, ti, :, k, :]) for k, meth in enumerate(methods)}
            for mi, mod in enumerate(config.models)
            for ti, task in enumerate(config.tasks)
        },
        "auc_sd_over_seeds": {
            meth: _mean(np.nanstd(g.auc[..., k, :], axis=2)) for k, meth in enumerate(methods)
        },
        "spearman_mean": per(g.spearman),
        "precision_at_best_f1": per(g.precision),
        "recall_at_best_f1": per(g.recall),
        "seconds_mean": per(g.seconds),
        "null_auc": {meth: _mean(g.null_auc[..., k, :]) for k, meth in enumerate(methods)},
        "planted_auc": {
            meth: _mean(g.planted_auc[..., k])
            for k, meth in enumerate(methods)
            if not np.isnan(g.planted_auc[..., k]).all()
        },
    }


def edge_metrics(config: Config, g: Grids) -> dict:
    """Edge-level AUC (against the head -> head edge circuits) of the methods with edge scores:
    mean, under the null control, by model and task, by edge circuit."""
    has = [k for k in range(len(config.methods)) if np.isfinite(g.edge_auc[..., k, :]).any()]
    methods = [config.methods[k] for k in has]
    return {
        "edge_auc_mean": {
            m: _mean(g.edge_auc[..., k, :]) for k, m in zip(has, methods, strict=True)
        },
        "edge_null_auc": {
            m: _mean(g.edge_null_auc[..., k, :]) for k, m in zip(has, methods, strict=True)
        },
        "edge_auc_by_threshold": {
            m: [_mean(g.edge_auc[..., k, j]) for j in range(g.edge_auc.shape[-1])]
            for k, m in zip(has, methods, strict=True)
        },
        "edge_auc_by_model_task": {
            f"{mod}/{task}": {
                m: _mean(g.edge_auc[mi, ti, :, k, :]) for k, m in zip(has, methods, strict=True)
            }
            for mi, mod in enumerate(config.models)
            for ti, task in enumerate(config.tasks)
        },
    }


def sae_and_sweep_metrics(config: Config, g: Grids) -> dict:
    """SAE fit per feature mode, and the sweeps' AUC per value and sweep method."""

    def per_mode(a: np.ndarray) -> dict[str, float]:
        return {mode: _mean(a[..., f]) for f, mode in enumerate(config.features)}

    def sweep(a: np.ndarray, values: list[int]) -> dict:
        return {
            str(n): {meth: _mean(a[:, :, i, :, j]) for j, meth in enumerate(config.sweep_methods)}
            for i, n in enumerate(values)
        }

    return {
        "sae_fvu_mean": per_mode(g.sae_fvu),
        "sae_fvu_heldout_mean": per_mode(g.sae_fvu_heldout),
        "sae_fvu_heldout_max": float(np.nanmax(g.sae_fvu_heldout)),
        "sae_l0_mean": per_mode(g.sae_l0),
        "sae_dead_frac_mean": per_mode(g.sae_dead_frac),
        "auc_vs_prompts": sweep(g.auc_vs_prompts, config.prompt_sweep),
        "auc_vs_d_sae": sweep(g.auc_vs_d_sae, config.d_sae_sweep),
    }


def cell_metrics(config: Config, cells: Cells) -> dict:
    """Per model: heads, SAE widths, circuit sizes, the attribution check; per cell: the task's
    metrics and the ground truth's wall time."""
    first = {mod: c for (mod, t), c in cells.items() if t == config.tasks[0]}
    return {
        "n_heads_total": int(sum(np.prod(c.shape) for c in first.values())),
        "attribution_check": [asdict(c.check) for c in cells.values() if c.check is not None],
        "tasks_info": {f"{name}/{task}": c.truth.info() for (name, task), c in cells.items()},
        "ground_truth_seconds": {
            f"{name}/{task}": {"node": c.truth.seconds, "edge": c.truth.edge_seconds}
            for (name, task), c in cells.items()
        },
        "d_sae": {
            mod: {f: config.sae_width(int(np.prod(c.shape)), f) for f in config.features}
            for mod, c in first.items()
        },
        "circuit_heads": {
            mod: [int(np.ceil(f * np.prod(c.shape))) for f in config.gt_fractions]
            for mod, c in first.items()
        },
    }


def summarise(config: Config, grids: Grids, cells: Cells) -> dict:
    """``metrics``: means over models, tasks, seeds (and circuits) per method, the edge-level
    AUC, SAE stats by feature mode, the sweeps, the planted control, the attribution checks and
    the tasks' metrics."""
    from interp.methods.sae_scores import family

    out = {
        "models": config.models,
        "tasks": config.tasks,
        "methods": config.methods,
        "features": config.features,
        "gt_fractions": config.gt_fractions,
        "labels": {s: family.get(s).label for s in config.scorers},
        **method_metrics(config, grids),
        **sae_and_sweep_metrics(config, grids),
        **cell_metrics(config, cells),
    }
    if "act_patch" in config.methods:
        out["retest_ceiling_auc"] = out["auc_mean"]["act_patch"]
    if config.edge_truth != "none":
        out.update(gt_edge_fractions=config.gt_edge_fractions, **edge_metrics(config, grids))
    return out


def _null_control(result: Result, config: Config) -> None:
    from interp.methods.sae_scores import family

    mt, auc = result.metrics, result.metrics["auc_mean"]
    calibrated = [s for s in config.scorers if family.get(s).calibrated]
    judged = [m for m in config.methods if m.split(".")[0] in calibrated] + ["ties"]
    off = max([abs(mt["null_auc"][k] - 0.5) for k in judged] + [abs(auc["ties"] - 0.5)])
    result.add_criterion(
        "null_control_auc_near_half",
        off,
        "<=",
        0.15,
        kind="sanity",
        description="max |AUC - 0.5| with labels and pairs redrawn across prompt pairs and the "
        f"scores recomputed, over the calibrated scorers ({', '.join(calibrated)}, every "
        "feature mode) and the all-tied scorer (real labels too); means over models, tasks, "
        "seeds, thresholds. A scorer that reads a label-free head property correlated with "
        "the circuit keeps its AUC here",
    )


def _sanity(result: Result, config: Config, grids: Grids) -> None:
    mt, P = result.metrics, config.primary_features
    _null_control(result, config)
    result.add_criterion(
        "attribution_matches_activation_patching",
        min(c["r_small_alpha"] for c in mt["attribution_check"]),
        ">=",
        0.99,
        kind="sanity",
        description="Pearson r of attribution patching vs activation patching at "
        f"alpha={config.check_alpha} (/alpha), per prompt and head (min over models)",
    )
    sae_cols = [config.methods.index(f"paper_node.{f}") for f in config.features]
    # a wall time depends on the machine: a metric (the paper's cost argument), never a criterion
    mt["sae_pipeline_seconds_max"] = float(np.nanmax(grids.seconds[..., sae_cols]))
    result.add_criterion(
        "sae_fvu_heldout",
        mt["sae_fvu_heldout_max"],
        "<",
        0.3,
        kind="sanity",
        description="max fraction of variance unexplained of any SAE on the prompts it did not "
        "train on (every mode, model, task, seed)",
    )
    result.add_criterion(
        "planted_control_recovered",
        min(mt["planted_auc"][f"{k}.{P}"] for k in ("ours", "flip")),
        ">=",
        0.9,
        kind="sanity",
        description=f"min over our code scorers (ours, flip; {P} features) of the ROC AUC of the "
        "planted heads, label information of the real heads erased (mean over draws)",
    )


def add_criteria(result: Result, config: Config, grids: Grids) -> None:
    """The sanity checks of the implementation and the paper's claims at our scale; our
    scorers and the baselines as metrics beside them."""
    mt, auc = result.metrics, result.metrics["auc_mean"]
    P, Q = config.primary_features, config.paper_features
    _sanity(result, config, grids)
    circuit = ", ".join(f"{f:.1%}" for f in config.gt_fractions)
    where = (
        f"mean over {len(config.models)} models, {len(config.tasks)} tasks, {config.n_seeds} "
        f"seeds and {len(config.gt_fractions)} circuits (the top {circuit} of heads by exact "
        "activation patching from the paired counterfactual)"
    )
    for name, scorer, paper in (
        ("paper_node_auc", "node", "0.86-0.87"),
        ("paper_edge_auc", "edge", "0.84-0.90"),
    ):
        meth = f"paper_{scorer}.{Q}"
        result.add_criterion(
            name,
            auc[meth],
            ">=",
            0.8,
            kind="claim",
            description=f"the paper's {scorer} score ({Q} features) ROC AUC, {where}; paper: "
            f"{paper}. Under the null control (labels redrawn across pairs) it scores "
            f"{mt['null_auc'][meth]:.3f}",
        )
    # our scorers and the baselines: metrics beside the paper's claims, not claims of the paper
    pairs = {
        "paper_node_minus_attribution": (f"paper_node.{Q}", "attr_patch"),
        "ours_minus_paper_node": (f"ours.{P}", f"paper_node.{Q}"),
        "flip_minus_raw_diff": (f"flip.{P}", f"raw_diff.{P}"),
        "weighted_minus_attribution": (f"weighted.{P}", "attr_patch"),
    }
    mt["extra_comparisons"] = {
        k: auc[a] - auc[b] for k, (a, b) in pairs.items() if a in auc and b in auc
    }


def per_head_arrays(config: Config, cells: Cells) -> dict[str, np.ndarray]:
    """Ground-truth effects and seed-mean scores ``[heads]`` per model (by index: names may be
    paths) and task: ``gt_effect__m{i}__{task}``, ``score__{method}__m{i}__{task}``, and with
    edge truth ``gt_edge_effect__m{i}__{task}`` ``[heads, heads]``."""
    out = {}
    for (mod, task), c in cells.items():
        key = f"m{config.models.index(mod)}__{task}"
        out[f"gt_effect__{key}"] = c.truth.effect
        if c.truth.edge_effect is not None:
            out[f"gt_edge_effect__{key}"] = c.truth.edge_effect
        for meth in config.methods:
            out[f"score__{meth}__{key}"] = c.mean_scores[meth]
    return out
