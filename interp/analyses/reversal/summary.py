"""The run's arrays (one block per variant, objective and seed) and the per-model summary the
claims read."""

from __future__ import annotations

import numpy as np

from interp.analyses.reversal.config import PROBE_KINDS, Config
from interp.analyses.reversal.stats import reverse, reverse_logprob_test, same_direction
from interp.analyses.reversal.types import Arrays, Evaluations, ModelSummary
from interp.data.reversal import DIRECTIONS, GROUPS, SPLITS


def stack_arrays(config: Config, ev: Evaluations) -> Arrays:
    """The run's arrays (in place: NaN for causal models; probes padded with NaN past a
    shallower model's last layer)."""
    n_var, n_obj, S = len(config.variants), len(config.objectives), config.n_seeds
    n_layers = max(row.n_layers for row in ev.models)
    acc = np.full((n_var, n_obj, S, len(DIRECTIONS), len(GROUPS), len(SPLITS)), np.nan)
    acc_in_place = np.full_like(acc, np.nan)
    probe = np.full((n_var, n_obj, S, len(DIRECTIONS), len(PROBE_KINDS), n_layers + 1), np.nan)
    lp_correct, lp_random, pair_group = {}, {}, {}
    for vi, variant in enumerate(config.variants):
        n_pairs = len(ev.facts_of[variant].pairs)
        lp_c = np.full((n_obj, S, len(DIRECTIONS), len(SPLITS), n_pairs), np.nan)
        lp_r = np.full_like(lp_c, np.nan)
        for oi, objective in enumerate(config.objectives):
            for k in range(S):
                e = ev.evals[(variant, objective, config.seed + k)]
                acc[vi, oi, k] = e.accuracy
                acc_in_place[vi, oi, k] = e.accuracy_in_place
                probe[vi, oi, k, :, :, : e.probe.shape[-1]] = e.probe
                lp_c[oi, k], lp_r[oi, k] = e.lp_correct, e.lp_random
        lp_correct[variant], lp_random[variant] = lp_c, lp_r
        pair_group[variant] = np.array([GROUPS.index(p.group) for p in ev.facts_of[variant].pairs])
    return Arrays(acc, acc_in_place, probe, lp_correct, lp_random, pair_group)


def summarise(config: Config, arrays: Arrays, ev: Evaluations) -> dict[str, ModelSummary]:
    """Per ``variant/objective``: accuracy in the trained and the reverse direction (order
    swapped and, for masked models, in place; training templates and held-out paraphrases),
    the reverse log-prob tests, last-layer probes, chance."""
    acc, acc_ip, probe = arrays.accuracy, arrays.accuracy_in_place, arrays.probe_accuracy
    summary: dict[str, ModelSummary] = {}
    for vi, variant in enumerate(config.variants):
        facts = ev.facts_of[variant]
        group_size = len(facts.group_pairs("name_first"))
        for oi, objective in enumerate(config.objectives):
            a, ip = acc[vi, oi], acc_ip[vi, oi]  # [seed, D, G, S]
            masked = objective != "clm"
            summary[f"{variant}/{objective}"] = ModelSummary(
                same_direction_train=float(same_direction(a, 0).mean()),
                reverse_train=float(reverse(a, 0).mean()),
                reverse_in_place_train=float(reverse(ip, 0).mean()) if masked else None,
                same_direction_heldout_paraphrase=float(same_direction(a, 1).mean()),
                reverse_heldout_paraphrase=float(reverse(a, 1).mean()),
                reverse_in_place_heldout_paraphrase=(
                    float(reverse(ip, 1).mean()) if masked else None
                ),
                logprob=reverse_logprob_test(
                    arrays.logprob_correct[variant][oi],
                    arrays.logprob_random[variant][oi],
                    facts,
                    config.equivalence_margin,
                ),
                probe_last_layer_trained=float(np.nanmean(probe[vi, oi, :, :, 0, -1])),
                probe_last_layer_untrained=float(np.nanmean(probe[vi, oi, :, :, 1, -1])),
                chance=1.0 / group_size,
            )
    return summary
