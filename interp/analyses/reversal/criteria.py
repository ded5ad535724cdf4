"""The reversal criteria: per variant and objective, the model's own same-direction sanity,
then its reverse claims, each read only if that sanity holds (else reported with no value)."""

from __future__ import annotations

import numpy as np

from interp.analyses.reversal.config import Config
from interp.analyses.reversal.types import ModelSummary
from interp.data.reversal import OBJECTIVE_NAMES, FactSet
from interp.results import Result

# (name, value, op, threshold, description) of one claim
Claim = tuple[str, float | None, str, float, str]
SWAPPED = "order swapped: the asked entity ends a sentence of the never-trained order"
IN_PLACE = "in place: the asked entity masked inside its trained sentence"


def add_criteria(
    result: Result, cfg: Config, summary: dict[str, ModelSummary], facts_of: dict[str, FactSet]
) -> None:
    """Per variant and objective: the model's own same-direction sanity, then its reverse
    claims, each read only if that sanity holds (else reported with no value)."""
    for variant in cfg.variants:
        n_group = len(facts_of[variant].group_pairs("name_first"))
        chance = 1.0 / n_group
        # binomial 2-sigma bound on the accuracy of guessing among the group, over the
        # reversed pairs (two one-direction groups) and seeds
        bound = chance + 2 * np.sqrt(chance * (1 - chance) / (2 * n_group * cfg.n_seeds))
        for objective in cfg.objectives:
            s = summary[f"{variant}/{objective}"]
            prefix = "causal" if objective == "clm" else objective
            label = OBJECTIVE_NAMES.get(objective, objective)
            fwd = s.same_direction_train
            result.add_criterion(
                f"{prefix}_same_direction_accuracy_{variant}",
                fwd,
                ">=",
                cfg.same_direction_min,
                kind="sanity",
                description=f"{variant}-level facts: {label} exact match in the "
                "trained direction on training templates (else undertrained: its reverse "
                "accuracy is not read)",
            )
            read = fwd >= cfg.same_direction_min
            claims = reverse_claims(variant, objective, s, float(bound), n_group, cfg)
            for name, value, op, threshold, text in claims:
                if not read:
                    value = None
                    text = (
                        f"not read: same-direction accuracy {fwd:.2f} < "
                        f"{cfg.same_direction_min}. {text}"
                    )
                result.add_criterion(name, value, op, threshold, kind="claim", description=text)


def reverse_claims(
    variant: str, objective: str, s: ModelSummary, bound: float, n_group: int, cfg: Config
) -> list[Claim]:
    """One model's reverse claims (the causal LM, MLM-U, or the 15% masked LM)."""
    if objective == "clm":
        return _causal_claims(variant, s, bound, n_group, cfg)
    if objective == "mlmu":
        return [
            (
                f"mlmu_reverse_accuracy_{variant}",
                s.reverse_train,
                ">=",
                0.5,
                f"{variant}-level: MLM-U exact match in the untrained direction ({SWAPPED}), "
                "training templates",
            ),
            (
                f"mlmu_reverse_in_place_accuracy_{variant}",
                s.reverse_in_place_train,
                ">=",
                0.5,
                f"{variant}-level: MLM-U exact match in the untrained direction ({IN_PLACE}), "
                "training templates",
            ),
        ]
    return _mlm15_claims(variant, s, cfg)


def _causal_claims(
    variant: str, s: ModelSummary, bound: float, n_group: int, cfg: Config
) -> list[Claim]:
    eq, above = s.logprob.equivalence, s.logprob.above
    lo, hi = above.ci95
    return [
        (
            f"causal_reverse_accuracy_{variant}",
            s.reverse_train,
            "<=",
            bound,
            f"{variant}-level: causal LM exact match in the untrained direction ({SWAPPED}), "
            f"training templates; at chance (1/{n_group}, bound = chance + 2 SE)",
        ),
        (
            f"causal_reverse_logprob_not_above_random_{variant}",
            above.p_above,
            ">=",
            0.05,
            f"{variant}-level, Berglund et al.'s test: one-sided paired t-test p that the correct "
            f"target's log-prob in the untrained direction is above a random same-group "
            f"target's (n = {eq.n} pairs; mean {eq.mean_diff:+.3f} nats, 95% CI [{lo:+.3f}, "
            f"{hi:+.3f}]); not significant: the curse holds. Power: a true difference of "
            f"{above.detectable_nats:.3f} nats would be found 80% of the time. (TOST "
            f"equivalence within +-{cfg.equivalence_margin:.3f} nats, stricter: p "
            f"{eq.p_equivalence:.3g}; Wilcoxon p {s.logprob.p:.3g})",
        ),
    ]


def _mlm15_claims(variant: str, s: ModelSummary, cfg: Config) -> list[Claim]:
    if variant == "text":  # multi-token entities: the paper's finding is no forward/backward gap
        fwd, rev = s.same_direction_train, s.reverse_in_place_train
        return [
            (
                "mlm15_forward_reverse_gap_text",
                abs(fwd - rev),
                "<=",
                cfg.mlm15_gap_max,
                f"text-level (multi-token): |forward {fwd:.3f} - reverse {rev:.3f}| of the 15% "
                f"masked LM, both asked {IN_PLACE}; Kitouni et al.: a fixed-rate MLM shows no "
                "forward/backward gap (and is weak both ways). Order swapped reverse: "
                f"{s.reverse_train:.3f}",
            )
        ]
    return [
        (
            "mlm15_reverse_accuracy_token",
            s.reverse_train,
            ">=",
            0.5,
            "token-level (single-token entities): a BERT-style 15% masked LM was reported "
            f"immune ({SWAPPED}; >= 50%)",
        ),
        (
            "mlm15_reverse_in_place_accuracy_token",
            s.reverse_in_place_train,
            ">=",
            0.5,
            "token-level: a single-token entity is one masked slot, as in training "
            f"({IN_PLACE}; >= 50%)",
        ),
    ]
