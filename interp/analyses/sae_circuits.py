"""Circuit discovery with discrete SAE codes vs patching baselines (O'Neill & Bui 2024).

Per model and task (paired prompts from :mod:`interp.data.sae_circuits`): the ground truth is a
sparse circuit, the top few heads by exact activation patching of ``hook_z`` from the paired
counterfactual on held-out prompts; the paper's node and edge scores (one SAE shared by all
heads, the paper's latents per head), our scorers and the patching baselines run on the same
``n_prompts`` pairs over ``n_seeds`` draws, each also under a null control (labels and pairs
redrawn across prompt pairs, scores recomputed); metrics are ROC AUC per circuit size,
Spearman with the effects, precision/recall, wall time, AUC vs SAE prompts and width.
Claims are the paper's two (node and edge AUC); our scorers are extra metrics.

:func:`run` is a list of steps that each return data: :func:`score_all` (per model and task,
:func:`model_task`: :func:`task_truth`, :func:`attribution_check`, :func:`seed_scores`,
:func:`prompt_sweep`), :func:`summarise`, :func:`add_criteria`, :func:`per_head_arrays`, and the
figures (:func:`interp.plotting.sae_circuits.run_figures`).
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

# Scorers run once per feature mode (method "<scorer>.<mode>"); raw_diff and the baselines use no SAE.
PER_FEATURE = ("paper_node", "paper_edge", "ours", "flip", "weighted", "raw_diff")
BASELINES = ("act_patch", "attr_patch", "random", "ties")
CALIBRATED = (
    "ours",
    "flip",
    "raw_diff",
)  # ranked in their own null: the null control must give them 0.5
NEEDS_MODEL = (
    "weighted",
    "act_patch",
    "attr_patch",
)  # not run on the planted control (no model behind it)


def method_names(features) -> list[str]:
    """Every method of a run: each per-feature scorer on each feature mode, then the baselines."""
    return [f"{s}.{f}" for f in features for s in PER_FEATURE] + list(BASELINES)


METHODS = tuple(method_names(("mean", "answer", "position")))  # the default run's methods


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
SAEKind = Annotated[
    str, AfterValidator(_check_sae_kind)
]  # a registered SAE kind (interp.sae.KINDS)
# list items: bounds as annotated_types (a pydantic Field inside a list item hides them from inspection)
ItemCount = Annotated[int, at.Ge(1), at.Le(MAX_COUNT)]
ItemFraction = Annotated[float, at.Ge(0.0), at.Le(1.0)]


FeatureMode = Literal["mean", "answer", "position"]  # interp.methods.sae_scores.FEATURES


class Config(BaseModel):
    """Settings of the SAE circuit-discovery comparison."""

    model_config = ConfigDict(extra="forbid")

    models: list[ModelName] = Field(
        default_factory=lambda: ["zoo:circuit-lm-s0", "zoo:circuit-lm-s1", "zoo:circuit-lm-s2"],
        min_length=1,
    )
    tasks: list[Task] = Field(default_factory=lambda: ["induction", "ioi"], min_length=1)
    # where a head's output is read (every SAE scorer runs on each): "mean" (the paper), "answer", "position"
    features: list[FeatureMode] = Field(
        default_factory=lambda: ["mean", "answer", "position"], min_length=1
    )
    primary_features: FeatureMode = "position"  # the features our scorers' claims are judged on
    n_prompts: Count = 50  # positive prompts (each with its counterfactual) every method scores on
    n_sae_prompts: Count = 10  # of those 2 * n_prompts, how many (drawn at random) train the SAE
    prompt_sweep: list[ItemCount] = Field(
        default_factory=lambda: [5, 10, 20]
    )  # values of n_sae_prompts
    sweep_seeds: Count = 3
    n_seeds: Count = 10
    planted_seeds: Count = (
        3  # prompt draws (of the n_seeds) that also run the planted positive control
    )
    planted_fraction: ItemFraction = 0.25  # of the heads, planted
    planted_strength: Annotated[float, Field(gt=0.0, le=100.0)] = (
        1.0  # planted shift / RMS head output
    )
    n_gt_prompts: Count = 100
    # the circuit: top fractions of heads by patching effect, sparse as the paper's (6-19%): 1-3 of 16 heads
    gt_fractions: list[ItemFraction] = Field(
        default_factory=lambda: [0.0625, 0.125, 0.1875], min_length=1
    )
    # SAE width; None: the paper's 200 latents / 144 heads times our heads (22 for 16). With 10 SAE
    # prompts that also matches its training vectors per latent (1,440 / 200 = 7.2; ours 160 / 22 = 7.3)
    d_sae: Count | None = None  # when set, every feature mode's width
    latents_per_head: Annotated[float, Field(gt=0.0, le=1000.0)] = 200 / 144
    # width for the modes the paper does not use (answer, position; ours): at 22 latents their
    # held-out FVU reached 0.42 and the planted control 0.84 (2026-12-07), so they keep 200
    d_sae_ours: Count = 200
    d_sae_sweep: list[ItemCount] = Field(
        default_factory=list
    )  # other widths, run on the sweep seeds
    sae_kind: SAEKind = "relu"
    sparsity: Annotated[float, Field(ge=0.0, le=100.0)] = 0.02
    sae_lr: Annotated[float, Field(gt=0.0, le=1.0)] = 1e-3
    sae_steps: Count = 500
    # dead-latent resampling every this many steps; 0 (never) as the paper (ours did at step 250 until 2026-12-07)
    sae_resample_every: Annotated[int, Field(ge=0, le=MAX_COUNT)] = 0
    # The paper's loss is F.mse_loss on raw head outputs (sae_mse="mean", sae_normalise=False).
    # Our heads write vectors of norm ~1 in d_model=64, where that loss lets L1 win (FVU 0.35-0.5,
    # half the latents dead); scaling inputs to E|x|^2 = 1 and summing the error keeps lambda's
    # meaning scale-free and the SAE faithful (FVU ~0.01-0.03).
    sae_mse: Literal["mean", "sum"] = "sum"
    sae_normalise: bool = True
    n_perm: Count = 200
    statistic: Literal["chi2", "mi"] = "chi2"
    check_alpha: Annotated[float, Field(gt=0.0, le=1.0)] = (
        0.01  # activation patching here must match attribution
    )
    batch_size: Count = 64
    device: Device = "cpu"
    seed: Seed = 0

    @model_validator(mode="after")
    def _consistent(self) -> Config:
        # the SAE trains on prompts drawn from the 2 * n_prompts scored ones; more would be cut silently
        too_many = [n for n in [self.n_sae_prompts, *self.prompt_sweep] if n > 2 * self.n_prompts]
        if too_many:
            raise ValueError(
                f"n_sae_prompts / prompt_sweep {too_many} exceed the 2 * n_prompts = "
                f"{2 * self.n_prompts} prompts the SAE can train on"
            )
        if self.primary_features not in self.features:
            raise ValueError(
                f"primary_features {self.primary_features!r} is not among features {self.features}"
            )
        if len(set(self.features)) != len(self.features):
            raise ValueError(f"features {self.features} repeat a mode")
        return self

    @property
    def paper_features(self) -> str:
        """The features the paper's claims are judged on: its mean over positions when run."""
        return "mean" if "mean" in self.features else self.primary_features

    @property
    def sweep_methods(self) -> list[str]:
        return [
            f"paper_node.{self.paper_features}",
            f"paper_edge.{self.paper_features}",
            f"ours.{self.primary_features}",
            f"flip.{self.primary_features}",
        ]

    def sae_width(self, n_heads: int, mode: str = "mean") -> int:
        """Latents of the SAE on ``mode`` features of a model of ``n_heads`` heads (all layers):
        ``d_sae`` if set; else for the paper's ``mean`` features its latents per head times
        ``n_heads``, for our modes ``d_sae_ours``."""
        if self.d_sae:
            return self.d_sae
        return (
            max(1, int(round(self.latents_per_head * n_heads)))
            if mode == "mean"
            else self.d_sae_ours
        )


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
    eff = activation_patching(
        m, ps.clean, metric, corrupt=ps.corrupt, batch_size=batch_size
    )  # [n, L, H]
    frac = (eff.mean(0) / gap).flatten().numpy() if abs(gap) > 1e-9 else np.zeros(eff[0].numel())
    acc = (
        float((out_c[idx, ps.answer_pos].argmax(-1) == ps.answer).float().mean())
        if ps.metric != "prob_diff"
        else float("nan")
    )
    return {
        "effect": frac,
        "clean_metric": float(mc.mean()),
        "corrupt_metric": float(mk.mean()),
        "accuracy": acc,
    }


