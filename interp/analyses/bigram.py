"""Bigram subnetworks (Chang & Bergen 2025): the fewest weights that make an LM a bigram model.

Continuous-sparsification masks (:mod:`interp.methods.masks`) are trained on every block
matrix of a trained zoo LM, frozen, so that the masked model's next-token distribution
matches the corpus bigram distribution ``P(w_i | w_{i-1})`` (:mod:`interp.data.bigram`),
for a sweep of density penalties ``lambda``. On held-out text the analysis then measures:

- the Pearson r between per-token surprisals of each subnetwork and of the bigram model
  (infinite bigram surprisals dropped), against the fraction of maskable weights kept, and the
  same r of the zero mask (nothing kept: the embedding -> unembedding path alone), the floor a
  subnetwork has to beat;
- where the chosen subnetwork's weights live (kept fraction per layer, matrix and head);
- mean surprisal of the full model, the subnetwork alone, a random subnetwork of the same
  structure (entries shuffled within each matrix), the complement (everything but the
  subnetwork) and a random complement;
- its overlap with an "optimal pruning" mask (target: the full model's own softmax),
  against a null of within-matrix row shuffles, with a one-sided p-value;
- per-layer ridge maps of the residual stream to the current token's embedding
  (recall@k among all tokens) and to the final residual stream (read through the
  unembedding: Pearson r with the real surprisals), for the full model, the subnetwork
  and the random subnetwork.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import annotated_types as at
import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from interp.analyses import register
from interp.fields import (
    MAX_COUNT,
    CorpusSource,
    Count,
    Device,
    Fraction,
    ModelName,
    NonNegFloat,
    PositiveFloat,
    Seed,
)
from interp.results import Result

log = logging.getLogger(__name__)


class Config(BaseModel):
    """Settings of the bigram-subnetwork analysis."""

    model_config = ConfigDict(extra="forbid")

    model: ModelName = "zoo:code-lm-tiny"
    size_models: list[ModelName] = Field(
        default_factory=list
    )  # more LMs: one mask each at the chosen lambda
    corpus: CorpusSource | None = None  # None: the zoo recipe's corpus (else stdlib)
    max_chars: Count | None = None  # None: the zoo recipe's (else 400k)
    corpus_seed: Seed | None = (
        None  # None: the zoo recipe's seed (so held-out files are the model's)
    )
    lambdas: list[PositiveFloat] = Field(default_factory=lambda: [1.0, 5.0, 20.0])
    # at most this many steps per mask; each stops earlier when the paper's rule fires (undecided
    # masks < 1% of the kept ones). Only masks that stopped by the rule are read by sparse_subnetwork_r.
    mask_steps: Count = 4000
    batch_size: Count = 16
    seq_len: Annotated[int, at.Ge(2), at.Le(MAX_COUNT)] = 128  # clipped to the model's n_ctx
    lr: PositiveFloat = 1e-2
    init_logit: Annotated[float, at.Ge(-100.0), at.Le(100.0)] = 0.1
    temperature_growth: Annotated[float, at.Ge(1.0), at.Le(2.0)] = (
        1.004  # paper 1.001; 1.004 lets soft and hard masks agree in ~1k steps
    )
    max_kept: Fraction = 0.10  # "sparse" for the r criterion and for choosing the main subnetwork
    pruning_mask: bool = True
    planted_check: bool = True  # sanity: the mask trainer recovers a planted subnetwork (seconds)
    n_null: Count = 10_000
    n_random: Count = 3  # random same-structure subnetworks averaged (sufficiency)
    n_random_removal: Annotated[int, at.Ge(10), at.Le(MAX_COUNT)] = (
        10  # random same-structure sets removed (necessity test)
    )
    n_eval: Count = 64  # held-out sequences for surprisals
    n_resid: Annotated[int, at.Ge(4), at.Le(MAX_COUNT)] = (
        48  # held-out sequences for the residual-stream maps
    )
    ridge_alpha: NonNegFloat = 1e-2  # relative to the mean eigenvalue of X^T X
    recall_k: Count = 10
    device: Device = "auto"
    seed: Seed = 0


# ------------------------------------------------------------------ data
def corpus_streams(config: Config, m) -> tuple[np.ndarray, np.ndarray, dict]:
    """Train and held-out token streams of the model's corpus split (BOS before each file)."""
    from interp.data.corpus import load_corpus
    from interp.models.recipes.code_lm import tokenize_corpus

    src = {"corpus": "stdlib", "max_chars": 400_000, "seed": 0}
    if config.model.startswith("zoo:"):
        from interp.models import zoo

        rc = zoo.get(config.model[4:]).config
        src.update({k: getattr(rc, k) for k in src if hasattr(rc, k)})
    for k, v in (
        ("corpus", config.corpus),
        ("max_chars", config.max_chars),
        ("seed", config.corpus_seed),
    ):
        if v is not None:
            src[k] = v
    corpus = load_corpus(src["corpus"], max_chars=src["max_chars"], seed=src["seed"])
    bos = m.tokenizer.bos_token_id
    return (
        tokenize_corpus(corpus.train, m.tokenizer, bos),
        tokenize_corpus(corpus.heldout, m.tokenizer, bos),
        src,
    )


