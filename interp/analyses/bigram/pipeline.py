"""``run(config)``: the bigram analysis as a list of steps (:mod:`.steps`), then its metrics and
criteria (:mod:`.criteria`), arrays and figures."""

from __future__ import annotations

import logging
import time

import numpy as np

from interp.analyses import register
from interp.analyses.bigram.config import Config
from interp.analyses.bigram.criteria import add_metrics_and_criteria
from interp.analyses.bigram.measures import surprisals
from interp.analyses.bigram.steps import (
    all_residual_maps,
    choose,
    lambda_sweep,
    mask_sanity,
    planted_check,
    pruning_overlap,
    setup,
    size_point,
    surprisal_table,
    zero_mask_floor,
)
from interp.analyses.bigram.types import Measured, Setup
from interp.results import Result
from interp.utils import seed_everything

log = logging.getLogger(__name__)

PAPER = (
    "Chang & Bergen 2025, Bigram subnetworks: mapping to next tokens in transformer language models"
)


@register(
    "bigram",
    Config,
    title="Bigram subnetworks (continuous-sparsification masks)",
    paper=PAPER,
    figure_order=(
        "sweep",
        "density",
        "surprisal_table",
        "residual",
        "overlap_null",
        "head_density",
    ),
)
def run(config: Config) -> Result:
    """Lambda sweep of bigram masks, necessity/sufficiency, pruning overlap, residual maps."""
    t_start = time.time()
    seed_everything(config.seed)
    su = setup(config)
    full_s = surprisals(su.m, su.eval_tokens)
    floor = zero_mask_floor(su)
    sweep, masks = lambda_sweep(su, config)
    choice = choose(sweep, config.max_kept)
    mask, lam = masks[choice.best], config.lambdas[choice.best]
    log.info("chosen subnetwork: lambda %g (%s)", lam, mask)
    randoms = [mask.shuffled(config.seed * 7919 + j) for j in range(config.n_random)]
    removal_randoms = [
        mask.shuffled(config.seed * 7919 + 104_729 + j) for j in range(config.n_random_removal)
    ]
    table = surprisal_table(su, full_s, mask, randoms, removal_randoms)
    overlap = pruning_overlap(su, config, mask, lam)
    resid = all_residual_maps(su, config, mask, randoms[0])
    gaps = mask_sanity(su)
    planted = planted_check(config)
    sizes = [size_point(name, config, lam) for name in config.size_models]
    measured = Measured(
        full_s=full_s,
        sweep=sweep,
        choice=choice,
        mask=mask,
        lam=lam,
        table=table,
        overlap=overlap,
        resid=resid,
        gaps=gaps,
        sizes=sizes,
        floor=floor,
        planted=planted,
        seconds=time.time() - t_start,
    )
    result = Result("bigram")
    add_metrics_and_criteria(result, su, config, measured)
    add_arrays_and_figures(result, su, config, measured)
    return result


def add_arrays_and_figures(result: Result, su: Setup, config: Config, d: Measured) -> None:
    """The sweep, density, null and residual-map arrays, the mask bits, and the figures."""
    # plotly loads in about a second: imported here, so `interp list` (which imports every
    # analysis) and runs without figures do not pay for it
    from interp.plotting import bigram as plots

    mask, sweep = d.mask, d.sweep
    density_table, layers, mats = mask.layer_matrix_table()
    result.arrays.update(
        {
            "sweep_kept_fraction": np.array([p.kept_fraction for p in sweep]),
            "sweep_r": np.array([p.r for p in sweep]),
            "sweep_lambda": np.array(config.lambdas, dtype=float),
            "density_layer_matrix": density_table,
            "overlap_null": d.overlap.null if d.overlap else np.zeros(0),
            "removal_random_losses": np.asarray(d.table.removal.random_removed),
            "subnetwork_mask_bits": np.packbits(
                np.concatenate([mask.values[s.key].numpy().ravel() for s in su.sites])
            ),
            **{
                f"resid_{who}_{part}": values
                for who, rm in d.resid.items()
                for part, values in (("recall", rm.recall), ("final_r", rm.final_r))
            },
        }
    )
    heads = mask.by_head()
    result.figures.update(
        {
            "sweep": plots.sweep_figure(
                result.arrays["sweep_kept_fraction"],
                result.arrays["sweep_r"],
                config.lambdas,
                chosen=d.choice.best,
                r_soft=[p.r_soft for p in sweep],
                floor_r=d.floor.r,
            ),
            "density": plots.density_heatmap(density_table, layers, mats),
            "surprisal_table": plots.surprisal_bars(d.table.rows(), d.table.bigram_model_finite),
            "residual": plots.residual_figure(
                {who: rm.recall for who, rm in d.resid.items()},
                {who: rm.final_r for who, rm in d.resid.items()},
                config.recall_k,
            ),
        }
    )
    if heads:
        result.figures["head_density"] = plots.head_density(heads)
    if d.overlap:
        result.figures["overlap_null"] = plots.null_histogram(
            d.overlap.null, d.overlap.observed, d.overlap.p_value
        )