def pair_data(m, ps, cfg: Config) -> dict:
    """What every method reads from the model on the paired prompts ``ps`` (clean rows first):
    head outputs ``[2N, pos, heads, d_model]``, the metric's gradient w.r.t. them on the clean
    prompts ``[N, pos, heads, d_model]``, per-prompt activation / attribution patching effects
    ``[N, heads]``, and the seconds each took."""
    from interp.methods.patching import activation_patching, attribution_patching, head_outputs
    from interp.methods.sae_scores import Timer, output_grads

    metric, bs = ps.metric_fn(), cfg.batch_size
    layer_of = torch.as_tensor(np.repeat(np.arange(m.n_layers), m.cfg.n_heads))
    with Timer() as t_out:
        outputs = torch.cat([head_outputs(m, ps.clean, bs), head_outputs(m, ps.corrupt, bs)])
    with Timer() as t_grad:
        grads = output_grads(m, m.prepare(ps.clean), metric, bs)[
            :, :, layer_of
        ]  # [N, pos, heads, d_model]
    with Timer() as t_act:
        act = (
            activation_patching(m, ps.clean, metric, corrupt=ps.corrupt, batch_size=bs)
            .flatten(1)
            .numpy()
        )
    with Timer() as t_attr:
        attr = (
            attribution_patching(m, ps.clean, metric, corrupt=ps.corrupt, batch_size=bs)
            .flatten(1)
            .numpy()
        )
    return {
        "outputs": outputs,
        "grads": grads,
        "act": act,
        "attr": attr,
        "answer_pos": ps.answer_pos,
        "layer_of": layer_of.numpy(),
        "seconds": {
            "outputs": t_out.seconds,
            "grads": t_grad.seconds,
            "act_patch": t_act.seconds,
            "attr_patch": t_attr.seconds,
        },
    }