def windows(stream: np.ndarray, n: int, seq_len: int, seed: int) -> torch.Tensor:
    """``[n, seq_len]`` random windows of ``stream`` (seeded)."""
    g = torch.Generator().manual_seed(seed)
    hi = len(stream) - seq_len
    if hi <= 0:
        raise ValueError(f"stream of {len(stream)} tokens is shorter than seq_len={seq_len}")
    starts = torch.randint(0, hi, (n,), generator=g).tolist()
    data = torch.from_numpy(stream.astype(np.int64))
    return torch.stack([data[s : s + seq_len] for s in starts])


# ------------------------------------------------------------------ measures
@torch.no_grad()
def surprisals(
    m, tokens: torch.Tensor, mask=None, complement: bool = False, batch_size: int = 16
) -> np.ndarray:
    """``[n, pos-1]`` next-token surprisal (nats) of the model, under ``mask`` if given."""
    import contextlib

    from interp.methods.masks import logits_of, native

    root = native(m)
    out = []
    ctx = mask.apply(m, complement=complement) if mask is not None else contextlib.nullcontext()
    with ctx:
        for i in range(0, len(tokens), batch_size):
            x = tokens[i : i + batch_size].to(m.device)
            logp = F.log_softmax(logits_of(root(x)).float(), dim=-1)
            out.append(-logp[:, :-1].gather(-1, x[:, 1:, None]).squeeze(-1).cpu().numpy())
    return np.concatenate(out)


