"""Model report: logit lens, attention patterns and per-head ablation on any transformer.

The spine's end-to-end analysis. On held-out text it measures, per layer, how well the
residual stream already predicts the next token when read through the final norm and
unembedding (logit lens), scores every head as previous-token / first-token attention,
and ablates each head in turn (mean or zero ablation of ``hook_z``) to measure the loss
it carries. Sanity criteria check the tracing itself: the lens at the last layer equals
the model's logits, an identity edit changes nothing, attention rows sum to one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated, Literal

import annotated_types as at
import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Float
from pydantic import BaseModel, ConfigDict

import interp
from interp.analyses import register
from interp.data.corpus import load_corpus
from interp.data.sae_circuits import make_task
from interp.fields import (
    MAX_COUNT,
    ConfigError,
    CorpusSource,
    Count,
    Device,
    ModelName,
    Seed,
    check_fits,
    check_seq_len,
)
from interp.methods.lens import residual_stream, unembed
from interp.methods.patching import activation_patching, attribution_patching
from interp.plotting import model_report as plots
from interp.results import Result
from interp.tracing.model import Model
from interp.tracing.trace import edit_heads, trace
from interp.utils import seed_everything

log = logging.getLogger(__name__)


class Config(BaseModel):
    """Settings of the model report."""

    model_config = ConfigDict(extra="forbid")

    model: ModelName = "zoo:code-lm-tiny"
    corpus: CorpusSource = "stdlib"
    n_prompts: Count = 32
    seq_len: Annotated[int, at.Ge(2), at.Le(MAX_COUNT)] = 48
    prompt: str = "def add(a, b):\n    return a + b\n\nx = add(1, 2)\n"
    ablation: Literal["mean", "zero"] = "mean"
    batch_size: Count = 16
    # A circuit task whose heads are found by activation and by attribution patching (per head,
    # counterfactual prompts; interp.data.sae_circuits builds them from the model's tokenizer).
    task: Literal["none", "ioi", "ioi_natural", "greater_than", "induction"] = "none"
    task_prompts: Count = 8
    device: Device = "auto"
    seed: Seed = 0


@dataclass(frozen=True)
class Lens:
    """The logit lens per residual-stream state (row 0 the embedding, row ``l + 1`` the stream
    after block ``l``): next-token loss and top-1 accuracy; ``final_gap``: max |lens - logits|
    at the last layer (must be ~0)."""

    loss: Float[np.ndarray, " states"]
    accuracy: Float[np.ndarray, " states"]
    final_gap: float


@dataclass(frozen=True)
class HeadScores:
    """Per head: mean attention to the previous token and to position 0; the max deviation of
    an attention row's sum from 1."""

    prev_token: Float[np.ndarray, "layers heads"]
    first_token: Float[np.ndarray, "layers heads"]
    row_sum_error: float


@dataclass(frozen=True)
class Ablation:
    """Loss increase per ablated head, the clean loss, and the largest logit change under an
    identity edit of every ``hook_z`` (must be 0)."""

    loss_increase: Float[np.ndarray, "layers heads"]
    clean_loss: float
    identity_gap: float


@dataclass(frozen=True)
class Patterns:
    """Attention patterns on the typed prompt and its string tokens."""

    patterns: Float[np.ndarray, "layers heads query key"]
    str_tokens: list[str]


@dataclass(frozen=True)
class TaskPatching:
    """Per head, the effect on ``metric`` of ``task`` by activation and by attribution
    patching (means over prompts); the clean and corrupt metric per prompt; their Pearson r."""

    task: str
    metric: str
    clean: Float[np.ndarray, " prompts"]
    corrupt: Float[np.ndarray, " prompts"]
    activation: Float[np.ndarray, "layers heads"]
    attribution: Float[np.ndarray, "layers heads"]
    r: float
    example: str


