"""One prompt draw: what the model gives every method (:func:`pair_data`), every registered
head scorer on it with its null control (:func:`score_methods`), and the planted positive
control (:func:`planted_scores`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Bool, Float, Int

from interp.analyses.sae_circuits.config import Config


@dataclass(frozen=True)
class PairData:
    """What the methods read from the model on one draw of ``N`` paired prompts (clean rows
    first): head outputs ``[2N, pos, heads, d_model]``; the metric's gradient w.r.t. them on the
    clean prompts ``[N, pos, heads, d_model]`` (None when no scorer needs it); per-pair
    activation / attribution patching effects ``[N, heads]`` (None when not run); the answer
    positions ``[N]``; and the seconds each step took (by :data:`~interp.methods.sae_scores.
    family.Cost` name)."""

    outputs: Float[torch.Tensor, "n2 pos heads d"]
    grads: Float[torch.Tensor, "N pos heads d"] | None
    act: Float[np.ndarray, "N heads"] | None
    attr: Float[np.ndarray, "N heads"] | None
    answer_pos: Int[torch.Tensor, " N"]
    seconds: dict[str, float]

    @property
    def n_pairs(self) -> int:
        return len(self.outputs) // 2

    @property
    def n_heads(self) -> int:
        return self.outputs.shape[2]


def real_pairs(n: int) -> tuple[Bool[np.ndarray, " n2"], Int[np.ndarray, " n2"]]:
    """Labels (positives first) and pair ids of ``n`` pairs stacked as ``[clean; corrupt]``."""
    return np.r_[np.ones(n, bool), np.zeros(n, bool)], np.r_[np.arange(n), np.arange(n)]


def pair_data(m, ps, cfg: Config) -> PairData:
    """:class:`PairData` of the paired prompts ``ps``; gradients and patching only when a chosen
    scorer costs them."""
    from interp.methods.patching import activation_patching, attribution_patching, head_outputs
    from interp.methods.sae_scores import Timer, family, output_grads

    metric, bs = ps.metric_fn(), cfg.batch_size
    costs = {c for s in cfg.scorers for c in family.get(s).cost}
    layer_of = torch.as_tensor(np.repeat(np.arange(m.n_layers), m.cfg.n_heads))
    seconds = {}
    with Timer() as t:
        outputs = torch.cat([head_outputs(m, ps.clean, bs), head_outputs(m, ps.corrupt, bs)])
    seconds["outputs"] = t.seconds
    grads = act = attr = None
    if "grads" in costs:
        with Timer() as t:
            grads = output_grads(m, m.prepare(ps.clean), metric, bs)[:, :, layer_of]
        seconds["grads"] = t.seconds
    kw = dict(corrupt=ps.corrupt, batch_size=bs)
    if "act_patch" in costs:
        with Timer() as t:
            act = activation_patching(m, ps.clean, metric, **kw).flatten(1).numpy()
        seconds["act_patch"] = t.seconds
    if "attr_patch" in costs:
        with Timer() as t:
            attr = attribution_patching(m, ps.clean, metric, **kw).flatten(1).numpy()
        seconds["attr_patch"] = t.seconds
    return PairData(outputs, grads, act, attr, ps.answer_pos, seconds)


@dataclass(frozen=True)
class SAEStats:
    """An SAE's fit: FVU on its training vectors and on the prompts it did not train on, mean
    active latents, dead-latent share."""

    fvu: float
    fvu_heldout: float
    l0: float
    dead_frac: float


@dataclass(frozen=True)
class Scores:
    """Scores by method (or scorer, within one mode): real and null-control head scores
    ``[heads]``, edge scores ``[heads, heads]`` (scorers that have them), and seconds."""

    heads: dict[str, np.ndarray]
    null: dict[str, np.ndarray]
    edges: dict[str, np.ndarray]
    null_edges: dict[str, np.ndarray]
    seconds: dict[str, float]

    @classmethod
    def empty(cls) -> Scores:
        return cls({}, {}, {}, {}, {})

    def add(self, other: Scores, suffix: str = "") -> None:
        """Merge ``other`` in, its keys suffixed (``".mean"``: scorer -> method name)."""
        for mine, theirs in zip(self._parts(), other._parts(), strict=True):
            mine.update({k + suffix: v for k, v in theirs.items()})

    def _parts(self) -> tuple[dict, ...]:
        return self.heads, self.null, self.edges, self.null_edges, self.seconds


@dataclass(frozen=True)
class ModeScores:
    """Every per-mode scorer on one feature mode: its :class:`Scores`, the features and codes
    it read (the planted control reuses the features) and the SAE's fit."""

    scores: Scores
    feats: Float[torch.Tensor, "n2 slots heads d"]
    codes: Int[np.ndarray, "n2 slots heads"]
    sae: SAEStats


