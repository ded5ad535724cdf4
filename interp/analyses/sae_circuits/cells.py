"""One model and task (a *cell*): the ground truth, every method over prompt draws, the SAE
prompt and width sweeps; and every cell of a run (:func:`score_all`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields

import numpy as np
from jaxtyping import Float

from interp.analyses.sae_circuits.config import Config, seed_of
from interp.analyses.sae_circuits.scoring import (
    DrawScores,
    PairData,
    feature_scores,
    pair_data,
    planted_scores,
    score_methods,
)
from interp.analyses.sae_circuits.truth import AttributionCheck, GroundTruth

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Grids:
    """The per-cell arrays, ``[seeds, methods, ...]`` for one cell and stacked to ``[models,
    tasks, ...]`` for a run (the leading ``*mt``). ``S`` seeds, ``K`` methods, ``J`` node
    circuits, ``E`` edge circuits, ``P`` planted draws, ``F`` feature modes, ``V`` sweep values,
    ``W`` sweep seeds, ``Q`` sweep methods; NaN where a method has no value (edge AUC of a
    method without edge scores, every edge AUC without edge truth)."""

    auc: Float[np.ndarray, "*mt S K J"]
    null_auc: Float[np.ndarray, "*mt S K J"]
    planted_auc: Float[np.ndarray, "*mt P K"]
    spearman: Float[np.ndarray, "*mt S K"]
    precision: Float[np.ndarray, "*mt S K"]
    recall: Float[np.ndarray, "*mt S K"]
    seconds: Float[np.ndarray, "*mt S K"]
    sae_fvu: Float[np.ndarray, "*mt S F"]
    sae_fvu_heldout: Float[np.ndarray, "*mt S F"]
    sae_l0: Float[np.ndarray, "*mt S F"]
    sae_dead_frac: Float[np.ndarray, "*mt S F"]
    auc_vs_prompts: Float[np.ndarray, "*mt V W Q"]
    auc_vs_d_sae: Float[np.ndarray, "*mt V W Q"]
    edge_auc: Float[np.ndarray, "*mt S K E"]
    edge_null_auc: Float[np.ndarray, "*mt S K E"]

    @classmethod
    def empty(cls, config: Config) -> Grids:
        """NaN arrays of one cell's shapes (the sweeps are filled in later)."""
        S, K, J = config.n_seeds, len(config.methods), len(config.gt_fractions)
        P, F = min(config.planted_seeds, config.n_seeds), len(config.features)
        E = len(config.gt_edge_fractions)

        def nan(*shape: int) -> np.ndarray:
            return np.full(shape, np.nan)

        return cls(
            *(nan(S, K, J) for _ in range(2)),
            nan(P, K),
            *(nan(S, K) for _ in range(4)),
            *(nan(S, F) for _ in range(4)),
            *(nan(0, config.sweep_seeds, 4) for _ in range(2)),
            *(nan(S, K, E) for _ in range(2)),
        )

    def arrays(self) -> dict[str, np.ndarray]:
        """``{name: array}``, for the run's saved arrays."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def stack(cls, rows: list[list[Grids]]) -> Grids:
        """``rows[model][task]`` stacked to ``[models, tasks, ...]``."""
        return cls(
            **{
                f.name: np.stack([np.stack([getattr(g, f.name) for g in row]) for row in rows])
                for f in fields(cls)
            }
        )


GRIDS = tuple(f.name for f in fields(Grids))  # the arrays stacked to [models, tasks, ...]


@dataclass(frozen=True)
class Cell:
    """One model and task: its ``[layers, heads]`` shape, truth, grids, the seed-mean scores by
    method ``[heads]``, their ROC curves at the middle circuit, and (first task of a model) the
    attribution check."""

    shape: tuple[int, int]
    truth: GroundTruth
    grids: Grids
    mean_scores: dict[str, np.ndarray]
    roc: dict[str, tuple[np.ndarray, np.ndarray]]
    check: AttributionCheck | None = None


def _edge_aucs(scores: np.ndarray, truth: GroundTruth) -> list[float]:
    from interp.methods.sae_scores import roc_auc

    valid = truth.edge_valid
    return [roc_auc(scores[valid], t[valid]) for t in truth.edge_truths]


def record(g: Grids, s: int, res: DrawScores, cfg: Config, truth: GroundTruth) -> None:
    """Write one prompt draw's metrics into row ``s`` of the cell's grids."""
    from interp.methods.sae_scores import best_f1, roc_auc, spearman

    truths, effect = truth.truths, np.abs(truth.effect)
    mid, sc = len(truths) // 2, res.scores
    for k, meth in enumerate(cfg.methods):
        heads = sc.heads[meth]
        g.seconds[s, k] = sc.seconds[meth]
        g.auc[s, k] = [roc_auc(heads, tr) for tr in truths]
        g.null_auc[s, k] = [roc_auc(sc.null[meth], tr) for tr in truths]
        g.spearman[s, k] = spearman(heads, effect)
        pr = best_f1(heads, truths[mid])
        g.precision[s, k], g.recall[s, k] = pr["precision"], pr["recall"]
        if truth.edge_truths and meth in sc.edges:
            g.edge_auc[s, k] = _edge_aucs(sc.edges[meth], truth)
            g.edge_null_auc[s, k] = _edge_aucs(sc.null_edges[meth], truth)
    for f, mode in enumerate(cfg.features):
        stats = res.modes[mode].sae
        g.sae_fvu[s, f], g.sae_fvu_heldout[s, f] = stats.fvu, stats.fvu_heldout
        g.sae_l0[s, f], g.sae_dead_frac[s, f] = stats.l0, stats.dead_frac


def seed_scores(
    m, name: str, task: str, config: Config, truth: GroundTruth
) -> tuple[Grids, dict[str, np.ndarray], list[PairData]]:
    """Every method over ``n_seeds`` prompt draws: the cell's grids (sweeps still empty), the
    seed-mean scores per method ``[heads]``, and the first ``sweep_seeds`` draws' data (for the
    sweeps)."""
    from interp.data.sae_circuits import make_task

    g = Grids.empty(config)
    mean = {k: np.zeros(len(truth.effect)) for k in config.methods}
    datas = []
    for s in range(config.n_seeds):
        ps = make_task(task, m.tokenizer, config.n_prompts, seed_of(config.seed, name, task, s))
        data = pair_data(m, ps, config)
        seed = seed_of(config.seed, name, task, s, "m")
        res = score_methods(data, config, seed)
        record(g, s, res, config, truth)
        for meth in config.methods:
            mean[meth] += res.scores.heads[meth] / config.n_seeds
        if s < len(g.planted_auc):
            aucs = planted_scores(res, config, seed + 3)
            g.planted_auc[s] = [aucs.get(k, np.nan) for k in config.methods]
        if s < config.sweep_seeds and (config.prompt_sweep or config.d_sae_sweep):
            datas.append(data)  # kept only when a sweep will read it
    return g, mean, datas


def prompt_sweep(
    name: str, task: str, config: Config, truths: list, datas: list[PairData], what: str
) -> np.ndarray:
    """Threshold-mean AUC of :attr:`Config.sweep_methods` when the SAE trains on each
    ``prompt_sweep`` number of prompts (``what="prompts"``) or has each ``d_sae_sweep`` width
    (``what="d_sae"``): ``[sweep, sweep_seeds, methods]`` (NaN where a sweep seed has no prompt
    draw)."""
    from interp.methods.sae_scores import roc_auc

    meths = config.sweep_methods
    values = config.prompt_sweep if what == "prompts" else config.d_sae_sweep
    sweep = np.full((len(values), config.sweep_seeds, len(meths)), np.nan)
    for pi, v in enumerate(values):
        cfg = config if what == "prompts" else config.model_copy(update={"d_sae": v})
        n_p = v if what == "prompts" else config.n_sae_prompts
        for s, data in enumerate(datas):
            extra = () if what == "prompts" else (what,)
            seed = seed_of(config.seed, name, task, s, "sweep", v, *extra)
            res = {}
            for mode in {m.split(".")[1] for m in meths}:
                names = [m.split(".")[0] for m in meths if m.endswith(f".{mode}")]
                res[mode] = feature_scores(data, mode, cfg, seed, n_p, None, names).scores.heads
            sweep[pi, s] = [
                np.mean([roc_auc(res[k.split(".")[1]][k.split(".")[0]], tr) for tr in truths])
                for k in meths
            ]
    return sweep


def model_task(m, name: str, task: str, config: Config, check: bool) -> Cell:
    """Ground truth, every method over seeds, the sweeps (and, with ``check``, the attribution
    check) on one model and task."""
    from dataclasses import replace

    from interp.analyses.sae_circuits.truth import attribution_check, task_truth
    from interp.data.sae_circuits import make_task
    from interp.methods.sae_scores import roc_curve

    truth = task_truth(m, name, task, config)
    chk = None
    if check:
        n = min(config.n_prompts, config.check_prompts)
        chk_ps = make_task(task, m.tokenizer, n, seed_of(config.seed, name, task, "chk"))
        chk = attribution_check(m, chk_ps, config.check_alpha, config.batch_size)
    g, mean, datas = seed_scores(m, name, task, config, truth)
    g = replace(
        g,
        auc_vs_prompts=prompt_sweep(name, task, config, truth.truths, datas, "prompts"),
        auc_vs_d_sae=prompt_sweep(name, task, config, truth.truths, datas, "d_sae"),
    )
    mid = truth.truths[len(truth.truths) // 2]
    roc = {meth: roc_curve(mean[meth], mid) for meth in config.methods}
    log.info(
        "%s %s: mean AUC %s",
        name,
        task,
        {meth: round(float(np.nanmean(g.auc[:, k])), 3) for k, meth in enumerate(config.methods)},
    )
    return Cell((m.n_layers, m.cfg.n_heads), truth, g, mean, roc, chk)


def score_all(config: Config) -> tuple[Grids, dict[tuple[str, str], Cell]]:
    """Every model and task: the grids stacked to ``[models, tasks, ...]`` and the cells by
    ``(model, task)``. Models load one at a time."""
    import interp

    cells: dict[tuple[str, str], Cell] = {}
    for name in config.models:
        m = interp.load_model(name, device=config.device)
        log.info("model %s: %d layers x %d heads", m.model_id, m.n_layers, m.cfg.n_heads)
        for ti, task in enumerate(config.tasks):
            cells[(name, task)] = model_task(m, name, task, config, check=ti == 0)
    grids = Grids.stack([[cells[(n, t)].grids for t in config.tasks] for n in config.models])
    return grids, cells
