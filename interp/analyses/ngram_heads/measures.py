"""What the n-gram heads analysis measures on the models: next-token probabilities, n-gram
head scores, head ablation, the fused LSTM check, the example pattern and the count probes."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from interp.analyses.ngram_heads.config import Config
from interp.analyses.ngram_heads.prompts import causal_uniform, loop_2gram_pattern
from interp.analyses.ngram_heads.types import (
    ExampleAttention,
    HeadAblation,
    HeadScores,
    NgramHeads,
    PromptSet,
)
from interp.data.ngram_heads import (
    PAD,
    TOKEN_STRINGS,
    NextToken,
    next_token_metrics,
    ngram_counts,
    scored_positions,
)
from interp.methods.heads import (
    ablation_edits,
    ablation_significance,
    best_ngram_head,
    empty_head_edits,
    head_means,
    length_batches,
    model_head_scores,
    ngram_head_scores,
    pattern_hooks,
    random_head_sets,
    rank_ngram_heads,
)
from interp.methods.probes import ridge_r2
from interp.models.ngram_layer import ngram_pattern
from interp.tracing.trace import trace

if TYPE_CHECKING:
    from interp.tracing.model import Model

log = logging.getLogger(__name__)


def mean(x: torch.Tensor) -> float:
    """Mean over the scored entries (NaN elsewhere), in float64."""
    return float(torch.nanmean(x.double()))


def by_position(x: torch.Tensor) -> np.ndarray:
    """Mean over prompts at each position of ``x [n, T]`` (NaN where no prompt is scored)."""
    return torch.nanmean(x, dim=0).numpy()


def model_probs(
    m: Model,
    tokens: torch.Tensor,
    lengths: np.ndarray,
    batch_size: int,
    edits: dict[str, Any] | None = None,
) -> torch.Tensor:
    """Next-token softmax ``[n, T, vocab]`` of model ``m`` on the test prompts."""
    out = torch.zeros(*tokens.shape, len(TOKEN_STRINGS))
    for idx in length_batches(lengths, batch_size):
        T = int(lengths[idx].max())
        idx = torch.as_tensor(idx)
        logits, _ = trace(m, tokens[idx, :T], edits=edits)
        out[idx, :T] = logits.float().softmax(-1).cpu()[..., : len(TOKEN_STRINGS)]
    return out


def model_evals(models: dict[str, Model], ps: PromptSet, batch_size: int) -> dict[str, NextToken]:
    """Accuracy and TVD per position of each model."""
    evals = {}
    for key, m in models.items():
        probs = model_probs(m, ps.tokens, ps.lengths, batch_size)
        evals[key] = next_token_metrics(probs, ps.valid, ps.scored)
        log.info("%s: accuracy %.3f, TVD %.3f", key, mean(evals[key].correct), mean(evals[key].tvd))
    return evals


def _ngram_layer_err(
    lstm_ng: Model, x: torch.Tensor, known: torch.Tensor, layer_scores: HeadScores
) -> float | None:
    """The LSTM's hard-wired m=1 layer, read through its hook, against the plain-loop 2-gram
    head, and its 2-gram mass over all test prompts (None without an m=1 layer)."""
    orders = list(getattr(getattr(lstm_ng.module, "spec", None), "ngram_orders", []))
    if 1 not in orders:
        return None
    hook = pattern_hooks(lstm_ng)[orders.index(1)]
    _, got = trace(lstm_ng, x, capture=[hook])
    return max(
        float((got[hook][:, 0].float().cpu() - known[:, 0]).abs().max()),
        abs(float(layer_scores[2]["mass"][orders.index(1), 0]) - 1.0),
    )


def ngram_heads_of(tf: Model, lstm_ng: Model, ps: PromptSet, batch_size: int) -> NgramHeads:
    """n-gram head scores of the transformer (and of the LSTM's hard-wired n-gram layers),
    the best head in layers >= 1, and the scorer's error on patterns whose answer is known."""
    scores = model_head_scores(tf, ps.tokens, ps.lengths, batch_size, pad_id=PAD)
    best = best_ngram_head(scores, min_layer=1 if tf.n_layers > 1 else 0)
    log.info("best n-gram head in layers >= 1: %s", best)
    # a perfect 2-gram head (built by a plain loop, not by the scorer's own ngram_pattern) and
    # uniform causal attention, on these very prompts
    x = ps.tokens[:16]
    known = torch.stack([loop_2gram_pattern(x), causal_uniform(x)], 1)  # [16, 2 heads, T, T]
    hand = ngram_head_scores(x, known, 2, pad_id=PAD)
    layer_scores, layer_err = None, None
    if pattern_hooks(lstm_ng):
        layer_scores = model_head_scores(lstm_ng, ps.tokens, ps.lengths, batch_size, pad_id=PAD)
        layer_err = _ngram_layer_err(lstm_ng, x, known, layer_scores)
    return NgramHeads(
        scores=scores,
        best=best,
        layer_scores=layer_scores,
        ngram_layer_err=layer_err,
        hand_err=max(abs(hand["mass"][0] - 1.0), abs(hand["ratio"][1] - 1.0)),
    )


def head_ablation(tf: Model, ps: PromptSet, scores: HeadScores, config: Config) -> HeadAblation:
    """Accuracy drop when the top n-gram heads are ablated vs random head sets of the same
    size, and the largest change from edits that ablate nothing."""
    a = ps.first(min(config.n_ablation_prompts, len(ps.tokens)))
    means = head_means(tf, a.tokens, a.lengths, config.batch_size, pad_id=PAD)
    ranked = rank_ngram_heads(scores)
    top, others = ranked[: config.top_heads], ranked[config.top_heads :]

    def acc_with(edits: dict[str, Any] | None) -> tuple[float, torch.Tensor]:
        p = model_probs(tf, a.tokens, a.lengths, config.batch_size, edits=edits)
        return mean(next_token_metrics(p, a.valid, a.scored).correct), p

    clean_acc, clean_p = acc_with(None)
    _, noop_p = acc_with(empty_head_edits(tf))
    top_acc, _ = acc_with(ablation_edits(tf, top, means, config.ablation))
    rng = np.random.default_rng([config.seed, 3])
    random_sets = random_head_sets(others, config.top_heads, config.random_draws, rng)
    random_accs = [
        acc_with(ablation_edits(tf, heads, means, config.ablation))[0] for heads in random_sets
    ]
    drop_random = [clean_acc - acc for acc in random_accs]
    test = ablation_significance(clean_acc - top_acc, drop_random)
    log.info(
        "ablation: top heads %s drop %.3f; random drop %.3f (p = %.3g over %d distinct random "
        "sets)",
        top,
        clean_acc - top_acc,
        float(np.mean(drop_random)),
        test["p"],
        test["n"],
    )
    return HeadAblation(
        how=config.ablation,
        top_heads=top,
        clean_accuracy=clean_acc,
        top_accuracy=top_acc,
        drop_top=clean_acc - top_acc,
        random_heads=[[list(h) for h in hs] for hs in random_sets],
        drop_random=drop_random,
        significance=test,
        drop_random_mean=float(np.mean(drop_random)),
        noop_gap=float((noop_p - clean_p).abs().max()),
    )


def lstm_fused_gap(models: dict[str, Model], ps: PromptSet) -> float | None:
    """Max |logits| gap between the fused LSTM path and the unrolled, hooked one (None when no
    LSTM has an unrolled path)."""
    gap = None
    x = ps.tokens[:8, : int(ps.lengths[:8].max())]
    for key in ("lstm", "lstm_ngram"):
        m = models[key]
        h_names = [h for h in m.hook_names if h.endswith("rnn.hook_h")]
        if h_names:
            out_fused, _ = trace(m, x)
            out_unrolled, _ = trace(m, x, capture=h_names)
            g = float((out_fused - out_unrolled).abs().max())
            gap = g if gap is None else max(gap, g)
    return gap


def example_attention(tf: Model, ps: PromptSet, best: dict[str, Any]) -> ExampleAttention:
    """The best head's pattern ``[query, key]`` on a prompt of typical length (at most 64
    tokens), its n-gram matches and the token strings."""
    show = int(np.argsort(np.abs(ps.lengths - np.median(ps.lengths)))[0])
    Ts = int(min(ps.lengths[show], 64))
    x = ps.tokens[show : show + 1, :Ts]
    name = tf.hook("pattern", best["layer"])
    _, acts = trace(tf, x, capture=[name])
    return ExampleAttention(
        pattern=acts[name][0, best["head"]].float().cpu().numpy(),
        matches=(ngram_pattern(x, best["n"] - 1)[0] > 0).numpy(),
        str_tokens=[TOKEN_STRINGS[t] for t in x[0].tolist()],
    )


def _probe_features(
    m: Model,
    tokens: torch.Tensor,
    lengths: np.ndarray,
    batch_size: int,
    pos: np.ndarray,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Each residual read's activations at the positions ``pos [k, 2]`` (prompt, position), in
    batch order, and the order of the rows of ``pos`` they follow."""
    names = m.resid_names()
    feats: dict[str, list[np.ndarray]] = {n: [] for n in names}
    rows = []
    for idx in length_batches(lengths, batch_size):
        sel = np.isin(pos[:, 0], idx)
        if not sel.any():
            continue
        T = int(lengths[idx].max())
        _, acts = trace(m, tokens[torch.as_tensor(idx), :T], capture=names)
        local = {int(r): k for k, r in enumerate(idx)}
        b = torch.as_tensor([local[int(r)] for r in pos[sel, 0]])
        t = torch.as_tensor(pos[sel, 1])
        for n in names:
            feats[n].append(acts[n][b, t].float().cpu().numpy())
        rows.append(np.flatnonzero(sel))
    return {n: np.concatenate(f) for n, f in feats.items()}, np.concatenate(rows)


def ngram_count_probe(
    m: Model,
    tokens: torch.Tensor,
    lengths: np.ndarray,
    batch_size: int,
    ridge: float,
    max_positions: int,
    seed: int,
) -> dict[str, float]:
    """Ridge probes from each residual read (``m.resid_names()``) to the in-context 2-gram
    successor distribution of the current token (normalised counts); R^2 on held-out
    prompts, per hook (:func:`interp.methods.probes.ridge_r2`: unpenalised intercept,
    penalty ``ridge * n_train`` on the weights)."""
    counts = ngram_counts(tokens, 2)  # [n, T, sym]
    tot = counts.sum(-1)
    use = scored_positions(tokens) & (tot > 0)  # [n, T]
    rng = np.random.default_rng([seed, 5])
    train_prompt = rng.random(len(tokens)) < 0.7
    pos = use.nonzero().numpy()  # [k, 2]
    if len(pos) > max_positions:
        pos = pos[np.sort(rng.choice(len(pos), max_positions, replace=False))]
    target = (counts / tot.clamp_min(1)[..., None])[pos[:, 0], pos[:, 1]].numpy()
    feats, order = _probe_features(m, tokens, lengths, batch_size, pos)
    train = train_prompt[pos[order, 0]]
    return {
        n: ridge_r2(X, target[order], train, absolute_ridge_alpha(X[train], ridge))
        for n, X in feats.items()
    }


def absolute_ridge_alpha(X: np.ndarray, ridge: float) -> float:
    """The :mod:`interp.methods.probes` ``alpha`` whose penalty is ``ridge * n`` for the
    ``n`` training rows ``X [n, d]``: this analysis penalises the probe weights by an amount
    that does not scale with the activations (probes' ``alpha`` is relative to the mean
    feature variance), so its R^2 values stay those it always reported."""
    X = X.astype(np.float64)
    # probes' trace(Xc^T Xc) / d
    scale = max(float(((X - X.mean(0)) ** 2).sum() / X.shape[1]), 1e-12)
    return ridge * len(X) / scale
