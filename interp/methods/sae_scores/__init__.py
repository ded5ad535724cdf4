"""Circuit discovery with discrete SAE codes (O'Neill & Bui 2024), our scorers, and metrics.

Modules: ``codes.py`` (features, SAE codes), ``scorers.py`` (the scores and their nulls),
``metrics.py`` (ROC AUC and friends), ``family.py`` (the head-scorer registry: one signature
for every scorer the analysis runs, SAE-based or not).

Pipeline on any TransformerLens model and paired prompts (:mod:`interp.data.sae_circuits`):

1. per (prompt, position, head): what the head writes to the residual stream
   (:func:`interp.methods.patching.head_outputs`), read by :func:`select_positions` as the
   paper does (mean over positions), at the answer position, or per position:
   ``[2N, slots, heads, d_model]``;
2. one SAE shared by all heads (and positions) trained on a few prompts' vectors; its FVU is
   also measured on the prompts it did not see (:func:`sae_codes`);
3. a (prompt, slot, head) *code* is its most active latent (``[2N, slots, heads]`` ints);
4. scores per head:

   - :func:`paper_node_scores`: number of codes seen in positives and never in negatives,
     softmaxed across heads (the paper's node score);
   - :func:`paper_edge_scores`: per ordered head pair, the number of code pairs that co-occur
     in positives and never in negatives; pairs ranked, and a head scored by how many of the
     top ``heads**2 // 2`` list entries it takes (the paper's edge-based head score, ties
     shared neutrally);
   - :func:`code_shift_scores` (ours): does the head's code distribution differ between
     positives and negatives? A chi-squared (or mutual-information) statistic against a
     paired permutation null (labels flipped within pairs), reported as a z-score;
   - :func:`paired_shift_scores` on :func:`code_flip_grams` (ours, paired): does the head's
     code flip the same way from each positive to its counterfactual? Sign-flip null; on
     :func:`feature_diff_grams` the same statistic on the raw output differences (no SAE);
   - :func:`latent_attribution` (ours): each latent's change weighted by its effect on the
     metric (decoder row . gradient from :func:`output_grads`).

Multi-slot codes are scored row-wise by :func:`pool_positions` (a code is keyed by its slot).
:func:`planted_features` builds a positive control whose answer is known;
:func:`relabel_across_pairs` the null control's labels (random halves, random pairs).

Metrics, thin wrappers over scikit-learn and scipy: :func:`roc_auc` (ties get half credit),
:func:`roc_curve`, :func:`spearman`, :func:`best_f1`. The permutation null of
:func:`code_shift_scores` is ours: it scores every permutation and head in one array
operation (its chi-squared and mutual information equal ``scipy.stats.chi2_contingency``
without continuity correction and ``sklearn.metrics.mutual_info_score``; the tests check).
"""

from interp.methods.sae_scores.codes import FEATURES, pool_positions, sae_codes, select_positions
from interp.methods.sae_scores.family import (
    Scored,
    ScoreInput,
    Scorer,
    get,
    labels,
    magnitude,
    names,
    register,
)
from interp.methods.sae_scores.metrics import (
    Timer,
    best_f1,
    roc_auc,
    roc_curve,
    spearman,
    top_fraction,
)
from interp.methods.sae_scores.scorers import (
    code_flip_grams,
    code_shift_scores,
    feature_diff_grams,
    latent_attribution,
    null_summary,
    output_grads,
    pair_rows,
    paired_shift_scores,
    paper_edge_scores,
    paper_node_scores,
    planted_features,
    relabel_across_pairs,
    shuffled_labels,
)

__all__ = [
    "FEATURES",
    "Scored",
    "Scorer",
    "ScoreInput",
    "Timer",
    "best_f1",
    "code_flip_grams",
    "code_shift_scores",
    "feature_diff_grams",
    "get",
    "labels",
    "latent_attribution",
    "magnitude",
    "names",
    "null_summary",
    "output_grads",
    "pair_rows",
    "paired_shift_scores",
    "paper_edge_scores",
    "paper_node_scores",
    "planted_features",
    "pool_positions",
    "register",
    "relabel_across_pairs",
    "roc_auc",
    "roc_curve",
    "sae_codes",
    "select_positions",
    "shuffled_labels",
    "spearman",
    "top_fraction",
]
