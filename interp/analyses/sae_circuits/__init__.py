"""Circuit discovery with discrete SAE codes vs patching baselines (O'Neill & Bui 2024).

Per model and task (paired prompts from :mod:`interp.data.sae_circuits`): the ground truth is a
sparse circuit, the top few heads by exact activation patching of ``hook_z`` from the paired
counterfactual on held-out prompts (and, with ``edge_truth``, a sparse circuit of head -> head
edges estimated by EAP-IG); every registered head scorer
(:mod:`interp.methods.sae_scores.family`: the paper's node and edge scores from one SAE shared
by all heads, our scorers, the patching baselines) runs on the same ``n_prompts`` pairs over
``n_seeds`` draws, each also under a null control (labels and pairs redrawn across prompt pairs,
scores recomputed); metrics are ROC AUC per circuit size, Spearman with the effects,
precision/recall, wall time, AUC vs SAE prompts and width, edge-level AUC. Claims are the
paper's two (node and edge AUC); our scorers are extra metrics.

Modules, in the order :func:`run` uses them: ``config.py`` (:class:`Config`, method names),
``truth.py`` (ground truth, attribution check), ``scoring.py`` (one prompt draw: model data,
every scorer, the planted control), ``cells.py`` (one model and task; every cell), ``summary.py``
(metrics, criteria, per-head arrays); the figures are :func:`interp.plotting.sae_circuits.
run_figures`.
"""

from __future__ import annotations

import time

from interp.analyses import register
from interp.analyses.sae_circuits.cells import GRIDS, Cell, Grids, score_all
from interp.analyses.sae_circuits.config import Config, method_names
from interp.analyses.sae_circuits.summary import add_criteria, per_head_arrays, summarise
from interp.results import Result

__all__ = [
    "GRIDS",
    "Cell",
    "Config",
    "Grids",
    "add_criteria",
    "method_names",
    "per_head_arrays",
    "run",
    "summarise",
]


@register(
    "sae_circuits",
    Config,
    title="Circuit discovery with discrete SAEs vs patching",
    paper="O'Neill & Bui 2024, Sparse Autoencoders Enable Scalable and Reliable Circuit "
    "Identification in Language Models (charlieoneill11/sae-circuits)",
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
    """The paper's SAE node/edge scores, our paired scorers and the SAE-free controls on the
    chosen head features, against a patching ground truth; activation patching on other prompts
    as its retest ceiling."""
    from interp.methods.sae_scores import family
    from interp.plotting.sae_circuits import run_figures
    from interp.utils import seed_everything

    seed_everything(config.seed)
    t_start = time.time()
    grids, cells = score_all(config)
    result = Result("sae_circuits")
    result.metrics.update(
        {**summarise(config, grids, cells), "total_seconds": time.time() - t_start}
    )
    add_criteria(result, config, grids)
    result.arrays.update({**grids.arrays(), **per_head_arrays(config, cells)})
    P, Q = config.primary_features, config.paper_features
    per_mode = [s for s in config.scorers if family.get(s).per_mode]
    shown = [f"{s}.{P}" for s in per_mode] + [f"paper_node.{Q}", f"paper_edge.{Q}"]
    shown += [s for s in config.scorers if family.get(s).needs_model and s in config.methods]
    labels = {**result.metrics["labels"], "ground_truth": "ground truth |effect|"}
    figs = run_figures(config, result.metrics, cells, list(dict.fromkeys(shown)), labels)
    result.figures.update(figs)
    return result