def heldout_tokens(m: Model, corpus: str, n: int, seq_len: int, seed: int) -> torch.Tensor:
    """``[n, seq_len]`` windows of held-out text (BOS first), or random tokens without a
    tokenizer."""
    g = torch.Generator().manual_seed(seed)
    if m.tokenizer is None:
        return torch.randint(0, m.cfg.d_vocab, (n, seq_len), generator=g)
    docs = load_corpus(corpus, max_chars=400_000, seed=0).heldout
    ids = m.tokenizer("\n".join(docs), add_special_tokens=False)["input_ids"]
    stream = torch.tensor(ids, dtype=torch.long)
    if len(stream) < seq_len:
        raise ConfigError(
            f"corpus={corpus!r}: its held-out text has only {len(stream)} tokens; "
            f"seq_len={seq_len} needs more (a bigger corpus, or a shorter seq_len)"
        )
    starts = torch.randint(0, len(stream) - seq_len + 1, (n,), generator=g)
    windows = torch.stack([stream[s : s + seq_len - 1] for s in starts.tolist()])
    bos = m.start_token_id if m.start_token_id is not None else windows[:, :1]
    return torch.cat([torch.full((n, 1), bos) if isinstance(bos, int) else bos, windows], dim=1)


def next_token_loss(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of ``logits[:, :-1]`` against ``tokens[:, 1:]``."""
    return F.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]).float(), tokens[:, 1:].reshape(-1)
    )


def lens_by_layer(m: Model, tokens: torch.Tensor, batch_size: int = 16) -> Lens:
    """Per-layer next-token loss and top-1 accuracy of the logit lens
    (:mod:`interp.methods.lens`: the residual stream read through the model's final norm and
    unembedding), and the max |lens - logits| at the last layer."""
    n_states = len(m.resid_names())
    loss = np.zeros(n_states)
    acc = np.zeros(n_states)
    final_gap = 0.0
    n = 0
    for i in range(0, len(tokens), batch_size):
        x = tokens[i : i + batch_size].to(m.device)
        stream = residual_stream(m, x)
        for j, resid in enumerate(stream.resid):
            # [batch, pos, vocab]; one layer at a time (vocab x pos can be large)
            lens = unembed(m, resid)
            loss[j] += next_token_loss(lens, x).item() * len(x)
            acc[j] += (lens[:, :-1].argmax(-1) == x[:, 1:]).float().mean().item() * len(x)
        final_gap = max(final_gap, (lens - stream.output).abs().max().item())
        n += len(x)
    return Lens(loss=loss / n, accuracy=acc / n, final_gap=final_gap)


def head_attention_scores(m: Model, tokens: torch.Tensor, batch_size: int = 16) -> HeadScores:
    """Per head ``[layer, head]``: mean attention to the previous token and to position 0,
    and the max deviation of attention row sums from 1."""
    n_layers, n_heads = m.n_layers, m.cfg.n_heads
    names = [m.hook("pattern", layer) for layer in range(n_layers)]
    prev = np.zeros((n_layers, n_heads))
    first = np.zeros((n_layers, n_heads))
    row_err = 0.0
    n = 0
    for i in range(0, len(tokens), batch_size):
        x = tokens[i : i + batch_size].to(m.device)
        _, acts = trace(m, x, capture=names)
        for layer, name in enumerate(names):
            p = acts[name].float()  # [batch, head, query, key]
            row_err = max(row_err, (p.sum(-1) - 1).abs().max().item())
            diagonal = p.diagonal(offset=-1, dim1=-2, dim2=-1)
            prev[layer] += diagonal.mean(dim=(0, 2)).cpu().numpy() * len(x)
            first[layer] += p[:, :, 1:, 0].mean(dim=(0, 2)).cpu().numpy() * len(x)
        n += len(x)
    return HeadScores(prev_token=prev / n, first_token=first / n, row_sum_error=row_err)


def head_ablation(
    m: Model, tokens: torch.Tensor, how: str = "mean", batch_size: int = 16
) -> Ablation:
    """Loss increase ``[layer, head]`` when each head's ``hook_z`` is mean- or zero-ablated,
    plus the clean loss and the largest output change under an identity edit (must be 0)."""
    n_layers, n_heads = m.n_layers, m.cfg.n_heads
    z_names = [m.hook("z", layer) for layer in range(n_layers)]
    batches = [tokens[i : i + batch_size].to(m.device) for i in range(0, len(tokens), batch_size)]
    means = {}
    clean, identity_gap, n = 0.0, 0.0, 0
    for x in batches:
        out, acts = trace(m, x, capture=z_names)
        clean += next_token_loss(out, x).item() * len(x)
        for name in z_names:
            means[name] = means.get(name, 0) + acts[name].float().sum(dim=(0, 1))  # [head, d_head]
        n += x.shape[0]
        out_id, _ = trace(m, x, edits={name: (lambda a: a) for name in z_names})
        identity_gap = max(identity_gap, (out_id - out).abs().max().item())
    n_pos = n * tokens.shape[1]
    means = {k: v / n_pos for k, v in means.items()}
    clean /= n
    delta = np.zeros((n_layers, n_heads))
    for layer, name in enumerate(z_names):
        for h in range(n_heads):
            if how == "mean":
                fn = (lambda mu: lambda a: mu.to(a.dtype).expand_as(a).clone())(means[name][h])
            else:
                fn = torch.zeros_like
            total = 0.0
            for x in batches:
                out, _ = trace(m, x, edits={name: edit_heads([h], fn)})
                total += next_token_loss(out, x).item() * len(x)
            delta[layer, h] = total / n - clean
    return Ablation(loss_increase=delta, clean_loss=clean, identity_gap=identity_gap)


# Pseudo-count of the unigram baseline (the Krichevsky-Trofimov / Jeffreys estimator): a token
# the training text never showed keeps some probability, as it must on held-out text.
UNIGRAM_ALPHA = 0.5


def unigram_loss(m: Model, tokens: torch.Tensor, corpus: str, max_chars: int = 400_000) -> float:
    """Held-out cross-entropy of a unigram predictor fitted on the corpus's *training* split
    (add-0.5 smoothing over the vocabulary), on the same predicted tokens the model is scored
    on. Fitting it on the evaluation tokens themselves would make it look strong on a small
    evaluation (it would know which few tokens occur). Without a tokenizer the baseline is
    fitted on the evaluation tokens (random ids: there is no training text to fit on)."""
    t = tokens[:, 1:].reshape(-1).cpu()
    vocab = int(m.d_vocab or int(t.max()) + 1)
    if m.tokenizer is None:
        counts = torch.bincount(t, minlength=vocab).double()
    else:
        docs = load_corpus(corpus, max_chars=max_chars, seed=0).train
        ids = torch.tensor(
            m.tokenizer("\n".join(docs), add_special_tokens=False)["input_ids"], dtype=torch.long
        )
        counts = torch.bincount(ids[ids < vocab], minlength=vocab).double()
    p = (counts + UNIGRAM_ALPHA) / (counts.sum() + UNIGRAM_ALPHA * vocab)
    return float(-(p[t].log()).mean())


def load_transformer(config: Config) -> Model:
    """The configured model; it must be a transformer with blocks."""
    m = interp.load_model(config.model, device=config.device)
    if m.kind != "transformer" or not m.n_layers:
        raise ValueError(
            f"model_report needs a transformer with blocks; {config.model} is a {m.kind}"
        )
    check_seq_len(m, config.seq_len)
    log.info("model %s: %d layers x %d heads", m.model_id, m.n_layers, m.cfg.n_heads)
    return m


def prompt_patterns(m: Model, prompt: str, tokens: torch.Tensor) -> Patterns:
    """Attention patterns ``[layer, head, query, key]`` on ``prompt`` and its string tokens.
    Without a tokenizer the first held-out sequence stands in for the typed prompt."""
    typed = m.to_tokens(prompt) if m.tokenizer is not None else tokens[:1]
    prompt_tokens = typed[:, : m.cfg.n_ctx]
    names = [m.hook("pattern", layer) for layer in range(m.n_layers)]
    _, acts = trace(m, prompt_tokens, capture=names)
    patterns = torch.stack([acts[n][0] for n in names]).cpu().numpy()
    if m.tokenizer is not None:
        return Patterns(patterns, m.to_str_tokens(prompt_tokens[0]))
    return Patterns(patterns, [str(t) for t in prompt_tokens[0].tolist()])


@register(
    "model_report",
    Config,
    title="Model report: logit lens, attention, head ablation",
    figure_order=("logit_lens", "head_ablation", "head_scores", "attention", "task_patching"),
)
def run(config: Config) -> Result:
    """Logit lens, attention patterns and per-head ablation on a transformer."""
    seed_everything(config.seed)
    m = load_transformer(config)
    batch = min(config.batch_size, config.n_prompts)
    check_fits(
        {
            "tokens": config.n_prompts * config.seq_len * 8,
            "logits of a batch (x3)": 3 * batch * config.seq_len * m.cfg.d_vocab * 4,
        },
        "Lower n_prompts, seq_len or batch_size.",
    )
    tokens = heldout_tokens(m, config.corpus, config.n_prompts, config.seq_len, config.seed)
    lens = lens_by_layer(m, tokens, config.batch_size)
    scores = head_attention_scores(m, tokens, config.batch_size)
    abl = head_ablation(m, tokens, config.ablation, config.batch_size)
    uni = unigram_loss(m, tokens, config.corpus)
    patterns = prompt_patterns(m, config.prompt, tokens)
    result = report(config, m, lens, scores, abl, uni, patterns)
    if config.task != "none":
        add_task_patching(result, task_patching(m, config))
    return result


def task_patching(m: Model, config: Config) -> TaskPatching:
    """On ``task_prompts`` prompts of ``config.task``: the clean metric (the logit difference for
    IOI), and each head's effect on it by activation patching (the counterfactual prompt's
    ``hook_z``, one head at a time) and by attribution patching (its first-order estimate from
    one forward and backward), averaged over the prompts."""
    if m.tokenizer is None:
        raise ValueError(
            f"task={config.task!r} builds prompts from the model's tokenizer; "
            f"{config.model} has none (use task='none')"
        )
    ps = make_task(config.task, m.tokenizer, config.task_prompts, config.seed)
    metric = ps.metric_fn()
    with torch.no_grad():
        clean = metric(m(ps.clean.to(m.device)), torch.arange(len(ps))).float()
        corrupt = metric(m(ps.corrupt.to(m.device)), torch.arange(len(ps))).float()
    kw = dict(corrupt=ps.corrupt, batch_size=config.batch_size * 4)
    act = activation_patching(m, ps.clean, metric, **kw).mean(0).numpy()  # [layers, heads]
    att = attribution_patching(m, ps.clean, metric, **kw).mean(0).numpy()
    r = (
        float(np.corrcoef(act.ravel(), att.ravel())[0, 1])
        if act.std() > 0 and att.std() > 0
        else float("nan")
    )
    return TaskPatching(
        task=config.task,
        metric=ps.metric,
        clean=clean.numpy(),
        corrupt=corrupt.numpy(),
        activation=act,
        attribution=att,
        r=r,
        example=ps.texts[0] if ps.texts else "",
    )


def add_task_patching(result: Result, tp: TaskPatching) -> None:
    """Criteria, metrics, arrays and a figure of :func:`task_patching`."""
    result.add_criterion(
        "task_clean_metric_positive",
        float(tp.clean.mean()),
        ">",
        0.0,
        kind="claim",
        description=f"mean {tp.metric} of the model on clean {tp.task} prompts: it does the task",
    )
    result.add_criterion(
        "attribution_tracks_activation_patching",
        tp.r,
        ">=",
        0.8,
        kind="claim",
        description="Pearson r over heads of attribution patching (one forward and backward) "
        "and activation patching (one forward per head), mean over prompts",
    )
    top = [  # the heads that lower the metric most
        {"layer": h["layer"], "head": h["head"], "effect": -h["loss_increase"]}
        for h in _top_heads(-tp.activation, 5)
    ]
    result.metrics.update(
        {
            "task": tp.task,
            "task_metric": tp.metric,
            "task_example": tp.example,
            "task_clean_metric": float(tp.clean.mean()),
            "task_corrupt_metric": float(tp.corrupt.mean()),
            "task_clean_positive_share": float((tp.clean > 0).mean()),
            "task_top_heads": top,
        }
    )
    result.arrays.update(
        {
            "task_activation_patching": tp.activation,
            "task_attribution_patching": tp.attribution,
        }
    )
    result.figures["task_patching"] = plots.head_heatmap(
        tp.activation,
        f"{tp.task}: change of the {tp.metric} when a head takes the corrupt prompt's value",
    )


def report(
    config: Config,
    m: Model,
    lens: Lens,
    scores: HeadScores,
    abl: Ablation,
    uni: float,
    patterns: Patterns,
) -> Result:
    """The result: metrics, criteria, arrays and figures of the measured parts."""
    result = Result("model_report")
    result.metrics.update(
        {
            "model": m.model_id,
            "n_layers": m.n_layers,
            "n_heads": m.cfg.n_heads,
            "clean_loss": abl.clean_loss,
            "unigram_loss": uni,
            "n_eval_tokens": int(config.n_prompts * (config.seq_len - 1)),
            "corpus": config.corpus,
            "logit_lens_loss": lens.loss.tolist(),
            "logit_lens_accuracy": lens.accuracy.tolist(),
            "top_ablation_heads": _top_heads(abl.loss_increase, 3),
            "prompt_tokens": patterns.str_tokens,
        }
    )
    _criteria(result, lens, scores, abl, uni)
    result.arrays.update(
        {
            "logit_lens_loss": lens.loss,
            "logit_lens_accuracy": lens.accuracy,
            "prev_token_score": scores.prev_token,
            "first_token_score": scores.first_token,
            "head_loss_increase": abl.loss_increase,
            "prompt_patterns": patterns.patterns,
        }
    )
    result.figures.update(
        {
            "logit_lens": plots.logit_lens_figure(lens.loss, lens.accuracy, uni),
            "head_ablation": plots.head_heatmap(
                abl.loss_increase,
                f"Loss increase when a head is {config.ablation}-ablated (nats)",
            ),
            "head_scores": plots.head_scores_figure(scores.prev_token, scores.first_token),
            "attention": plots.attention_grid(patterns.patterns, patterns.str_tokens),
        }
    )
    return result


def _criteria(result: Result, lens: Lens, scores: HeadScores, abl: Ablation, uni: float) -> None:
    rows = [
        ("lens_final_equals_logits", lens.final_gap, "<=", 1e-4, "sanity",
         "max |logit lens at the last layer - model logits|"),
        ("identity_edit_changes_nothing", abl.identity_gap, "<=", 0.0, "sanity",
         "max |logits with identity edits on every hook_z - clean logits|"),
        ("attention_rows_sum_to_one", scores.row_sum_error, "<=", 1e-5, "sanity",
         "max |sum over keys of hook_pattern - 1|"),
        ("model_beats_unigram", uni - abl.clean_loss, ">", 0.0, "claim",
         "held-out loss of a unigram model fitted on the training split minus the "
         "model's loss (nats): the model learned more than token frequencies"),
        ("lens_improves_with_depth", float(lens.loss[0] - lens.loss[-1]), ">", 0.0, "claim",
         "logit-lens loss at the embedding minus at the last layer (nats)"),
    ]  # fmt: skip
    for name, value, op, threshold, kind, desc in rows:
        result.add_criterion(name, value, op, threshold, kind=kind, description=desc)


def _top_heads(delta: Float[np.ndarray, "layers heads"], k: int) -> list[dict]:
    flat = np.argsort(delta, axis=None)[::-1][:k]
    return [
        {
            "layer": int(i // delta.shape[1]),
            "head": int(i % delta.shape[1]),
            "loss_increase": float(delta.flat[i]),
        }
        for i in flat
    ]
