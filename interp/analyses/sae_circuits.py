"""Circuit discovery with discrete SAE codes vs patching baselines (O'Neill & Bui 2024).

For each model and task (paired prompts from :mod:`interp.data.sae_circuits`):

- ground truth: patch each head's ``hook_z`` from the paired counterfactual on many held-out
  prompts; the per-head effect is the fraction of the clean-minus-corrupt metric gap it
  carries (kept per head, and thresholded at several top fractions for ROC AUC);
- methods, each on the same ``n_prompts`` positive prompts and their counterfactuals, over
  ``n_seeds`` draws: the paper's node and edge scores from one SAE shared by all heads,
  our code-shift scorer (permutation-tested chi-squared of code vs label), activation
  patching, attribution patching, random scores; plus the null control (labels flipped
  within pairs at random);
- metrics: ROC AUC per threshold, Spearman with |effect|, precision/recall at the best
  threshold, wall time per method; AUC vs number of SAE training prompts.

Sanity criteria check the implementation (null near 0.5, attribution = activation patching
to first order, SAE fast and faithful); claims are the paper's numbers at our scale.

:func:`run` is a list of steps that each return data: :func:`score_all` (per model and task,
:func:`model_task`: :func:`task_truth`, :func:`attribution_check`, :func:`seed_scores`,
:func:`prompt_sweep`), :func:`summarise` (metrics), :func:`add_criteria`,
:func:`per_head_arrays` and :func:`figures`.
"""

from __future__ import annotations

import logging
import time
import zlib
from typing import Annotated, Literal

import annotated_types as at
import numpy as np
import torch
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from interp.analyses import register
from interp.fields import MAX_COUNT, Count, Device, ModelName, Seed
from interp.results import Result

log = logging.getLogger(__name__)

METHODS = ("paper_node", "paper_edge", "ours", "act_patch", "attr_patch", "random")
NULLS = ("paper_node", "ours")


def _check_task(name: str) -> str:
    from interp.data.sae_circuits import TASKS
    from interp.utils import unknown_name_error

    if name not in TASKS:
        raise ValueError(unknown_name_error("task", name, sorted(TASKS)).args[0])
    return name


def _check_sae_kind(kind: str) -> str:
    from interp.sae.model import KINDS
    from interp.utils import unknown_name_error

    if kind not in KINDS:
        raise ValueError(unknown_name_error("SAE kind", kind, sorted(KINDS)).args[0])
    return kind


Task = Annotated[str, AfterValidator(_check_task)]  # a key of interp.data.sae_circuits.TASKS
SAEKind = Annotated[str, AfterValidator(_check_sae_kind)]  # a registered SAE kind (interp.sae.KINDS)
# list items: bounds as annotated_types (a pydantic Field inside a list item hides them from inspection)
ItemCount = Annotated[int, at.Ge(1), at.Le(MAX_COUNT)]
ItemFraction = Annotated[float, at.Ge(0.0), at.Le(1.0)]


class Config(BaseModel):
    """Settings of the SAE circuit-discovery comparison."""

    model_config = ConfigDict(extra="forbid")

    models: list[ModelName] = Field(default_factory=lambda: ["zoo:circuit-lm-s0", "zoo:circuit-lm-s1",
                                                             "zoo:circuit-lm-s2"], min_length=1)
    tasks: list[Task] = Field(default_factory=lambda: ["induction", "ioi"], min_length=1)
    n_prompts: Count = 50  # positive prompts (each with its counterfactual) every method scores on
    n_sae_prompts: Count = 10  # of those 2 * n_prompts, how many (drawn at random) train the SAE
    prompt_sweep: list[ItemCount] = Field(default_factory=lambda: [5, 10, 20])  # values of n_sae_prompts
    sweep_seeds: Count = 3
    n_seeds: Count = 10
    n_gt_prompts: Count = 100
    gt_fractions: list[ItemFraction] = Field(default_factory=lambda: [0.25, 0.375, 0.5], min_length=1)
    d_sae: Count = 200
    sae_kind: SAEKind = "relu"
    sparsity: Annotated[float, Field(ge=0.0, le=100.0)] = 0.02
    sae_lr: Annotated[float, Field(gt=0.0, le=1.0)] = 1e-3
    sae_steps: Count = 500
    # The paper's loss is F.mse_loss on raw head outputs (sae_mse="mean", sae_normalise=False).
    # Our heads write vectors of norm ~1 in d_model=64, where that loss lets L1 win (FVU 0.35-0.5,
    # half the latents dead); scaling inputs to E|x|^2 = 1 and summing the error keeps lambda's
    # meaning scale-free and the SAE faithful (FVU ~0.01-0.03).
    sae_mse: Literal["mean", "sum"] = "sum"
    sae_normalise: bool = True
    n_perm: Count = 200
    statistic: Literal["chi2", "mi"] = "chi2"
    check_alpha: Annotated[float, Field(gt=0.0, le=1.0)] = 0.01  # activation patching here must match attribution
    batch_size: Count = 64
    device: Device = "cpu"
    seed: Seed = 0

    @model_validator(mode="after")
    def _sae_prompts_exist(self) -> "Config":
        # the SAE trains on prompts drawn from the 2 * n_prompts scored ones; more would be cut silently
        too_many = [n for n in [self.n_sae_prompts, *self.prompt_sweep] if n > 2 * self.n_prompts]
        if too_many:
            raise ValueError(f"n_sae_prompts / prompt_sweep {too_many} exceed the 2 * n_prompts = "
                             f"{2 * self.n_prompts} prompts the SAE can train on")
        return self


