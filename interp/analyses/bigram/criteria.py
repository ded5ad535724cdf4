"""The metrics of a bigram run and its sanity and claim criteria (the names and keys saved runs
and the dashboard read)."""

from __future__ import annotations

from interp.analyses.bigram.config import Config
from interp.analyses.bigram.measures import pearson_finite
from interp.analyses.bigram.steps import l0_mlp_margin
from interp.analyses.bigram.types import Measured, Setup
from interp.methods.planted import PLANTED_IOU
from interp.results import Result


def add_metrics(result: Result, su: Setup, config: Config, d: Measured) -> None:
    """The run's metrics (``metrics.json``)."""
    m, mask, chosen = su.m, d.mask, d.chosen
    result.metrics.update(
        {
            "model": m.model_id,
            "corpus": su.streams.source.as_json(),
            "n_maskable": sum(s.size for s in su.sites),
            "n_sites": len(su.sites),
            "vocab": m.cfg.d_vocab,
            "seq_len": su.seq_len,
            "train_tokens": int(len(su.streams.train)),
            "heldout_tokens": int(len(su.streams.heldout)),
            "sweep": [p.as_json() for p in d.sweep],
            "chosen_lambda": d.lam,
            "chosen_kept_fraction": mask.kept_fraction,
            "chosen_r": chosen.r,
            "chosen_r_soft": chosen.r_soft,
            "chosen_converged": bool(chosen.stopped_early),
            "n_masks_converged": sum(bool(p.stopped_early) for p in d.sweep),
            "full_model_r": pearson_finite(d.full_s, su.bigram_s),
            "surprisal": d.table.as_json(),
            "removal": d.table.removal.as_json(),
            "overlap": d.overlap.as_json() if d.overlap else {},
            "kept_by_component": mask.by_component(),
            "kept_by_layer": {str(k): v for k, v in mask.by_layer().items()},
            "kept_by_matrix": mask.by_matrix(),
            "residual": {who: rm.as_json() for who, rm in d.resid.items()},
            "size_models": [sp.as_json() for sp in d.sizes],
            "temperature_growth": config.temperature_growth,
            "seconds": d.seconds,
            "zero_mask_floor": d.floor.as_json(),
            "planted_recovery": d.planted,
            "chosen_r_minus_floor_r": chosen.r - d.floor.r,
        }
    )


def add_sanity(result: Result, d: Measured) -> None:
    """Masks act as specified and the mask trainer recovers a planted subnetwork."""
    add = result.add_criterion
    add(
        "hard_ones_mask_equals_base",
        d.gaps.ones,
        "<=",
        0.0,
        kind="sanity",
        description="max |logits with an all-ones hard mask - base logits|",
    )
    add(
        "zeros_mask_equals_zeroed_weights",
        d.gaps.zeros,
        "<=",
        0.0,
        kind="sanity",
        description="max |logits with an all-zeros mask - logits with those matrices zeroed|",
    )
    add(
        "base_weights_unchanged",
        d.gaps.base,
        "<=",
        0.0,
        kind="sanity",
        description="max |base weight after the run - before| (masks never write weights)",
    )
    if d.planted:
        pl = d.planted
        add(
            "planted_subnetwork_recovered",
            pl["iou"],
            ">=",
            PLANTED_IOU,
            kind="sanity",
            description=f"IoU of the weights the mask trainer keeps on a model with a planted "
            f"bigram subnetwork ({pl['n_planted']} of {pl['n_maskable']} weights) vs "
            f"the planted set (precision {pl['precision']:.3f}, recall "
            f"{pl['recall']:.3f})",
        )


def _convergence(d: Measured) -> str:
    """How each mask of the sweep ended (in the description of ``sparse_subnetwork_r``)."""
    return ", ".join(
        f"lambda {p.lam:g}: "
        f"{'stopped by the rule' if p.stopped_early else 'NOT converged'} "
        f"at step {p.steps}, kept {p.kept_fraction:.2%}, r {p.r:.3f} (soft mask r_soft "
        f"{p.r_soft:.3f}), undecided/kept {p.final_undecided_per_kept or float('nan'):.3f}"
        for p in d.sweep
    )


def add_fit_claims(result: Result, config: Config, d: Measured) -> None:
    """The subnetwork fits the bigram model: r among sparse converged masks, above the floor."""
    sparse_r = max([d.sweep[i].r for i in d.choice.sparse_ok], default=None)
    not_read = (
        ""
        if d.choice.sparse_ok
        else f"; not read: no sparse mask converged within {config.mask_steps} steps"
    )
    result.add_criterion(
        "sparse_subnetwork_r",
        sparse_r,
        ">=",
        0.9,
        kind="claim",
        description=(
            "best surprisal r (hard mask) with the bigram model among converged masks "
            f"(the paper's stop rule fired) keeping <= {config.max_kept:.0%} of maskable "
            f"weights{not_read}. {_convergence(d)}"
        ),
    )
    result.add_criterion(
        "subnetwork_beats_zero_mask_floor",
        d.chosen.r - d.floor.r,
        ">",
        0.0,
        kind="claim",
        description=f"surprisal r of the chosen subnetwork minus r of the model with "
        f"nothing kept in the blocks (floor r {d.floor.r:.3f}, "
        f"loss {d.floor.loss:.2f} nats)",
    )


def add_structure_claims(result: Result, d: Measured) -> None:
    """Where the subnetwork lives, and that it is necessary, sufficient and pruning-like."""
    add = result.add_criterion
    add(
        "layer0_mlp_densest",
        l0_mlp_margin(d.mask.by_component()),
        ">",
        0.0,
        kind="claim",
        description="kept density of layer-0 MLP minus the densest other layer component "
        "(attn / mlp per layer) of the chosen subnetwork",
    )
    add(
        "subnetwork_far_below_random",
        d.table.random_subnetwork - d.table.subnetwork,
        ">=",
        1.0,
        kind="claim",
        description="held-out surprisal of random same-structure subnetworks minus "
        "the bigram subnetwork alone (nats)",
    )
    rm = d.table.removal
    add(
        "removal_hurts_more_than_random",
        rm.p_t,
        "<",
        0.05,
        kind="claim",
        description=f"one-sided one-sample t-test p that {rm.n_random} random same-structure "
        f"removals lose less than removing the subnetwork ({rm.subnetwork_removed:.3f} "
        f"vs {rm.random_mean:.3f} ± {rm.random_std:.3f} nats; exact rank p "
        f"{rm.p_rank:.3g})",
    )
    if d.overlap:
        add(
            "overlap_with_pruning_mask_p",
            d.overlap.p_value,
            "<",
            0.01,
            kind="claim",
            description=f"one-sided p of the overlap with the optimal-pruning mask against "
            f"{len(d.overlap.null)} within-matrix row shuffles",
        )
    for sp in d.sizes:
        add(
            f"layer0_mlp_densest@{sp.model}",
            sp.l0_mlp_margin,
            ">",
            0.0,
            kind="claim",
            description=f"layer-0 MLP density margin for {sp.model} (one mask at lambda {d.lam:g})",
        )


def add_metrics_and_criteria(result: Result, su: Setup, config: Config, d: Measured) -> None:
    """The run's metrics and its sanity and claim criteria, in the order runs have saved them."""
    add_metrics(result, su, config, d)
    add_sanity(result, d)
    # rows are normalised counts (or a normalised backoff row): they sum to one by construction,
    # so this is a metric and a unit test (tests/data/test_bigram.py), not a criterion
    result.metrics["bigram_max_row_sum_error"] = su.bigram.max_row_sum_error()
    add_fit_claims(result, config, d)
    add_structure_claims(result, d)