def pearson_finite(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r (``scipy.stats.pearsonr``) over entries where both are finite; NaN with fewer
    than 3 such entries or a constant side."""
    from scipy.stats import pearsonr

    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or a[ok].std() == 0 or b[ok].std() == 0:
        return float("nan")
    return float(pearsonr(a[ok], b[ok]).statistic)


def ridge_fit(X: torch.Tensor, Y: torch.Tensor, alpha: float):
    """Ridge map with intercept (:func:`interp.methods.probes.fit_ridge`: ``alpha`` is relative to
    the mean eigenvalue of the centred ``X^T X``); returns ``predict(X') -> Y'`` (float32 tensors)."""
    from interp.methods.probes import fit_ridge

    model = fit_ridge(X, Y, alpha)
    return lambda Z: torch.from_numpy(model.predict(Z.detach().cpu().double().numpy())).float()


@torch.no_grad()
def capture_resid(m, tokens: torch.Tensor, mask=None) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Every residual stream ``R x [n, pos, d_model]`` and the logits ``[n, pos, vocab]`` of
    ``tokens`` (float32, CPU), under ``mask`` if given."""
    import contextlib

    from interp.methods.lens import residual_stream

    names = m.resid_names()
    acts: list[list[torch.Tensor]] = [[] for _ in names]
    logits = []
    with mask.apply(m) if mask is not None else contextlib.nullcontext():
        for i in range(0, len(tokens), 16):
            stream = residual_stream(m, tokens[i : i + 16])
            logits.append(stream.output.float().cpu())
            for j, r in enumerate(stream.resid):
                acts[j].append(r.float().cpu())
    return [torch.cat(a) for a in acts], torch.cat(logits)


@torch.no_grad()
def residual_maps(
    m, tokens: torch.Tensor, mask=None, *, alpha: float, k: int, seed: int
) -> dict[str, np.ndarray]:
    """Per residual stream (embedding, then after each layer): recall@k of the current token
    from a ridge map to the embedding space, and Pearson r between the real surprisals and
    those read from a ridge map to the final residual stream through the logit lens (masks never
    touch the final norm or the unembedding). Maps are fitted on half of the sequences and
    scored on the other half."""
    from interp.methods.lens import unembed

    resid, logits = capture_resid(m, tokens, mask)
    W_E = m.module.W_E.detach().float().cpu()  # [vocab, d_model]
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(tokens), generator=g)
    tr, te = order[: len(tokens) // 2], order[len(tokens) // 2 :]
    tok = tokens[:, 1:-1]  # skip BOS-like position 0 and the last (no next token)
    nxt = tokens[:, 2:]
    real = (
        -F.log_softmax(logits[:, 1:-1][te], -1).gather(-1, nxt[te, :, None]).squeeze(-1).reshape(-1)
    )
    final = resid[-1][:, 1:-1]  # [n, pos, d]
    E_unit = F.normalize(W_E, dim=-1)
    recall, final_r = np.zeros(len(resid)), np.zeros(len(resid))
    d = final.shape[-1]
    for j, acts in enumerate(resid):
        X = acts[:, 1:-1]  # [n, pos, d]
        # current token: map to its input embedding, rank all tokens by cosine
        to_tok = ridge_fit(X[tr].reshape(-1, d), W_E[tok[tr].reshape(-1)], alpha)
        sims = F.normalize(to_tok(X[te].reshape(-1, d)), dim=-1) @ E_unit.T  # [N, vocab]
        true = sims.gather(-1, tok[te].reshape(-1, 1))
        recall[j] = float(((sims > true).sum(-1) < k).float().mean())
        # next token: map to the final residual, read it out through the logit lens
        to_fin = ridge_fit(X[tr].reshape(-1, d), final[tr].reshape(-1, d), alpha)
        pred = to_fin(X[te].reshape(-1, d)).to(m.dtype).to(m.device)
        lp = F.log_softmax(unembed(m, pred[None])[0].float().cpu(), -1)
        s = -lp.gather(-1, nxt[te].reshape(-1, 1)).squeeze(-1)
        final_r[j] = pearson_finite(s.numpy(), real.numpy())
    return {"recall": recall, "final_r": final_r}


class _SoftMask:
    """Adapter giving :class:`MaskLogits` the ``apply(model)`` of a :class:`Mask` (its current mode)."""

    def __init__(self, logits):
        self.logits = logits

    def apply(self, m, complement: bool = False):
        from interp.methods.masks import masked

        if complement:
            raise ValueError("a soft mask has no complement here")
        return masked(m, self.logits.sites, self.logits.mask)


# ------------------------------------------------------------------ steps of the run
@dataclass
class Setup:
    """The model, its corpus split, the bigram model and the held-out windows of one run."""

    m: Any
    seq_len: int
    train_stream: np.ndarray
    held_stream: np.ndarray
    src: dict  # corpus, max_chars, seed
    bigram: Any  # interp.data.bigram.Bigram: sparse counts; targets are built per batch
    eval_tokens: torch.Tensor  # [n_eval, seq_len]
    resid_tokens: torch.Tensor  # [n_resid, seq_len]
    bigram_s: np.ndarray  # [n_eval, seq_len - 1] bigram surprisals (inf where unseen)
    sites: list
    base_state: dict  # the base weights before any mask, to check that none is written


def setup(config: Config) -> Setup:
    """Load the LM, read its corpus split, count bigrams, draw the held-out windows."""
    import interp
    from interp.data.bigram import Bigram
    from interp.methods.masks import find_sites, native

    m = interp.load_model(config.model, device=config.device)
    if m.kind != "transformer" or m.tokenizer is None:
        raise ValueError(
            f"bigram needs a transformer LM with a tokenizer; {config.model} is a {m.kind}"
        )
    seq_len = min(config.seq_len, m.cfg.n_ctx)
    train_stream, held_stream, src = corpus_streams(config, m)
    log.info(
        "model %s; corpus %s: %d train / %d held-out tokens",
        m.model_id,
        src,
        len(train_stream),
        len(held_stream),
    )
    bigram = Bigram.from_tokens(train_stream, vocab_size=m.cfg.d_vocab)
    eval_tokens = windows(held_stream, config.n_eval, seq_len, config.seed + 1)
    resid_tokens = windows(held_stream, config.n_resid, seq_len, config.seed + 2)
    base_state = {k: v.detach().clone() for k, v in native(m).state_dict().items()}
    sites = find_sites(m)
    log.info("%d maskable matrices, %d weights", len(sites), sum(s.size for s in sites))
    return Setup(
        m,
        seq_len,
        train_stream,
        held_stream,
        src,
        bigram,
        eval_tokens,
        resid_tokens,
        bigram.surprisal(eval_tokens),
        sites,
        base_state,
    )


def mask_config(config: Config, lam: float):
    """The mask-training settings at density penalty ``lam``."""
    from interp.methods.masks import MaskTrainConfig

    return MaskTrainConfig(
        lam=lam,
        steps=config.mask_steps,
        lr=config.lr,
        init_logit=config.init_logit,
        temperature_growth=config.temperature_growth,
    )


def lambda_sweep(su: Setup, config: Config) -> tuple[list[dict], list]:
    """One bigram mask per lambda: its sweep point (kept fraction, r of hard and soft mask, ...)
    and the hard mask."""
    from interp.methods.masks import train_mask
    from interp.models.recipes.code_lm import lm_batches

    m = su.m
    target_fn = su.bigram.target_fn(
        m.device
    )  # [batch, pos] -> [batch, pos, vocab], per batch from sparse counts
    sweep, masks = [], []
    for i, lam in enumerate(config.lambdas):
        t0 = time.time()
        res = train_mask(
            m,
            lm_batches(su.train_stream, su.seq_len, config.batch_size, config.seed * 1000 + i),
            target_fn,
            mask_config(config, lam),
            sites=su.sites,
            desc=f"bigram mask lambda={lam}",
        )
        sub_s = surprisals(m, su.eval_tokens, res.mask)
        res.logits.train()  # the soft mask sigmoid(T*s) at the final T, for the soft/hard gap
        soft_s = surprisals(m, su.eval_tokens, _SoftMask(res.logits))
        res.logits.eval()
        point = {
            "lambda": lam,
            "kept_fraction": res.mask.kept_fraction,
            "r": pearson_finite(sub_s, su.bigram_s),
            "r_soft": pearson_finite(soft_s, su.bigram_s),
            "final_temperature": res.logits.temperature,
            "loss": float(sub_s.mean()),
            "steps": res.steps,
            "stopped_early": res.stopped_early,
            "final_undecided": res.log[-1]["undecided"] if res.log else None,
            "final_undecided_per_kept": res.log[-1]["undecided_per_kept"] if res.log else None,
            "seconds": time.time() - t0,
            "by_component": res.mask.by_component(),
        }
        log.info(
            "lambda %g: kept %.3f%%, r %.3f (soft mask %.3f), %d steps (%.0f s)",
            lam,
            100 * point["kept_fraction"],
            point["r"],
            point["r_soft"],
            res.steps,
            point["seconds"],
        )
        res.mask.meta["name"] = f"bigram_lambda_{lam:g}"
        sweep.append(point)
        masks.append(res.mask)
    return sweep, masks


def choose(sweep: list[dict], max_kept: float) -> tuple[int, list[int]]:
    """Index of the main subnetwork and the indices of the sparse, converged masks (kept
    fraction <= ``max_kept`` and stopped by the paper's rule, ``stopped_early``). The main one is
    the best r among those; else among the sparse ones; else the sparsest."""
    sparse = [i for i, p in enumerate(sweep) if p["kept_fraction"] <= max_kept]
    sparse_ok = [i for i in sparse if sweep[i].get("stopped_early")]
    pool = sparse_ok or sparse
    best = (
        max(pool, key=lambda i: np.nan_to_num(sweep[i]["r"], nan=-1))
        if pool
        else min(range(len(sweep)), key=lambda i: sweep[i]["kept_fraction"])
    )
    return best, sparse_ok


def zero_mask_floor(su: Setup) -> dict:
    """The bigram fit of the model with every maskable weight removed: embeddings, norms, biases
    and unembedding alone (the direct path is already a bigram model). Same measures as a sweep
    point, so a subnetwork only means something where it beats this."""
    from interp.methods.masks import Mask

    s = surprisals(su.m, su.eval_tokens, Mask.zeros(su.sites))
    floor = {"kept_fraction": 0.0, "r": pearson_finite(s, su.bigram_s), "loss": float(s.mean())}
    log.info(
        "zero-mask floor (nothing kept in the blocks): r %.3f, loss %.3f nats",
        floor["r"],
        floor["loss"],
    )
    return floor


def removal_test(subnetwork_loss: float, random_losses: Sequence[float]) -> dict:
    """Does removing the subnetwork hurt more than removing random same-structure sets? The test
    the n-gram head ablation uses (:func:`interp.methods.heads.ablation_significance`): a one-sided
    one-sample t-test of the random removals' losses against the subnetwork removal's loss (H1:
    their mean is lower), and the exact rank p ``(1 + #{random >= subnetwork}) / (1 + n)``."""
    from interp.methods.heads import ablation_significance

    losses = np.asarray(random_losses, dtype=np.float64)
    if len(losses) < 2:
        raise ValueError(f"the removal test needs at least 2 random removals, got {len(losses)}")
    sig = ablation_significance(subnetwork_loss, losses)
    return {
        "subnetwork_removed": float(subnetwork_loss),
        "random_removed": losses.tolist(),
        "random_mean": float(losses.mean()),
        "random_std": float(losses.std(ddof=1)),
        "difference": float(subnetwork_loss - losses.mean()),
        "p_t": sig["p"],
        "p_rank": sig["p_rank"],
        "n_random": sig["n"],
    }


def surprisal_table(
    su: Setup, full_s: np.ndarray, mask, randoms: list, removal_randoms: list
) -> tuple[dict, dict]:
    """Necessity and sufficiency: mean held-out surprisal of the full model, the subnetwork, random
    same-structure subnetworks, the complement and random complements (``removal_randoms``); the
    bigram model; and the removal test (:func:`removal_test`)."""
    m, x = su.m, su.eval_tokens
    removed = [float(surprisals(m, x, r, complement=True).mean()) for r in removal_randoms]
    rows = {
        "full": float(full_s.mean()),
        "subnetwork": float(surprisals(m, x, mask).mean()),
        "random_subnetwork": float(np.mean([surprisals(m, x, r).mean() for r in randoms])),
        "complement": float(surprisals(m, x, mask, complement=True).mean()),
        "random_complement": float(np.mean(removed)),
    }
    finite = np.isfinite(su.bigram_s)
    extra = {
        "bigram_model_finite": float(su.bigram_s[finite].mean()),
        "bigram_infinite_frac": float(1 - finite.mean()),
        "removal": removal_test(rows["complement"], removed),
    }
    log.info("surprisal table: %s", rows)
    return rows, extra


def pruning_overlap(su: Setup, config: Config, mask, lam: float) -> tuple[dict, np.ndarray]:
    """Overlap of the subnetwork with an optimal-pruning mask (target: the model's own softmax)
    against within-matrix row shuffles, with a one-sided p-value; and the null draws."""
    from interp.methods.masks import row_shuffle_null, train_mask
    from interp.models.recipes.code_lm import lm_batches

    if not config.pruning_mask:
        return {}, np.zeros(0)
    t0 = time.time()
    prune = train_mask(
        su.m,
        lm_batches(su.train_stream, su.seq_len, config.batch_size, config.seed * 1000 + 999),
        "self",
        mask_config(config, lam),
        sites=su.sites,
        desc="pruning mask",
    ).mask
    observed = mask.overlap(prune)
    null = row_shuffle_null(mask, prune, config.n_null, config.seed + 3)
    p = (1 + int((null >= observed).sum())) / (1 + len(null))
    overlap = {
        "pruning_kept_fraction": prune.kept_fraction,
        "observed": observed,
        "observed_frac_of_subnetwork": observed / max(1, mask.n_kept),
        "null_mean": float(null.mean()),
        "null_std": float(null.std()),
        "p_value": p,
        "n_null": len(null),
        "pruning_loss": float(surprisals(su.m, su.eval_tokens, prune).mean()),
        "seconds": time.time() - t0,
    }
    log.info("pruning overlap: %s", overlap)
    return overlap, null


def planted_check(config: Config) -> dict:
    """The mask trainer on a model with a planted bigram subnetwork (:mod:`interp.methods.planted`):
    precision, recall and IoU of the kept weights against the planted ones."""
    from interp.methods.planted import planted_recovery

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
def mask_sanity(su: Setup) -> dict[str, float]:
    """Masks leave the base alone and act as specified: all-ones = base, all-zeros = zeroed
    weights, base weights unchanged. (That random controls keep each matrix's count and that a
    complement partitions the weights hold by construction: unit tests check them.)"""
    from interp.methods.masks import Mask, logits_of, native

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
    return {"ones": ones_gap, "zeros": zeros_gap, "base": base_gap}


# ------------------------------------------------------------------ the run
@register(
    "bigram",
    Config,
    title="Bigram subnetworks (continuous-sparsification masks)",
    paper="Chang & Bergen 2025, Bigram subnetworks: mapping to next tokens in transformer language models",
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
    from interp.utils import seed_everything

    t_start = time.time()
    seed_everything(config.seed)
    su = setup(config)
    full_s = surprisals(su.m, su.eval_tokens)
    floor = zero_mask_floor(su)
    sweep, masks = lambda_sweep(su, config)
    best, sparse_ok = choose(sweep, config.max_kept)
    mask, lam = masks[best], config.lambdas[best]
    log.info("chosen subnetwork: lambda %g (%s)", lam, mask)
    randoms = [mask.shuffled(config.seed * 7919 + j) for j in range(config.n_random)]
    removal_randoms = [
        mask.shuffled(config.seed * 7919 + 104_729 + j) for j in range(config.n_random_removal)
    ]
    rows, rows_extra = surprisal_table(su, full_s, mask, randoms, removal_randoms)
    overlap, null = pruning_overlap(su, config, mask, lam)
    resid = {
        name: residual_maps(
            su.m,
            su.resid_tokens,
            mk,
            alpha=config.ridge_alpha,
            k=config.recall_k,
            seed=config.seed + 4,
        )
        for name, mk in (("full", None), ("subnetwork", mask), ("random", randoms[0]))
    }
    gaps = mask_sanity(su)
    planted = planted_check(config)
    sizes = [
        _size_point(name, config, lam, mask_config(config, lam)) for name in config.size_models
    ]
    measured = {
        "full_s": full_s,
        "sweep": sweep,
        "best": best,
        "sparse_ok": sparse_ok,
        "mask": mask,
        "lam": lam,
        "rows": rows,
        "rows_extra": rows_extra,
        "overlap": overlap,
        "null": null,
        "resid": resid,
        "gaps": gaps,
        "sizes": sizes,
        "floor": floor,
        "planted": planted,
        "seconds": time.time() - t_start,
    }
    result = Result("bigram")
    add_metrics_and_criteria(result, su, config, measured)
    add_arrays_and_figures(result, su, config, measured)
    return result


def add_metrics_and_criteria(result: Result, su: Setup, config: Config, d: dict) -> None:
    """The run's metrics and its sanity and claim criteria."""
    m, mask, sweep, rows, overlap, gaps = (
        su.m,
        d["mask"],
        d["sweep"],
        d["rows"],
        d["overlap"],
        d["gaps"],
    )
    comp = mask.by_component()
    l0_mlp = comp.get("L0.mlp", float("nan"))
    others = [v for c, v in comp.items() if c != "L0.mlp"]
    result.metrics.update(
        {
            "model": m.model_id,
            "corpus": su.src,
            "n_maskable": sum(s.size for s in su.sites),
            "n_sites": len(su.sites),
            "vocab": m.cfg.d_vocab,
            "seq_len": su.seq_len,
            "train_tokens": int(len(su.train_stream)),
            "heldout_tokens": int(len(su.held_stream)),
            "sweep": sweep,
            "chosen_lambda": d["lam"],
            "chosen_kept_fraction": mask.kept_fraction,
            "chosen_r": sweep[d["best"]]["r"],
            "chosen_r_soft": sweep[d["best"]]["r_soft"],
            "chosen_converged": bool(sweep[d["best"]]["stopped_early"]),
            "n_masks_converged": sum(bool(p["stopped_early"]) for p in sweep),
            "full_model_r": pearson_finite(d["full_s"], su.bigram_s),
            "surprisal": {**rows, **{k: v for k, v in d["rows_extra"].items() if k != "removal"}},
            "removal": d["rows_extra"]["removal"],
            "overlap": overlap,
            "kept_by_component": comp,
            "kept_by_layer": {str(k): v for k, v in mask.by_layer().items()},
            "kept_by_matrix": mask.by_matrix(),
            "residual": {
                k: {kk: vv.tolist() for kk, vv in v.items()} for k, v in d["resid"].items()
            },
            "size_models": d["sizes"],
            "temperature_growth": config.temperature_growth,
            "seconds": d["seconds"],
            "zero_mask_floor": d["floor"],
            "planted_recovery": d["planted"],
            "chosen_r_minus_floor_r": sweep[d["best"]]["r"] - d["floor"]["r"],
        }
    )
    sparse_r = max(
        [sweep[i]["r"] for i in d["sparse_ok"]], default=None
    )  # converged sparse masks only
    result.add_criterion(
        "hard_ones_mask_equals_base",
        gaps["ones"],
        "<=",
        0.0,
        kind="sanity",
        description="max |logits with an all-ones hard mask - base logits|",
    )
    result.add_criterion(
        "zeros_mask_equals_zeroed_weights",
        gaps["zeros"],
        "<=",
        0.0,
        kind="sanity",
        description="max |logits with an all-zeros mask - logits with those matrices zeroed|",
    )
    result.add_criterion(
        "base_weights_unchanged",
        gaps["base"],
        "<=",
        0.0,
        kind="sanity",
        description="max |base weight after the run - before| (masks never write weights)",
    )
    if d["planted"]:
        from interp.methods.planted import PLANTED_IOU

        pl = d["planted"]
        result.add_criterion(
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
    # rows are normalised counts (or a normalised backoff row): they sum to one by construction, so this
    # is a metric and a unit test (tests/data/test_bigram.py), not a criterion
    result.metrics["bigram_max_row_sum_error"] = su.bigram.max_row_sum_error()
    conv = ", ".join(
        f"lambda {p['lambda']:g}: {'stopped by the rule' if p['stopped_early'] else 'NOT converged'} "
        f"at step {p['steps']}, kept {p['kept_fraction']:.2%}, r {p['r']:.3f} (soft mask r_soft "
        f"{p['r_soft']:.3f}), undecided/kept {p['final_undecided_per_kept'] or float('nan'):.3f}"
        for p in sweep
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
            f"weights"
            + (
                ""
                if d["sparse_ok"]
                else f"; not read: no sparse mask converged within {config.mask_steps} steps"
            )
            + f". {conv}"
        ),
    )
    result.add_criterion(
        "subnetwork_beats_zero_mask_floor",
        sweep[d["best"]]["r"] - d["floor"]["r"],
        ">",
        0.0,
        kind="claim",
        description=f"surprisal r of the chosen subnetwork minus r of the model with "
        f"nothing kept in the blocks (floor r {d['floor']['r']:.3f}, "
        f"loss {d['floor']['loss']:.2f} nats)",
    )
    result.add_criterion(
        "layer0_mlp_densest",
        l0_mlp - max(others, default=float("nan")),
        ">",
        0.0,
        kind="claim",
        description="kept density of layer-0 MLP minus the densest other layer component "
        "(attn / mlp per layer) of the chosen subnetwork",
    )
    result.add_criterion(
        "subnetwork_far_below_random",
        rows["random_subnetwork"] - rows["subnetwork"],
        ">=",
        1.0,
        kind="claim",
        description="held-out surprisal of random same-structure subnetworks minus "
        "the bigram subnetwork alone (nats)",
    )
    rm = d["rows_extra"]["removal"]
    result.add_criterion(
        "removal_hurts_more_than_random",
        rm["p_t"],
        "<",
        0.05,
        kind="claim",
        description=f"one-sided one-sample t-test p that {rm['n_random']} random same-structure "
        f"removals lose less than removing the subnetwork ({rm['subnetwork_removed']:.3f} "
        f"vs {rm['random_mean']:.3f} ± {rm['random_std']:.3f} nats; exact rank p "
        f"{rm['p_rank']:.3g})",
    )
    if overlap:
        result.add_criterion(
            "overlap_with_pruning_mask_p",
            overlap["p_value"],
            "<",
            0.01,
            kind="claim",
            description=f"one-sided p of the overlap with the optimal-pruning mask against "
            f"{len(d['null'])} within-matrix row shuffles",
        )
    for sp in d["sizes"]:
        result.add_criterion(
            f"layer0_mlp_densest@{sp['model']}",
            sp["l0_mlp_margin"],
            ">",
            0.0,
            kind="claim",
            description=f"layer-0 MLP density margin for {sp['model']} (one mask at lambda "
            f"{d['lam']:g})",
        )


def add_arrays_and_figures(result: Result, su: Setup, config: Config, d: dict) -> None:
    """The sweep, density, null and residual-map arrays, the mask bits, and the figures."""
    from interp.plotting import bigram as plots

    mask, sweep, resid, overlap = d["mask"], d["sweep"], d["resid"], d["overlap"]
    density_table, layers, mats = mask.layer_matrix_table()
    result.arrays.update(
        {
            "sweep_kept_fraction": np.array([p["kept_fraction"] for p in sweep]),
            "sweep_r": np.array([p["r"] for p in sweep]),
            "sweep_lambda": np.array(config.lambdas, dtype=float),
            "density_layer_matrix": density_table,
            "overlap_null": d["null"],
            "removal_random_losses": np.asarray(d["rows_extra"]["removal"]["random_removed"]),
            "subnetwork_mask_bits": np.packbits(
                np.concatenate([mask.values[s.key].numpy().ravel() for s in su.sites])
            ),
            **{f"resid_{k}_{kk}": vv for k, v in resid.items() for kk, vv in v.items()},
        }
    )
    heads = mask.by_head()
    result.figures.update(
        {
            "sweep": plots.sweep_figure(
                result.arrays["sweep_kept_fraction"],
                result.arrays["sweep_r"],
                config.lambdas,
                chosen=d["best"],
                r_soft=[p["r_soft"] for p in sweep],
                floor_r=d["floor"]["r"],
            ),
            "density": plots.density_heatmap(density_table, layers, mats),
            "surprisal_table": plots.surprisal_bars(
                d["rows"], d["rows_extra"].get("bigram_model_finite")
            ),
            "residual": plots.residual_figure(
                {k: v["recall"] for k, v in resid.items()},
                {k: v["final_r"] for k, v in resid.items()},
                config.recall_k,
            ),
        }
    )
    if heads:
        result.figures["head_density"] = plots.head_density(heads)
    if overlap:
        result.figures["overlap_null"] = plots.null_histogram(
            d["null"], overlap["observed"], overlap["p_value"]
        )


def _size_point(name: str, config: Config, lam: float, cfg) -> dict:
    """One bigram mask on another LM: its r, kept fraction and layer-0 MLP margin."""
    import interp
    from interp.data.bigram import Bigram
    from interp.methods.masks import train_mask
    from interp.models.recipes.code_lm import lm_batches

    m = interp.load_model(name, device=config.device)
    # a zoo LM reads its own recipe's corpus split; any other model the configured corpus
    reset = (
        {"corpus": None, "max_chars": None, "corpus_seed": None} if name.startswith("zoo:") else {}
    )
    sub_cfg = config.model_copy(update={"model": name, **reset})
    train_stream, held_stream, _ = corpus_streams(sub_cfg, m)
    seq_len = min(config.seq_len, m.cfg.n_ctx)
    bigram = Bigram.from_tokens(train_stream, vocab_size=m.cfg.d_vocab)
    res = train_mask(
        m,
        lm_batches(train_stream, seq_len, config.batch_size, config.seed * 1000 + 500),
        bigram.target_fn(m.device),
        cfg,
        desc=f"bigram mask {name}",
    )
    eval_tokens = windows(held_stream, config.n_eval, seq_len, config.seed + 1)
    r = pearson_finite(surprisals(m, eval_tokens, res.mask), bigram.surprisal(eval_tokens))
    comp = res.mask.by_component()
    others = [v for c, v in comp.items() if c != "L0.mlp"]
    return {
        "model": name,
        "n_layers": m.n_layers,
        "kept_fraction": res.mask.kept_fraction,
        "r": r,
        "by_component": comp,
        "l0_mlp_margin": comp.get("L0.mlp", float("nan")) - max(others, default=float("nan")),
    }
