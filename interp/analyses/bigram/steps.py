"""The steps of the bigram analysis: set up the model and its data, sweep lambda, and measure the
chosen subnetwork (necessity, sufficiency, pruning overlap, residual maps, mask sanity)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

import interp
from interp.analyses.bigram.config import Config
from interp.analyses.bigram.measures import (
    SoftMask,
    corpus_streams,
    pearson_finite,
    residual_maps,
    surprisals,
    windows,
)
from interp.analyses.bigram.types import (
    Choice,
    MaskGaps,
    PruningOverlap,
    Removal,
    ResidualMaps,
    Setup,
    SizePoint,
    SurprisalTable,
    SweepPoint,
    ZeroMaskFloor,
)
from interp.data.bigram import Bigram
from interp.methods.heads import ablation_significance
from interp.methods.masks import (
    Mask,
    MaskTrainConfig,
    find_sites,
    logits_of,
    native,
    row_shuffle_null,
    train_mask,
)
from interp.methods.planted import planted_recovery
from interp.models.recipes.code_lm import lm_batches

log = logging.getLogger(__name__)


def setup(config: Config) -> Setup:
    """Load the LM, read its corpus split, count bigrams, draw the held-out windows."""
    m = interp.load_model(config.model, device=config.device)
    if m.kind != "transformer" or m.tokenizer is None:
        raise ValueError(
            f"bigram needs a transformer LM with a tokenizer; {config.model} is a {m.kind}"
        )
    seq_len = min(config.seq_len, m.cfg.n_ctx)
    streams = corpus_streams(config, m)
    log.info(
        "model %s; corpus %s: %d train / %d held-out tokens",
        m.model_id,
        streams.source.as_json(),
        len(streams.train),
        len(streams.heldout),
    )
    bigram = Bigram.from_tokens(streams.train, vocab_size=m.cfg.d_vocab)
    eval_tokens = windows(streams.heldout, config.n_eval, seq_len, config.seed + 1)
    resid_tokens = windows(streams.heldout, config.n_resid, seq_len, config.seed + 2)
    base_state = {k: v.detach().clone() for k, v in native(m).state_dict().items()}
    sites = find_sites(m)
    log.info("%d maskable matrices, %d weights", len(sites), sum(s.size for s in sites))
    return Setup(
        m=m,
        seq_len=seq_len,
        streams=streams,
        bigram=bigram,
        eval_tokens=eval_tokens,
        resid_tokens=resid_tokens,
        bigram_s=bigram.surprisal(eval_tokens),
        sites=sites,
        base_state=base_state,
    )


def mask_config(config: Config, lam: float) -> MaskTrainConfig:
    """The mask-training settings at density penalty ``lam``."""
    return MaskTrainConfig(
        lam=lam,
        steps=config.mask_steps,
        lr=config.lr,
        init_logit=config.init_logit,
        temperature_growth=config.temperature_growth,
    )


def lambda_sweep(su: Setup, config: Config) -> tuple[list[SweepPoint], list[Mask]]:
    """One bigram mask per lambda: its sweep point (kept fraction, r of hard and soft mask, ...)
    and the hard mask."""
    m = su.m
    # [batch, pos] -> [batch, pos, vocab], per batch from sparse counts
    target_fn = su.bigram.target_fn(m.device)
    sweep, masks = [], []
    for i, lam in enumerate(config.lambdas):
        t0 = time.time()
        res = train_mask(
            m,
            lm_batches(su.streams.train, su.seq_len, config.batch_size, config.seed * 1000 + i),
            target_fn,
            mask_config(config, lam),
            sites=su.sites,
            desc=f"bigram mask lambda={lam}",
        )
        sub_s = surprisals(m, su.eval_tokens, res.mask)
        res.logits.train()  # the soft mask sigmoid(T*s) at the final T, for the soft/hard gap
        soft_s = surprisals(m, su.eval_tokens, SoftMask(res.logits))
        res.logits.eval()
        last = res.log[-1] if res.log else None
        point = SweepPoint(
            lam=lam,
            kept_fraction=res.mask.kept_fraction,
            r=pearson_finite(sub_s, su.bigram_s),
            r_soft=pearson_finite(soft_s, su.bigram_s),
            final_temperature=res.logits.temperature,
            loss=float(sub_s.mean()),
            steps=res.steps,
            stopped_early=res.stopped_early,
            final_undecided=last["undecided"] if last else None,
            final_undecided_per_kept=last["undecided_per_kept"] if last else None,
            seconds=time.time() - t0,
            by_component=res.mask.by_component(),
        )
        log.info(
            "lambda %g: kept %.3f%%, r %.3f (soft mask %.3f), %d steps (%.0f s)",
            lam,
            100 * point.kept_fraction,
            point.r,
            point.r_soft,
            res.steps,
            point.seconds,
        )
        res.mask.meta["name"] = f"bigram_lambda_{lam:g}"
        sweep.append(point)
        masks.append(res.mask)
    return sweep, masks


def choose(sweep: Sequence[SweepPoint], max_kept: float) -> Choice:
    """Index of the main subnetwork and the indices of the sparse, converged masks (kept
    fraction <= ``max_kept`` and stopped by the paper's rule, ``stopped_early``). The main one is
    the best r among those; else among the sparse ones; else the sparsest."""
    sparse = [i for i, p in enumerate(sweep) if p.kept_fraction <= max_kept]
    sparse_ok = [i for i in sparse if sweep[i].stopped_early]
    pool = sparse_ok or sparse
    best = (
        max(pool, key=lambda i: np.nan_to_num(sweep[i].r, nan=-1))
        if pool
        else min(range(len(sweep)), key=lambda i: sweep[i].kept_fraction)
    )
    return Choice(best, sparse_ok)


def zero_mask_floor(su: Setup) -> ZeroMaskFloor:
    """The bigram fit of the model with every maskable weight removed: embeddings, norms, biases
    and unembedding alone (the direct path is already a bigram model). Same measures as a sweep
    point, so a subnetwork only means something where it beats this."""
    s = surprisals(su.m, su.eval_tokens, Mask.zeros(su.sites))
    floor = ZeroMaskFloor(kept_fraction=0.0, r=pearson_finite(s, su.bigram_s), loss=float(s.mean()))
    log.info(
        "zero-mask floor (nothing kept in the blocks): r %.3f, loss %.3f nats",
        floor.r,
        floor.loss,
    )
    return floor


def removal_test(subnetwork_loss: float, random_losses: Sequence[float]) -> Removal:
    """Does removing the subnetwork hurt more than removing random same-structure sets? The test
    the n-gram head ablation uses (:func:`interp.methods.heads.ablation_significance`): a one-sided
    one-sample t-test of the random removals' losses against the subnetwork removal's loss (H1:
    their mean is lower), and the exact rank p ``(1 + #{random >= subnetwork}) / (1 + n)``."""
    losses = np.asarray(random_losses, dtype=np.float64)
    if len(losses) < 2:
        raise ValueError(f"the removal test needs at least 2 random removals, got {len(losses)}")
    sig = ablation_significance(subnetwork_loss, losses)
    return Removal(
        subnetwork_removed=float(subnetwork_loss),
        random_removed=losses.tolist(),
        random_mean=float(losses.mean()),
        random_std=float(losses.std(ddof=1)),
        difference=float(subnetwork_loss - losses.mean()),
        p_t=sig["p"],
        p_rank=sig["p_rank"],
        n_random=sig["n"],
    )


def surprisal_table(
    su: Setup,
    full_s: np.ndarray,
    mask: Mask,
    randoms: Sequence[Mask],
    removal_randoms: Sequence[Mask],
) -> SurprisalTable:
    """Necessity and sufficiency: mean held-out surprisal of the full model, the subnetwork, random
    same-structure subnetworks, the complement and random complements (``removal_randoms``); the
    bigram model; and the removal test (:func:`removal_test`)."""
    m, x = su.m, su.eval_tokens
    removed = [float(surprisals(m, x, r, complement=True).mean()) for r in removal_randoms]
    subnetwork = float(surprisals(m, x, mask).mean())
    random_subnetwork = float(np.mean([surprisals(m, x, r).mean() for r in randoms]))
    complement = float(surprisals(m, x, mask, complement=True).mean())
    finite = np.isfinite(su.bigram_s)
    table = SurprisalTable(
        full=float(full_s.mean()),
        subnetwork=subnetwork,
        random_subnetwork=random_subnetwork,
        complement=complement,
        random_complement=float(np.mean(removed)),
        bigram_model_finite=float(su.bigram_s[finite].mean()),
        bigram_infinite_frac=float(1 - finite.mean()),
        removal=removal_test(complement, removed),
    )
    log.info("surprisal table: %s", table.rows())
    return table


def pruning_overlap(su: Setup, config: Config, mask: Mask, lam: float) -> PruningOverlap | None:
    """Overlap of the subnetwork with an optimal-pruning mask (target: the model's own softmax)
    against within-matrix row shuffles, with a one-sided p-value (None when switched off)."""
    if not config.pruning_mask:
        return None
    t0 = time.time()
    prune = train_mask(
        su.m,
        lm_batches(su.streams.train, su.seq_len, config.batch_size, config.seed * 1000 + 999),
        "self",
        mask_config(config, lam),
        sites=su.sites,
        desc="pruning mask",
    ).mask
    observed = mask.overlap(prune)
    null = row_shuffle_null(mask, prune, config.n_null, config.seed + 3)
    overlap = PruningOverlap(
        pruning_kept_fraction=prune.kept_fraction,
        observed=observed,
        observed_frac_of_subnetwork=observed / max(1, mask.n_kept),
        null_mean=float(null.mean()),
        null_std=float(null.std()),
        p_value=(1 + int((null >= observed).sum())) / (1 + len(null)),
        n_null=len(null),
        pruning_loss=float(surprisals(su.m, su.eval_tokens, prune).mean()),
        seconds=time.time() - t0,
        null=null,
    )
    log.info("pruning overlap: %s", overlap.as_json())
    return overlap


def all_residual_maps(su: Setup, config: Config, mask: Mask, random: Mask) -> ResidualMaps:
    """:func:`~interp.analyses.bigram.measures.residual_maps` of the full model, the subnetwork
    and a random same-structure subnetwork (same split and seed for all three)."""

    def maps(mk: Mask | None):
        return residual_maps(
            su.m,
            su.resid_tokens,
            mk,
            alpha=config.ridge_alpha,
            k=config.recall_k,
            seed=config.seed + 4,
        )

    return ResidualMaps(full=maps(None), subnetwork=maps(mask), random=maps(random))


def planted_check(config: Config) -> dict[str, Any]:
    """The mask trainer on a model with a planted bigram subnetwork (:mod:`interp.methods.planted`):
    precision, recall and IoU of the kept weights against the planted ones (empty when off)."""
    if not config.planted_check:
        return {}
    res = planted_recovery(seed=config.seed)
    log.info(
        "planted subnetwork: IoU %.3f (precision %.3f, recall %.3f) in %d steps, %.1f s",
        res["iou"],
        res["precision"],
        res["recall"],
        res["steps"],
        res["seconds"],
    )
    return res


@torch.no_grad()
def mask_sanity(su: Setup) -> MaskGaps:
    """Masks leave the base alone and act as specified: all-ones = base, all-zeros = zeroed
    weights, base weights unchanged. (That random controls keep each matrix's count and that a
    complement partitions the weights hold by construction: unit tests check them.)"""
    root, sites = native(su.m), su.sites
    x = su.eval_tokens[:8].to(su.m.device)
    base_logits = logits_of(root(x))
    with Mask.ones(sites).apply(su.m):
        ones_gap = float((logits_of(root(x)) - base_logits).abs().max())
    with Mask.zeros(sites).apply(su.m):
        zeros_logits = logits_of(root(x))
    saved = {s.key: root.get_submodule(s.path).weight.detach().clone() for s in sites}
    try:
        for s in sites:
            root.get_submodule(s.path).weight.zero_()
        zeros_gap = float((logits_of(root(x)) - zeros_logits).abs().max())
    finally:
        for s in sites:
            root.get_submodule(s.path).weight.copy_(saved[s.key])
    base_gap = max(
        float((v - su.base_state[k]).abs().max())
        for k, v in root.state_dict().items()
        if v.is_floating_point()
    )
    return MaskGaps(ones=ones_gap, zeros=zeros_gap, base=base_gap)


def l0_mlp_margin(by_component: dict[str, float]) -> float:
    """Kept density of layer 0's MLP minus the densest other component (attn / mlp per layer)."""
    others = [v for c, v in by_component.items() if c != "L0.mlp"]
    return by_component.get("L0.mlp", float("nan")) - max(others, default=float("nan"))


def size_point(name: str, config: Config, lam: float) -> SizePoint:
    """One bigram mask on another LM at ``lam``: its r, kept fraction and layer-0 MLP margin."""
    m = interp.load_model(name, device=config.device)
    # a zoo LM reads its own recipe's corpus split; any other model the configured corpus
    reset = (
        {"corpus": None, "max_chars": None, "corpus_seed": None} if name.startswith("zoo:") else {}
    )
    streams = corpus_streams(config.model_copy(update={"model": name, **reset}), m)
    seq_len = min(config.seq_len, m.cfg.n_ctx)
    bigram = Bigram.from_tokens(streams.train, vocab_size=m.cfg.d_vocab)
    res = train_mask(
        m,
        lm_batches(streams.train, seq_len, config.batch_size, config.seed * 1000 + 500),
        bigram.target_fn(m.device),
        mask_config(config, lam),
        desc=f"bigram mask {name}",
    )
    eval_tokens = windows(streams.heldout, config.n_eval, seq_len, config.seed + 1)
    r = pearson_finite(surprisals(m, eval_tokens, res.mask), bigram.surprisal(eval_tokens))
    comp = res.mask.by_component()
    return SizePoint(
        model=name,
        n_layers=m.n_layers,
        kept_fraction=res.mask.kept_fraction,
        r=r,
        by_component=comp,
        l0_mlp_margin=l0_mlp_margin(comp),
    )