def train_codes(
    feats: torch.Tensor, cfg: Config, seed: int, n_sae: int, mode: str, train_on=None
) -> tuple[np.ndarray, object, SAEStats]:
    """Codes ``[n, slots, heads]`` of ``feats`` from one SAE trained on ``n_sae`` random prompts
    (of ``train_on``'s vectors when given), the SAE and its :class:`SAEStats`."""
    from interp.methods.sae_scores import sae_codes

    rows = np.random.default_rng(seed).permutation(len(feats))[:n_sae]
    codes, rep = sae_codes(
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
    stats = SAEStats(rep["fvu"], rep["fvu_heldout"], rep["l0"], rep["dead_frac"])
    return codes, rep["sae"], stats


def run_scorers(
    names: list[str],
    x,
    null_x=None,
    flips: np.ndarray | None = None,
    base: dict[str, float] | None = None,
) -> Scores:
    """The scorers ``names`` on :class:`~interp.methods.sae_scores.family.ScoreInput` ``x``.
    Null control (when ``null_x`` is given): a magnitude scorer (per-pair effects) flips each
    pair's sign where ``flips`` is -1 (it needs the real pairs); any other is recomputed on
    ``null_x`` (labels and pairs redrawn across pairs). Seconds: each scorer's own plus the
    ``base`` seconds of the steps it costs (its ``cost``, the head outputs for a per-mode
    scorer, the SAE for one that uses it)."""
    from interp.methods.sae_scores import Timer, family

    out, base = Scores.empty(), base or {}
    for name in names:
        s = family.get(name)
        with Timer() as t:
            res = s.fn(x)
        steps = (*(("outputs",) if s.per_mode else ()), *(("sae",) if s.uses_sae else ()))
        out.heads[name] = res.heads
        out.seconds[name] = t.seconds + sum(base.get(c, 0.0) for c in (*steps, *s.cost))
        if res.edges is not None:
            out.edges[name] = res.edges
        if null_x is None:
            continue
        if res.per_pair is not None:
            out.null[name] = np.abs((flips[:, None] * res.per_pair).mean(0))
            continue
        null = s.fn(null_x)
        out.null[name] = null.heads
        if null.edges is not None:
            out.null_edges[name] = null.edges
    return out


def feature_scores(
    data: PairData,
    mode: str,
    cfg: Config,
    seed: int,
    n_sae: int,
    null: tuple[np.ndarray, np.ndarray] | None,
    names: list[str] | None = None,
) -> ModeScores:
    """The per-mode scorers ``names`` (default: every chosen one) on the ``mode`` features, the
    SAE trained on ``n_sae`` of the ``2N`` prompts. ``null``: the null control's ``(labels,
    pairs)`` (:func:`~interp.methods.sae_scores.relabel_across_pairs`), None to skip it; a
    magnitude scorer's null flips each pair's sign at random (within-pair flips)."""
    from interp.methods.sae_scores import ScoreInput, Timer, family, select_positions

    N, ap = data.n_pairs, data.answer_pos
    labels, pairs = real_pairs(N)
    feats = select_positions(data.outputs, mode, torch.cat([ap, ap]))  # [2N, slots, heads, d]
    # the answer position's SAE learns from every position of its training prompts (one vector
    # per prompt and head would be fewer than its latents); it codes the answer vectors
    train_on = data.outputs if mode == "answer" else None
    with Timer() as t_sae:
        codes, sae, stats = train_codes(feats, cfg, seed, n_sae, mode, train_on)
    grads = None if data.grads is None else select_positions(data.grads, mode, ap, reduce="sum")
    x = ScoreInput(
        labels, pairs, data.n_heads, seed, cfg.n_perm, cfg.statistic,
        codes=codes, feats=feats, sae=sae, grads=grads,
    )  # fmt: skip
    null_x = None if null is None else x.relabelled(*null, seed + 2)
    # swapping a pair flips the sign of its first-order effect: a magnitude score's null
    flips = np.where(np.random.default_rng(seed + 4).random(N) < 0.5, -1.0, 1.0)
    chosen = [s for s in cfg.scorers if family.get(s).per_mode] if names is None else names
    base = {**data.seconds, "sae": t_sae.seconds}
    scores = run_scorers(chosen, x, null_x, flips, base)
    return ModeScores(scores, feats, codes, stats)


@dataclass(frozen=True)
class DrawScores:
    """Every method on one prompt draw: :class:`Scores` by method name and each mode's
    :class:`ModeScores`."""

    scores: Scores
    modes: dict[str, ModeScores]


def score_methods(data: PairData, cfg: Config, seed: int) -> DrawScores:
    """Every chosen method on one prompt draw. The null: labels and pairs redrawn across prompt
    pairs for the scorers that read labels; within-pair sign flips for the magnitude scorers
    (``weighted``, patching), which need the real pairs."""
    from interp.methods.sae_scores import (
        ScoreInput,
        family,
        relabel_across_pairs,
        shuffled_labels,
    )

    N = data.n_pairs
    labels, pairs = real_pairs(N)
    null = relabel_across_pairs(N, seed + 1)
    out, modes = Scores.empty(), {}
    for mode in cfg.features:
        modes[mode] = feature_scores(data, mode, cfg, seed, cfg.n_sae_prompts, null)
        out.add(modes[mode].scores, f".{mode}")
    flips = np.where(shuffled_labels(labels, pairs, seed + 1)[:N], 1.0, -1.0)
    x = ScoreInput(labels, pairs, data.n_heads, seed, act=data.act, attr=data.attr)
    once = [s for s in cfg.scorers if not family.get(s).per_mode]
    out.add(run_scorers(once, x, x.relabelled(*null, seed + 2), flips, data.seconds))
    return DrawScores(out, modes)


def planted_scores(res: DrawScores, cfg: Config, seed: int) -> dict[str, float]:
    """The planted positive control on each feature mode's features of one prompt draw: ROC AUC
    against the planted heads of every chosen scorer that needs no model, by method name."""
    from interp.methods.sae_scores import ScoreInput, family, planted_features, roc_auc

    free = [s for s in cfg.scorers if not family.get(s).needs_model]
    aucs: dict[str, float] = {}
    truth = np.zeros(0, dtype=bool)
    for mode in cfg.features:
        feats = res.modes[mode].feats
        labels, pairs = real_pairs(len(feats) // 2)
        planted, truth = planted_features(
            feats, labels, pairs, cfg.planted_fraction, cfg.planted_strength, seed
        )
        codes, sae, _ = train_codes(planted, cfg, seed, cfg.n_sae_prompts, mode)
        x = ScoreInput(
            labels, pairs, planted.shape[2], seed, cfg.n_perm, cfg.statistic,
            codes=codes, feats=planted, sae=sae,
        )  # fmt: skip
        per_mode = [s for s in free if family.get(s).per_mode]
        got = run_scorers(per_mode, x).heads
        aucs.update({f"{k}.{mode}": roc_auc(v, truth) for k, v in got.items()})
    x = ScoreInput(*real_pairs(1), len(truth), seed)  # random and ties read no labels
    got = run_scorers([s for s in free if not family.get(s).per_mode], x).heads
    aucs.update({k: roc_auc(v, truth) for k, v in got.items()})
    return aucs