def _seed(*parts) -> int:
    return zlib.crc32(repr(parts).encode()) & 0x7FFFFFFF


def ground_truth(m, ps, batch_size: int) -> dict[str, np.ndarray]:
    """Per-head fraction of the clean->corrupt metric gap carried by the head (``[layers*heads]``),
    plus the task's clean/corrupt metric and clean accuracy."""
    from interp.methods.patching import activation_patching
    from interp.tracing.trace import trace

    metric = ps.metric_fn()
    idx = torch.arange(len(ps))
    with torch.no_grad():
        out_c, _ = trace(m, ps.clean)
        out_k, _ = trace(m, ps.corrupt)
    mc, mk = metric(out_c, idx).float(), metric(out_k, idx).float()
    gap = float((mk - mc).mean())
    eff = activation_patching(m, ps.clean, metric, corrupt=ps.corrupt, batch_size=batch_size)  # [n, L, H]
    frac = (eff.mean(0) / gap).flatten().numpy() if abs(gap) > 1e-9 else np.zeros(eff[0].numel())
    acc = float((out_c[idx, ps.answer_pos].argmax(-1) == ps.answer).float().mean()) if ps.metric != "prob_diff" else float("nan")
    return {"effect": frac, "clean_metric": float(mc.mean()), "corrupt_metric": float(mk.mean()), "accuracy": acc}