def code_scores(
    codes: np.ndarray,
    feats: torch.Tensor,
    labels: np.ndarray,
    pairs: np.ndarray,
    cfg: Config,
    seed: int,
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """The scorers that read only codes (and raw_diff the features): ``({scorer: [heads]},
    {scorer: seconds})``. Multi-slot codes are pooled as rows for the row-wise scorers. The edge
    score keeps the paper's ``heads**2 // 2`` list entries over every head of the model."""
    from interp.methods.sae_scores import (
        Timer,
        code_flip_grams,
        code_shift_scores,
        feature_diff_grams,
        paired_shift_scores,
        paper_edge_scores,
        paper_node_scores,
        pool_positions,
    )

    rows, row_labels, row_pairs = pool_positions(codes, labels, pairs)
    fns = {
        "paper_node": lambda: paper_node_scores(rows, row_labels),
        "paper_edge": lambda: paper_edge_scores(rows, row_labels)[0],
        "ours": lambda: code_shift_scores(
            rows, row_labels, row_pairs, cfg.n_perm, cfg.statistic, seed
        )["score"],
        "flip": lambda: paired_shift_scores(
            code_flip_grams(codes, labels, pairs), cfg.n_perm, seed
        )["score"],
        "raw_diff": lambda: paired_shift_scores(
            feature_diff_grams(feats, labels, pairs), cfg.n_perm, seed
        )["score"],
    }
    scores, secs = {}, {}
    for k, fn in fns.items():
        with Timer() as t:
            scores[k] = fn()
        secs[k] = t.seconds
    return scores, secs


def _sae(
    feats: torch.Tensor,
    cfg: Config,
    seed: int,
    n_sae: int,
    mode: str,
    train_on: torch.Tensor | None = None,
):
    from interp.methods.sae_scores import sae_codes

    rows = np.random.default_rng(seed).permutation(len(feats))[:n_sae]
    return sae_codes(
        feats,
        {"d_sae": cfg.sae_width(feats.shape[-2], mode), "kind": cfg.sae_kind, "init_seed": seed},
        {
            "steps": cfg.sae_steps,
            "lr": cfg.sae_lr,
            "sparsity": cfg.sparsity,
            "seed": seed,
            "mse": cfg.sae_mse,
            "normalise": cfg.sae_normalise,
            "resample_every": cfg.sae_resample_every,
        },
        train_rows=rows,
        train_on=train_on,
    )


def feature_scores(
    data: dict,
    mode: str,
    cfg: Config,
    seed: int,
    n_sae: int,
    null_labels: np.ndarray,
    null_pairs: np.ndarray | None = None,
) -> dict:
    """Every per-feature scorer on the ``mode`` features (the SAE trained on ``n_sae`` of the
    ``2N`` prompts): scores and null-control scores ``{scorer: [heads]}``, seconds, SAE stats.

    The code scorers' null control is recomputed on ``null_labels`` and ``null_pairs`` (labels
    redrawn across pairs, :func:`~interp.methods.sae_scores.relabel_across_pairs`); ``weighted``
    needs the real pairs (its gradients are the positives'), so its null flips the sign of each
    pair's effect where ``null_labels`` says (within-pair flips, a magnitude score's null)."""
    from interp.methods.sae_scores import Timer, latent_attribution, select_positions

    n2 = len(data["outputs"])
    N, ap = n2 // 2, data["answer_pos"]
    labels, pairs = np.r_[np.ones(N, bool), np.zeros(N, bool)], np.r_[np.arange(N), np.arange(N)]
    feats = select_positions(data["outputs"], mode, torch.cat([ap, ap]))  # [2N, slots, heads, d]
    # the answer position's SAE learns from every position of its training prompts (one vector per
    # prompt and head would be fewer than its latents); it codes, and is judged on, the answer vectors
    train_on = data["outputs"] if mode == "answer" else None
    with Timer() as t_sae:
        codes, rep = _sae(feats, cfg, seed, n_sae, mode, train_on)
    scores, secs = code_scores(codes, feats, labels, pairs, cfg, seed)
    null, _ = code_scores(
        codes, feats, null_labels, pairs if null_pairs is None else null_pairs, cfg, seed + 2
    )
    with Timer() as t:
        per_pair = latent_attribution(
            rep["sae"],
            feats[:N],
            feats[N:],
            select_positions(data["grads"], mode, ap, reduce="sum"),
        )  # [N, heads]
        scores["weighted"] = np.abs(per_pair.mean(0))
    secs["weighted"] = t.seconds + data["seconds"]["grads"]
    # swapping a pair flips the sign of its first-order effect: the paired null of an effect score
    flips = np.random.default_rng(seed + 4).random(N) < 0.5
    null["weighted"] = np.abs((np.where(flips, -1.0, 1.0)[:, None] * per_pair).mean(0))
    base = data["seconds"]["outputs"] + t_sae.seconds
    secs = {
        k: v + (base if k != "raw_diff" else data["seconds"]["outputs"]) for k, v in secs.items()
    }
    return {
        "scores": scores,
        "null": null,
        "seconds": secs,
        "codes": codes,
        "feats": feats,
        **{k: rep[k] for k in ("fvu", "fvu_heldout", "l0", "dead_frac")},
    }


def score_methods(data: dict, cfg: Config, seed: int) -> dict:
    """Every method of :func:`method_names` on one prompt draw: ``scores``, ``null`` (labels
    flipped at random within pairs) and ``seconds`` by method, SAE stats by feature mode, and
    each mode's codes and features (for the planted control). The null: labels and pairs redrawn
    across prompt pairs for the code scorers; within-pair sign flips for the magnitude scorers
    (``weighted``, patching), which need the real pairs."""
    from interp.methods.sae_scores import relabel_across_pairs, shuffled_labels

    N, H = data["act"].shape
    labels, pairs = np.r_[np.ones(N, bool), np.zeros(N, bool)], np.r_[np.arange(N), np.arange(N)]
    null_labels, null_pairs = relabel_across_pairs(N, seed + 1)
    flip = np.where(shuffled_labels(labels, pairs, seed + 1)[:N], 1.0, -1.0)[:, None]
    rng = np.random.default_rng(seed)
    out = {"scores": {}, "null": {}, "seconds": {}, "sae": {}}
    for mode in cfg.features:
        res = feature_scores(data, mode, cfg, seed, cfg.n_sae_prompts, null_labels, null_pairs)
        for part in ("scores", "null", "seconds"):
            out[part].update({f"{k}.{mode}": v for k, v in res[part].items()})
        out["sae"][mode] = res
    for k in ("act_patch", "attr_patch"):
        per = data["act" if k == "act_patch" else "attr"]
        out["scores"][k], out["null"][k] = np.abs(per.mean(0)), np.abs((flip * per).mean(0))
        out["seconds"][k] = data["seconds"][k]
    out["scores"]["random"], out["null"]["random"] = rng.random(H), rng.random(H)
    out["scores"]["ties"], out["null"]["ties"] = (
        np.zeros(H),
        np.zeros(H),
    )  # every head tied: AUC must be 0.5
    out["seconds"]["random"] = out["seconds"]["ties"] = 0.0
    return out


def planted_scores(res: dict, cfg: Config, seed: int) -> dict[str, float]:
    """The planted positive control on each feature mode's features of one prompt draw: ROC AUC
    of every scorer that needs no model against the planted heads."""
    from interp.methods.sae_scores import planted_features, roc_auc

    aucs = {}
    for mode in cfg.features:
        feats = res["sae"][mode]["feats"]
        N = len(feats) // 2
        labels, pairs = (
            np.r_[np.ones(N, bool), np.zeros(N, bool)],
            np.r_[np.arange(N), np.arange(N)],
        )
        planted, truth = planted_features(
            feats, labels, pairs, cfg.planted_fraction, cfg.planted_strength, seed
        )
        codes, _ = _sae(planted, cfg, seed, cfg.n_sae_prompts, mode)
        scores, _ = code_scores(codes, planted, labels, pairs, cfg, seed)
        aucs.update({f"{k}.{mode}": roc_auc(v, truth) for k, v in scores.items()})
    rng = np.random.default_rng(seed)
    aucs["random"], aucs["ties"] = (
        roc_auc(rng.random(len(truth)), truth),
        roc_auc(np.zeros(len(truth)), truth),
    )
    return aucs


def attribution_check(m, ps, alpha: float, batch_size: int) -> dict[str, float]:
    """Pearson r between activation patching at small ``alpha`` (divided by alpha) and
    attribution patching: first order, they must agree. Also r at alpha = 1 (how linear the
    model is on the real counterfactuals)."""
    from interp.methods.patching import activation_patching, attribution_patching

    metric = ps.metric_fn()
    attr = attribution_patching(
        m, ps.clean, metric, corrupt=ps.corrupt, batch_size=batch_size
    ).flatten()
    small = (
        activation_patching(
            m, ps.clean, metric, corrupt=ps.corrupt, alpha=alpha, batch_size=batch_size
        ).flatten()
        / alpha
    )
    full = activation_patching(
        m, ps.clean, metric, corrupt=ps.corrupt, batch_size=batch_size
    ).flatten()
    r = lambda a, b: float(np.corrcoef(a.numpy(), b.numpy())[0, 1])
    return {
        "r_small_alpha": r(small, attr),
        "r_full": r(full, attr),
        "max_rel_err_small_alpha": float(
            (small - attr).abs().max() / attr.abs().max().clamp_min(1e-12)
        ),
    }


# ------------------------------------------------------------------ one model and task
GRIDS = (
    "auc",
    "null_auc",
    "planted_auc",
    "spearman",
    "precision",
    "recall",
    "seconds",
    "sae_fvu",
    "sae_fvu_heldout",
    "sae_l0",
    "sae_dead_frac",
    "auc_vs_prompts",
    "auc_vs_d_sae",
)  # stacked to [models, tasks, ...]


def task_truth(m, name: str, task: str, config: Config) -> dict:
    """Ground truth on ``n_gt_prompts`` held-out prompts: the per-head ``effect`` ``[heads]``,
    the task's metrics, and one circuit per top fraction (``truths``, boolean ``[heads]`` each)."""
    from interp.data.sae_circuits import make_task
    from interp.methods.sae_scores import top_fraction

    gt_ps = make_task(task, m.tokenizer, config.n_gt_prompts, _seed(config.seed, name, task, "gt"))
    gt = ground_truth(m, gt_ps, config.batch_size)
    effect = np.abs(gt["effect"])
    log.info(
        "%s %s: clean %.3f corrupt %.3f acc %.2f; top heads %s",
        name,
        task,
        gt["clean_metric"],
        gt["corrupt_metric"],
        gt["accuracy"],
        np.argsort(-effect)[:4].tolist(),
    )
    return {**gt, "truths": [top_fraction(effect, f) for f in config.gt_fractions]}


def _record(
    out: dict, s: int, res: dict, methods: list, truths: list, effect: np.ndarray, cfg: Config
) -> None:
    """Write one prompt draw's metrics into the ``[seeds, ...]`` arrays of :func:`seed_scores`."""
    from interp.methods.sae_scores import best_f1, roc_auc, spearman

    mid = len(truths) // 2
    for k, meth in enumerate(methods):
        sc = res["scores"][meth]
        out["mean_scores"][meth] += sc / cfg.n_seeds
        out["seconds"][s, k] = res["seconds"][meth]
        out["auc"][s, k] = [roc_auc(sc, tr) for tr in truths]
        out["null_auc"][s, k] = [roc_auc(res["null"][meth], tr) for tr in truths]
        out["spearman"][s, k] = spearman(sc, effect)
        pr = best_f1(sc, truths[mid])
        out["precision"][s, k], out["recall"][s, k] = pr["precision"], pr["recall"]
    for f, mode in enumerate(cfg.features):
        for key in ("fvu", "fvu_heldout", "l0", "dead_frac"):
            out[f"sae_{key}"][s, f] = res["sae"][mode][key]


def seed_scores(m, name: str, task: str, config: Config, gt: dict) -> dict:
    """Every method over ``n_seeds`` prompt draws: AUC and null-control AUC per threshold ``[seeds,
    methods, thresholds]``, planted-control AUC ``[planted_seeds, methods]``, Spearman, precision,
    recall, seconds ``[seeds, methods]``, SAE stats ``[seeds, features]``; the seed-mean scores per
    method ``[heads]``, their ROC curves at the middle threshold, and the first prompt draws' data
    (for the prompt sweep)."""
    from interp.data.sae_circuits import make_task
    from interp.methods.sae_scores import roc_curve

    methods, S, F, truths = (
        method_names(config.features),
        config.n_seeds,
        len(config.features),
        gt["truths"],
    )
    K, J, P = len(methods), len(truths), min(config.planted_seeds, config.n_seeds)
    out = {
        "auc": np.full((S, K, J), np.nan),
        "null_auc": np.full((S, K, J), np.nan),
        "planted_auc": np.full((P, K), np.nan),
        **{k: np.full((S, K), np.nan) for k in ("spearman", "precision", "recall", "seconds")},
        **{f"sae_{k}": np.full((S, F), np.nan) for k in ("fvu", "fvu_heldout", "l0", "dead_frac")},
        "mean_scores": {k: np.zeros(len(gt["effect"])) for k in methods},
        "data": [],
    }
    for s in range(S):
        ps = make_task(task, m.tokenizer, config.n_prompts, _seed(config.seed, name, task, s))
        data = pair_data(m, ps, config)
        seed = _seed(config.seed, name, task, s, "m")
        res = score_methods(data, config, seed)
        _record(out, s, res, methods, truths, np.abs(gt["effect"]), config)
        if s < P:
            aucs = planted_scores(res, config, seed + 3)
            out["planted_auc"][s] = [aucs.get(k, np.nan) for k in methods]
        if s < config.sweep_seeds:
            out["data"].append(data)
    out["roc"] = {meth: roc_curve(out["mean_scores"][meth], truths[J // 2]) for meth in methods}
    return out


def prompt_sweep(
    name: str, task: str, config: Config, truths: list, datas: list, what: str = "prompts"
) -> np.ndarray:
    """Threshold-mean AUC of :attr:`Config.sweep_methods` when the SAE trains on each
    ``prompt_sweep`` number of prompts (``what="prompts"``) or has each ``d_sae_sweep`` width
    (``what="d_sae"``): ``[sweep, sweep_seeds, methods]`` (NaN where a sweep seed has no prompt
    draw)."""
    from interp.methods.sae_scores import relabel_across_pairs, roc_auc

    meths = config.sweep_methods
    values = config.prompt_sweep if what == "prompts" else config.d_sae_sweep
    sweep = np.full((len(values), config.sweep_seeds, len(meths)), np.nan)
    for pi, v in enumerate(values):
        cfg = config if what == "prompts" else config.model_copy(update={"d_sae": v})
        n_p = v if what == "prompts" else config.n_sae_prompts
        for s, data in enumerate(datas):
            null, null_pairs = relabel_across_pairs(len(data["act"]), 1)
            seed = _seed(
                config.seed, name, task, s, "sweep", v, *(() if what == "prompts" else (what,))
            )
            res = {
                mode: feature_scores(data, mode, cfg, seed, n_p, null, null_pairs)["scores"]
                for mode in {m.split(".")[1] for m in meths}
            }
            sweep[pi, s] = [
                np.mean([roc_auc(res[k.split(".")[1]][k.split(".")[0]], tr) for tr in truths])
                for k in meths
            ]
    return sweep


def model_task(m, name: str, task: str, config: Config, check: bool) -> dict:
    """Ground truth, every method over seeds, the SAE-prompt sweep (and, with ``check``, the
    attribution check) on one model and task; the :data:`GRIDS` arrays of this cell among them."""
    gt = task_truth(m, name, task, config)
    out = {"gt": gt}
    if check:
        from interp.data.sae_circuits import make_task

        chk_ps = make_task(
            task, m.tokenizer, min(config.n_prompts, 16), _seed(config.seed, name, task, "chk")
        )
        out["check"] = attribution_check(m, chk_ps, config.check_alpha, config.batch_size)
    out.update(seed_scores(m, name, task, config, gt))
    datas = out.pop("data")
    out["auc_vs_prompts"] = prompt_sweep(name, task, config, gt["truths"], datas)
    out["auc_vs_d_sae"] = prompt_sweep(name, task, config, gt["truths"], datas, what="d_sae")
    log.info(
        "%s %s: mean AUC %s",
        name,
        task,
        {
            meth: round(float(np.nanmean(out["auc"][:, k])), 3)
            for k, meth in enumerate(method_names(config.features))
        },
    )
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
    grids = {
        k: np.stack(
            [np.stack([cells[(name, task)][k] for task in config.tasks]) for name in config.models]
        )
        for k in GRIDS
    }
    return grids, cells


# ------------------------------------------------------------------ summary
def summarise(config: Config, grids: dict, cells: dict) -> dict:
    """``metrics``: means over models, tasks, seeds (and thresholds) per method, SAE stats by
    feature mode, the planted control, the attribution checks, the tasks' metrics and AUC vs
    SAE training prompts."""
    methods = method_names(config.features)
    auc, n_thr, sweep = grids["auc"], len(config.gt_fractions), grids["auc_vs_prompts"]
    per_method = lambda key: {
        meth: float(np.nanmean(grids[key][..., k])) for k, meth in enumerate(methods)
    }
    per_mode = lambda key: {
        mode: float(np.nanmean(grids[key][..., f])) for f, mode in enumerate(config.features)
    }
    return {
        "models": config.models,
        "tasks": config.tasks,
        "methods": methods,
        "features": config.features,
        "gt_fractions": config.gt_fractions,
        "n_heads_total": int(
            sum(
                c["shape"][0] * c["shape"][1]
                for (mod, t), c in cells.items()
                if t == config.tasks[0]
            )
        ),
        "auc_mean": {meth: float(np.nanmean(auc[..., k, :])) for k, meth in enumerate(methods)},
        "auc_by_threshold": {
            meth: [float(np.nanmean(auc[..., k, j])) for j in range(n_thr)]
            for k, meth in enumerate(methods)
        },
        "auc_by_model_task": {
            f"{mod}/{task}": {
                meth: float(np.nanmean(auc[mi, ti, :, k, :])) for k, meth in enumerate(methods)
            }
            for mi, mod in enumerate(config.models)
            for ti, task in enumerate(config.tasks)
        },
        "auc_sd_over_seeds": {
            meth: float(np.nanmean(np.nanstd(auc[..., k, :], axis=2)))
            for k, meth in enumerate(methods)
        },
        "retest_ceiling_auc": float(np.nanmean(auc[..., methods.index("act_patch"), :])),
        "spearman_mean": per_method("spearman"),
        "precision_at_best_f1": per_method("precision"),
        "recall_at_best_f1": per_method("recall"),
        "seconds_mean": per_method("seconds"),
        "null_auc": {
            meth: float(np.nanmean(grids["null_auc"][..., k, :])) for k, meth in enumerate(methods)
        },
        "planted_auc": {
            meth: float(np.nanmean(grids["planted_auc"][..., k]))
            for k, meth in enumerate(methods)
            if not np.isnan(grids["planted_auc"][..., k]).all()
        },
        "sae_fvu_mean": per_mode("sae_fvu"),
        "sae_fvu_heldout_mean": per_mode("sae_fvu_heldout"),
        "sae_fvu_heldout_max": float(np.nanmax(grids["sae_fvu_heldout"])),
        "sae_l0_mean": per_mode("sae_l0"),
        "sae_dead_frac_mean": per_mode("sae_dead_frac"),
        "attribution_check": [c["check"] for c in cells.values() if "check" in c],
        "tasks_info": {
            f"{name}/{task}": {k: v for k, v in c["gt"].items() if k not in ("effect", "truths")}
            for (name, task), c in cells.items()
        },
        "auc_vs_prompts": {
            str(n): {
                meth: float(np.nanmean(sweep[:, :, i, :, j]))
                for j, meth in enumerate(config.sweep_methods)
            }
            for i, n in enumerate(config.prompt_sweep)
        },
        "auc_vs_d_sae": {
            str(n): {
                meth: float(np.nanmean(grids["auc_vs_d_sae"][:, :, i, :, j]))
                for j, meth in enumerate(config.sweep_methods)
            }
            for i, n in enumerate(config.d_sae_sweep)
        },
        "d_sae": {
            mod: {f: config.sae_width(int(np.prod(c["shape"])), f) for f in config.features}
            for (mod, t), c in cells.items()
            if t == config.tasks[0]
        },
        "circuit_heads": {
            mod: [int(np.ceil(f * np.prod(c["shape"]))) for f in config.gt_fractions]
            for (mod, t), c in cells.items()
            if t == config.tasks[0]
        },
    }


def add_criteria(result: Result, config: Config, grids: dict) -> None:
    """The sanity checks of the implementation and the paper's claims at our scale."""
    mt, auc = result.metrics, result.metrics["auc_mean"]
    methods, P, Q = method_names(config.features), config.primary_features, config.paper_features
    M, T, S, n_thr = len(config.models), len(config.tasks), config.n_seeds, len(config.gt_fractions)
    calibrated = [f"{c}.{f}" for c in CALIBRATED for f in config.features] + ["ties"]
    off = max([abs(mt["null_auc"][k] - 0.5) for k in calibrated] + [abs(auc["ties"] - 0.5)])
    result.add_criterion(
        "null_control_auc_near_half",
        off,
        "<=",
        0.15,
        kind="sanity",
        description="max |AUC - 0.5| with labels and pairs redrawn across prompt pairs and the "
        f"scores recomputed, over the calibrated scorers ({', '.join(CALIBRATED)}, "
        "every feature mode) and the all-tied scorer (real labels too); means over "
        "models, tasks, seeds, thresholds. A scorer that reads a label-free head "
        "property correlated with the circuit keeps its AUC here",
    )
    result.add_criterion(
        "attribution_matches_activation_patching",
        min(c["r_small_alpha"] for c in mt["attribution_check"]),
        ">=",
        0.99,
        kind="sanity",
        description="Pearson r of attribution patching vs activation patching at "
        f"alpha={config.check_alpha} (/alpha), per prompt and head (min over models)",
    )
    sae_cols = [methods.index(f"paper_node.{f}") for f in config.features]
    # a wall time depends on the machine: a metric (the paper's cost argument), never a criterion
    result.metrics["sae_pipeline_seconds_max"] = float(np.nanmax(grids["seconds"][..., sae_cols]))
    result.add_criterion(
        "sae_fvu_heldout",
        mt["sae_fvu_heldout_max"],
        "<",
        0.3,
        kind="sanity",
        description="max fraction of variance unexplained of any SAE on the prompts it did not "
        "train on (every mode, model, task, seed)",
    )
    planted = min(mt["planted_auc"][f"{k}.{P}"] for k in ("ours", "flip"))
    result.add_criterion(
        "planted_control_recovered",
        planted,
        ">=",
        0.9,
        kind="sanity",
        description=f"min over our code scorers (ours, flip; {P} features) of the ROC AUC of the "
        "planted heads, label information of the real heads erased (mean over draws)",
    )
    circuit = ", ".join(f"{f:.1%}" for f in config.gt_fractions)
    where = (
        f"mean over {M} models, {T} tasks, {S} seeds and {n_thr} circuits (the top {circuit} of heads by "
        "exact activation patching from the paired counterfactual)"
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
    result.metrics["extra_comparisons"] = {
        "paper_node_minus_attribution": auc[f"paper_node.{Q}"] - auc["attr_patch"],
        "ours_minus_paper_node": auc[f"ours.{P}"] - auc[f"paper_node.{Q}"],
        "flip_minus_raw_diff": auc[f"flip.{P}"] - auc[f"raw_diff.{P}"],
        "weighted_minus_attribution": auc[f"weighted.{P}"] - auc["attr_patch"],
    }


def per_head_arrays(config: Config, cells: dict) -> dict[str, np.ndarray]:
    """Ground-truth effects and seed-mean scores ``[heads]`` per model (by index: names may be
    paths) and task: ``gt_effect__m{i}__{task}``, ``score__{method}__m{i}__{task}``."""
    out = {}
    for (mod, task), c in cells.items():
        key = f"m{config.models.index(mod)}__{task}"
        out[f"gt_effect__{key}"] = c["gt"]["effect"]
        for meth in method_names(config.features):
            out[f"score__{meth}__{key}"] = c["mean_scores"][meth]
    return out


@register(
    "sae_circuits",
    Config,
    title="Circuit discovery with discrete SAEs vs patching",
    paper="O'Neill & Bui 2024, Sparse Autoencoders Enable Scalable and Reliable Circuit Identification in Language Models (charlieoneill11/sae-circuits)",
    figure_order=(
        "auc_summary",
        "heatmaps",
        "roc",
        "null_control",
        "planted_control",
        "auc_vs_prompts",
        "runtime",
    ),
)
def run(config: Config) -> Result:
    """The paper's SAE node/edge scores, our paired scorers and the SAE-free controls on three kinds of
    head features, against a patching ground truth; activation patching as its retest ceiling."""
    from interp.utils import seed_everything

    seed_everything(config.seed)
    t_start = time.time()
    grids, cells = score_all(config)
    result = Result("sae_circuits")
    result.metrics.update(
        {**summarise(config, grids, cells), "total_seconds": time.time() - t_start}
    )
    add_criteria(result, config, grids)
    result.arrays.update({**grids, **per_head_arrays(config, cells)})
    from interp.plotting.sae_circuits import run_figures

    shown = [f"{s}.{config.primary_features}" for s in PER_FEATURE] + [
        f"paper_node.{config.paper_features}",
        "act_patch",
        "attr_patch",
    ]
    result.figures.update(run_figures(config, result.metrics, cells, list(dict.fromkeys(shown))))
    return result
