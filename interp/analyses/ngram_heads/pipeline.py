"""``run(config)``: the n-gram heads analysis as a list of steps, then its metrics and criteria
(:mod:`.criteria`), arrays and figures."""

from __future__ import annotations

import interp
from interp.analyses import register
from interp.analyses.ngram_heads.config import Config
from interp.analyses.ngram_heads.criteria import add_criteria, metrics, versus_baselines
from interp.analyses.ngram_heads.measures import (
    by_position,
    example_attention,
    head_ablation,
    lstm_fused_gap,
    mean,
    model_evals,
    ngram_count_probe,
    ngram_heads_of,
)
from interp.analyses.ngram_heads.prompts import baselines, unseen_prompts
from interp.analyses.ngram_heads.types import Measured
from interp.results import Result
from interp.utils import seed_everything

LABELS = {
    "transformer": "transformer",
    "lstm": "LSTM",
    "lstm_ngram": "LSTM + n-gram",
    "2gram": "in-context 2-gram",
    "3gram": "in-context 3-gram",
    "oracle": "oracle",
}
CURVES = ("transformer", "lstm", "lstm_ngram", "2gram", "3gram")  # by-position plots


@register(
    "ngram_heads",
    Config,
    title="In-context language learning: n-gram heads (transformers vs LSTMs)",
    paper="Akyurek et al. 2024, In-context language learning: architectures and algorithms",
    figure_order=(
        "accuracy_tvd",
        "accuracy_by_position",
        "head_scores",
        "attention",
        "ablation",
        "probe",
    ),
)
def run(config: Config) -> Result:
    """Accuracy and TVD of a transformer, an LSTM and an LSTM with n-gram layers on unseen
    random DFAs; n-gram head scores, head ablation and probes."""
    seed_everything(config.seed)
    result = Result("ngram_heads")
    names = {
        "transformer": config.transformer,
        "lstm": config.lstm,
        "lstm_ngram": config.lstm_ngram,
    }
    ps = unseen_prompts(config, names)
    evals, checks = baselines(ps)
    models = {key: interp.load_model(name, device=config.device) for key, name in names.items()}
    evals.update(model_evals(models, ps, config.batch_size))
    heads = ngram_heads_of(models["transformer"], models["lstm_ngram"], ps, config.batch_size)
    abl = head_ablation(models["transformer"], ps, heads.scores, config)
    lstm_gap = lstm_fused_gap(models, ps)
    probe = {
        key: ngram_count_probe(
            m,
            ps.tokens,
            ps.lengths,
            config.batch_size,
            config.probe_ridge,
            config.max_probe_positions,
            config.seed,
        )
        for key, m in models.items()
    }
    acc = {k: mean(v.correct) for k, v in evals.items()}
    tvd = {k: mean(v.tvd) for k, v in evals.items()}
    d = Measured(
        names=names,
        prompts=ps,
        evals=evals,
        checks=checks,
        lstm_gap=lstm_gap,
        heads=heads,
        ablation=abl,
        probe=probe,
        accuracy=acc,
        tvd=tvd,
        versus=versus_baselines(evals, acc, config.seed),
        example=example_attention(models["transformer"], ps, heads.best),
    )
    result.metrics.update(metrics(d))
    result.metrics["transformer_vs_ngram_baselines"] = d.versus.as_json()
    add_criteria(result, config, d)
    add_arrays_and_figures(result, d)
    return result


def add_arrays_and_figures(result: Result, d: Measured) -> None:
    """Accuracy and TVD by position, head scores, the example pattern, and the figures."""
    # plotly loads in about a second: imported here, so `interp list` (which imports every
    # analysis) does not pay for it
    from interp.plotting import ngram_heads as plots

    curves = {k: by_position(d.evals[k].correct) for k in CURVES}
    tvd_curves = {k: by_position(d.evals[k].tvd) for k in CURVES}
    for k, v in curves.items():
        result.arrays[f"accuracy_by_position_{k}"] = v
        result.arrays[f"tvd_by_position_{k}"] = tvd_curves[k]
    for n, s in d.heads.scores.items():
        for k, v in s.items():
            result.arrays[f"head_{k}_{n}gram"] = v
    ex, best, abl = d.example, d.heads.best, d.ablation
    result.arrays["example_pattern"] = ex.pattern
    result.arrays["example_matches"] = ex.matches
    result.figures.update(
        {
            "accuracy_tvd": plots.accuracy_tvd_bars(
                {LABELS[k]: d.accuracy[k] for k in LABELS}, {LABELS[k]: d.tvd[k] for k in LABELS}
            ),
            "accuracy_by_position": plots.by_position(
                {LABELS[k]: v for k, v in curves.items()},
                {LABELS[k]: v for k, v in tvd_curves.items()},
            ),
            "head_scores": plots.head_score_heatmaps(d.heads.scores),
            "attention": plots.attention_with_matches(
                ex.pattern,
                ex.matches,
                ex.str_tokens,
                f"L{best['layer']}H{best['head']} ({best['n']}-gram matches marked)",
            ),
            "ablation": plots.ablation_bars(abl.drop_top, abl.drop_random, abl.top_heads),
            "probe": plots.probe_r2({LABELS[k]: v for k, v in d.probe.items()}),
        }
    )