def score_methods(m, ps, cfg: Config, seed: int, layer_of: np.ndarray, n_sae: int | None = None) -> dict:
    """Every method's head scores on the paired prompts ``ps``, with wall times and SAE stats.
    The SAE trains on ``n_sae`` of the ``2 * len(ps)`` prompts, drawn at random (the paper's
    num_sae_examples); codes, and so scores, cover all prompts."""
    from interp.methods.patching import activation_patching, attribution_patching, head_results
    from interp.methods.sae_scores import (
        Timer,
        code_shift_scores,
        paper_edge_scores,
        paper_node_scores,
        sae_codes,
        shuffled_labels,
    )

    n = len(ps)
    metric = ps.metric_fn()
    labels = np.r_[np.ones(n, bool), np.zeros(n, bool)]
    pairs = np.r_[np.arange(n), np.arange(n)]
    scores, times = {}, {}
    with Timer() as t_feat:
        feats = torch.cat([head_results(m, ps.clean, cfg.batch_size), head_results(m, ps.corrupt, cfg.batch_size)])
    rows = np.random.default_rng(seed).permutation(2 * n)[: n_sae or cfg.n_sae_prompts]
    with Timer() as t_sae:
        codes, rep = sae_codes(feats, {"d_sae": cfg.d_sae, "kind": cfg.sae_kind, "init_seed": seed},
                               {"steps": cfg.sae_steps, "lr": cfg.sae_lr, "sparsity": cfg.sparsity, "seed": seed,
                                "mse": cfg.sae_mse, "normalise": cfg.sae_normalise}, train_rows=rows)
    with Timer() as t:
        scores["paper_node"] = paper_node_scores(codes, labels)
    times["paper_node"] = t_feat.seconds + t_sae.seconds + t.seconds
    with Timer() as t:
        per_layer = int(np.sum(layer_of == layer_of[0]))
        scores["paper_edge"] = paper_edge_scores(codes, labels, top_k=per_layer ** 2 // 2)[0]
    times["paper_edge"] = t_feat.seconds + t_sae.seconds + t.seconds
    with Timer() as t:
        scores["ours"] = code_shift_scores(codes, labels, pairs, cfg.n_perm, cfg.statistic, seed)["z"]
    times["ours"] = t_feat.seconds + t_sae.seconds + t.seconds
    with Timer() as t:
        scores["act_patch"] = activation_patching(m, ps.clean, metric, corrupt=ps.corrupt,
                                                  batch_size=cfg.batch_size).mean(0).abs().flatten().numpy()
    times["act_patch"] = t.seconds
    with Timer() as t:
        scores["attr_patch"] = attribution_patching(m, ps.clean, metric, corrupt=ps.corrupt,
                                                    batch_size=cfg.batch_size).mean(0).abs().flatten().numpy()
    times["attr_patch"] = t.seconds
    scores["random"] = np.random.default_rng(seed).random(len(layer_of))
    times["random"] = 0.0
    null_labels = shuffled_labels(labels, pairs, seed + 1)
    null = {"paper_node": paper_node_scores(codes, null_labels),
            "ours": code_shift_scores(codes, null_labels, pairs, cfg.n_perm, cfg.statistic, seed + 2)["z"]}
    n_codes = np.array([len(set(codes[:, h])) for h in range(codes.shape[1])])
    return {"scores": scores, "null": null, "times": times, "fvu": rep["fvu"], "l0": rep["l0"],
            "dead_frac": rep["dead_frac"], "n_codes": n_codes}


def attribution_check(m, ps, alpha: float, batch_size: int) -> dict[str, float]:
    """Pearson r between activation patching at small ``alpha`` (divided by alpha) and
    attribution patching: first order, they must agree. Also r at alpha = 1 (how linear the
    model is on the real counterfactuals)."""
    from interp.methods.patching import activation_patching, attribution_patching

    metric = ps.metric_fn()
    attr = attribution_patching(m, ps.clean, metric, corrupt=ps.corrupt, batch_size=batch_size).flatten()
    small = activation_patching(m, ps.clean, metric, corrupt=ps.corrupt, alpha=alpha, batch_size=batch_size).flatten() / alpha
    full = activation_patching(m, ps.clean, metric, corrupt=ps.corrupt, batch_size=batch_size).flatten()
    r = lambda a, b: float(np.corrcoef(a.numpy(), b.numpy())[0, 1])
    return {"r_small_alpha": r(small, attr), "r_full": r(full, attr),
            "max_rel_err_small_alpha": float((small - attr).abs().max() / attr.abs().max().clamp_min(1e-12))}


# ------------------------------------------------------------------ one model and task
GRIDS = ("auc", "null_auc", "spearman", "precision", "recall", "seconds", "sae_fvu", "sae_l0", "sae_dead_frac",
         "auc_vs_prompts")  # per-(model, task) arrays, stacked to [models, tasks, ...] in the result


def task_truth(m, name: str, task: str, config: Config) -> dict:
    """Ground truth on ``n_gt_prompts`` held-out prompts: the per-head ``effect`` ``[heads]``,
    the task's metrics, and one circuit per top fraction (``truths``, boolean ``[heads]`` each)."""
    from interp.data.sae_circuits import make_task
    from interp.methods.sae_scores import top_fraction

    gt_ps = make_task(task, m.tokenizer, config.n_gt_prompts, _seed(config.seed, name, task, "gt"))
    gt = ground_truth(m, gt_ps, config.batch_size)
    effect = np.abs(gt["effect"])
    log.info("%s %s: clean %.3f corrupt %.3f acc %.2f; top heads %s", name, task, gt["clean_metric"],
             gt["corrupt_metric"], gt["accuracy"], np.argsort(-effect)[:4].tolist())
    return {**gt, "truths": [top_fraction(effect, f) for f in config.gt_fractions]}


def seed_scores(m, name: str, task: str, config: Config, gt: dict, layer_of: np.ndarray) -> dict:
    """Every method over ``n_seeds`` prompt draws: per seed AUC per threshold ``[seeds, methods,
    thresholds]`` (and of the null control ``[seeds, nulls, thresholds]``), Spearman, precision,
    recall, seconds ``[seeds, methods]``, SAE stats ``[seeds]``; the seed-mean scores per method
    ``[heads]`` and their ROC curves at the middle threshold."""
    from interp.data.sae_circuits import make_task
    from interp.methods.sae_scores import best_f1, roc_auc, roc_curve, spearman

    S, K, truths = config.n_seeds, len(METHODS), gt["truths"]
    effect, mid = np.abs(gt["effect"]), len(truths) // 2
    out = {"auc": np.full((S, K, len(truths)), np.nan), "null_auc": np.full((S, len(NULLS), len(truths)), np.nan),
           **{k: np.full((S, K), np.nan) for k in ("spearman", "precision", "recall", "seconds")},
           **{k: np.full(S, np.nan) for k in ("sae_fvu", "sae_l0", "sae_dead_frac")}}
    mean_scores = {k: np.zeros(len(layer_of)) for k in METHODS}
    for s in range(S):
        ps = make_task(task, m.tokenizer, config.n_prompts, _seed(config.seed, name, task, s))
        res = score_methods(m, ps, config, _seed(config.seed, name, task, s, "m"), layer_of)
        out["sae_fvu"][s], out["sae_l0"][s], out["sae_dead_frac"][s] = res["fvu"], res["l0"], res["dead_frac"]
        for k, meth in enumerate(METHODS):
            sc = res["scores"][meth]
            mean_scores[meth] += sc / S
            out["seconds"][s, k] = res["times"][meth]
            out["auc"][s, k] = [roc_auc(sc, tr) for tr in truths]
            out["spearman"][s, k] = spearman(sc, effect)
            pr = best_f1(sc, truths[mid])
            out["precision"][s, k], out["recall"][s, k] = pr["precision"], pr["recall"]
        for k, meth in enumerate(NULLS):
            out["null_auc"][s, k] = [roc_auc(res["null"][meth], tr) for tr in truths]
    out["mean_scores"] = mean_scores
    out["roc"] = {meth: roc_curve(mean_scores[meth], truths[mid]) for meth in METHODS}
    return out


def prompt_sweep(m, name: str, task: str, config: Config, truths: list, layer_of: np.ndarray) -> np.ndarray:
    """Threshold-mean AUC of the paper's node score and ours when the SAE trains on each
    ``prompt_sweep`` number of prompts: ``[sweep, sweep_seeds, 2]`` (paper_node, ours)."""
    from interp.data.sae_circuits import make_task
    from interp.methods.sae_scores import roc_auc

    sweep = np.full((len(config.prompt_sweep), config.sweep_seeds, 2), np.nan)
    for pi, n_p in enumerate(config.prompt_sweep):
        for s in range(config.sweep_seeds):
            ps = make_task(task, m.tokenizer, config.n_prompts, _seed(config.seed, name, task, s))
            res = score_methods(m, ps, config, _seed(config.seed, name, task, s, "sweep", n_p), layer_of, n_p)
            sweep[pi, s] = [np.mean([roc_auc(res["scores"][k], tr) for tr in truths]) for k in ("paper_node", "ours")]
    return sweep


def model_task(m, name: str, task: str, config: Config, check: bool) -> dict:
    """Ground truth, every method over seeds, the SAE-prompt sweep (and, with ``check``, the
    attribution check) on one model and task; the :data:`GRIDS` arrays of this cell among them."""
    layer_of = np.repeat(np.arange(m.n_layers), m.cfg.n_heads)
    gt = task_truth(m, name, task, config)
    out = {"gt": gt}
    if check:
        from interp.data.sae_circuits import make_task

        chk_ps = make_task(task, m.tokenizer, min(config.n_prompts, 16), _seed(config.seed, name, task, "chk"))
        out["check"] = attribution_check(m, chk_ps, config.check_alpha, config.batch_size)
    out.update(seed_scores(m, name, task, config, gt, layer_of))
    out["auc_vs_prompts"] = prompt_sweep(m, name, task, config, gt["truths"], layer_of)
    log.info("%s %s: mean AUC %s", name, task, {meth: round(float(np.nanmean(out["auc"][:, k])), 3)
                                                 for k, meth in enumerate(METHODS)})
    return out


def score_all(config: Config) -> tuple[dict, dict]:
    """Every model and task: ``(grids, cells)``, the :data:`GRIDS` arrays stacked to ``[models,
    tasks, ...]`` and the per-cell results by ``(model, task)``. Models load one at a time."""
    import interp

    cells: dict[tuple[str, str], dict] = {}
    for name in config.models:
        m = interp.load_model(name, device=config.device)
        log.info("model %s: %d layers x %d heads", m.model_id, m.n_layers, m.cfg.n_heads)
        for ti, task in enumerate(config.tasks):
            cell = model_task(m, name, task, config, check=ti == 0)
            cells[(name, task)] = {**cell, "shape": (m.n_layers, m.cfg.n_heads)}
    grids = {k: np.stack([np.stack([cells[(name, task)][k] for task in config.tasks]) for name in config.models])
             for k in GRIDS}
    return grids, cells


# ------------------------------------------------------------------ summary
def summarise(config: Config, grids: dict, cells: dict) -> dict:
    """``metrics``: means over models, tasks, seeds (and thresholds) per method, SAE stats,
    the attribution checks, the tasks' metrics and AUC vs SAE training prompts."""
    auc, n_thr, sweep = grids["auc"], len(config.gt_fractions), grids["auc_vs_prompts"]
    per_method = lambda key: {meth: float(np.nanmean(grids[key][..., k])) for k, meth in enumerate(METHODS)}
    return {
        "models": config.models, "tasks": config.tasks, "methods": list(METHODS),
        "gt_fractions": config.gt_fractions,
        "auc_mean": {meth: float(np.nanmean(auc[..., k, :])) for k, meth in enumerate(METHODS)},
        "auc_by_threshold": {meth: [float(np.nanmean(auc[..., k, j])) for j in range(n_thr)]
                             for k, meth in enumerate(METHODS)},
        "auc_by_model_task": {f"{mod}/{task}": {meth: float(np.nanmean(auc[mi, ti, :, k, :]))
                                                for k, meth in enumerate(METHODS)}
                              for mi, mod in enumerate(config.models) for ti, task in enumerate(config.tasks)},
        "auc_sd_over_seeds": {meth: float(np.nanmean(np.nanstd(auc[..., k, :], axis=2)))
                              for k, meth in enumerate(METHODS)},
        "spearman_mean": per_method("spearman"),
        "precision_at_best_f1": per_method("precision"),
        "recall_at_best_f1": per_method("recall"),
        "seconds_mean": per_method("seconds"),
        "null_auc": {meth: float(np.nanmean(grids["null_auc"][..., k, :])) for k, meth in enumerate(NULLS)},
        "sae_fvu_mean": float(np.nanmean(grids["sae_fvu"])), "sae_fvu_max": float(np.nanmax(grids["sae_fvu"])),
        "sae_l0_mean": float(np.nanmean(grids["sae_l0"])),
        "sae_dead_frac_mean": float(np.nanmean(grids["sae_dead_frac"])),
        "attribution_check": [c["check"] for c in cells.values() if "check" in c],
        "tasks_info": {f"{name}/{task}": {k: v for k, v in c["gt"].items() if k not in ("effect", "truths")}
                       for (name, task), c in cells.items()},
        "auc_vs_prompts": {str(n): {"paper_node": float(np.nanmean(sweep[:, :, i, :, 0])),
                                    "ours": float(np.nanmean(sweep[:, :, i, :, 1]))}
                           for i, n in enumerate(config.prompt_sweep)},
    }


def add_criteria(result: Result, config: Config, grids: dict) -> None:
    """The sanity checks of the implementation and the paper's claims at our scale."""
    mt, mean_auc, null_mean = result.metrics, result.metrics["auc_mean"], result.metrics["null_auc"]
    M, T, S, n_thr = len(config.models), len(config.tasks), config.n_seeds, len(config.gt_fractions)
    result.add_criterion("null_control_auc_near_half", abs(null_mean["ours"] - 0.5), "<=", 0.15, kind="sanity",
                         description="|AUC - 0.5| of our scorer with positive/negative labels flipped at random "
                                     "within pairs (mean over models, tasks, seeds, thresholds)")
    result.add_criterion("attribution_matches_activation_patching",
                         min(c["r_small_alpha"] for c in mt["attribution_check"]), ">=", 0.99,
                         kind="sanity", description="Pearson r of attribution patching vs activation patching at "
                         f"alpha={config.check_alpha} (/alpha), per prompt and head (min over models)")
    result.add_criterion("sae_pipeline_seconds", float(np.nanmax(grids["seconds"][..., METHODS.index("paper_node")])),
                         "<", 60.0, kind="sanity",
                         description="max wall time of one SAE pipeline: head features + SAE training + scores")
    result.add_criterion("sae_fvu", float(np.nanmax(grids["sae_fvu"])), "<", 0.3, kind="sanity",
                         description="max fraction of variance unexplained of the SAE on its training vectors")
    result.add_criterion("paper_node_auc", mean_auc["paper_node"], ">=", 0.8, kind="claim",
                         description=f"paper node score ROC AUC (mean over {M} models, {T} tasks, {S} seeds, "
                                     f"{n_thr} thresholds); paper: 0.86-0.87")
    result.add_criterion("paper_node_vs_attribution", abs(mean_auc["paper_node"] - mean_auc["attr_patch"]), "<=", 0.05,
                         kind="claim", description="|AUC paper node score - AUC attribution patching|")
    result.add_criterion("ours_beats_paper_node", mean_auc["ours"] - mean_auc["paper_node"], ">=", 0.0, kind="claim",
                         description="AUC of our code-shift scorer minus AUC of the paper node score")
    result.add_criterion("paper_edge_auc", mean_auc["paper_edge"], ">=", 0.8, kind="claim",
                         description="paper edge-based head score ROC AUC; paper: 0.84-0.90")


def per_head_arrays(config: Config, cells: dict) -> dict[str, np.ndarray]:
    """Ground-truth effects and seed-mean scores ``[heads]`` per model (by index: names may be
    paths) and task: ``gt_effect__m{i}__{task}``, ``score__{method}__m{i}__{task}``."""
    out = {}
    for (mod, task), c in cells.items():
        key = f"m{config.models.index(mod)}__{task}"
        out[f"gt_effect__{key}"] = c["gt"]["effect"]
        for meth in METHODS:
            out[f"score__{meth}__{key}"] = c["mean_scores"][meth]
    return out


def figures(config: Config, metrics: dict, cells: dict) -> dict:
    """The figures, for the first model (heatmaps per task, ROC on the first task)."""
    from interp.plotting import sae_circuits as plots

    first, task0 = config.models[0], config.tasks[0]
    L, H = cells[(first, task0)]["shape"]
    mid = len(config.gt_fractions) // 2

    def heatmaps(task: str):
        c = cells[(first, task)]
        return plots.head_heatmaps({meth: c["mean_scores"][meth].reshape(L, H) for meth in METHODS},
                                   np.abs(c["gt"]["effect"]).reshape(L, H), f"{first} / {task}")

    sweep = metrics["auc_vs_prompts"]
    figs = {
        "auc_summary": plots.auc_summary(metrics["auc_by_threshold"], config.gt_fractions),
        "heatmaps": heatmaps(task0),
        "roc": plots.roc_figure(cells[(first, task0)]["roc"], f"{first} / {task0}, top "
                                f"{config.gt_fractions[mid]:.0%} of heads"),
        "auc_vs_prompts": plots.auc_vs_prompts(config.prompt_sweep, {k: [sweep[str(n)][k] for n in config.prompt_sweep]
                                                                    for k in ("paper_node", "ours")}),
        "null_control": plots.null_control({k: metrics["auc_mean"][k] for k in NULLS}, metrics["null_auc"]),
        "runtime": plots.runtime_bars(metrics["seconds_mean"]),
    }
    for task in config.tasks[1:]:
        figs[f"heatmaps_{task}"] = heatmaps(task)
    return figs


@register("sae_circuits", Config, title="Circuit discovery with discrete SAEs vs patching",
          paper="O'Neill & Bui 2024, Sparse Autoencoders Enable Scalable and Reliable Circuit Identification in Language Models (charlieoneill11/sae-circuits)",
          figure_order=("auc_summary", "heatmaps", "roc", "auc_vs_prompts", "null_control", "runtime"))
def run(config: Config) -> Result:
    """Paper's SAE node/edge scores, our code-shift scorer, activation/attribution patching vs ground truth."""
    from interp.utils import seed_everything

    seed_everything(config.seed)
    t_start = time.time()
    grids, cells = score_all(config)
    result = Result("sae_circuits")
    result.metrics.update({**summarise(config, grids, cells), "total_seconds": time.time() - t_start})
    add_criteria(result, config, grids)
    result.arrays.update({**grids, **per_head_arrays(config, cells)})
    result.figures.update(figures(config, result.metrics, cells))
    return result
