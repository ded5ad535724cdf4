"""Bigram subnetworks (Chang & Bergen 2025): the fewest weights that make an LM a bigram model.

Continuous-sparsification masks (:mod:`interp.methods.masks`) are trained on every block
matrix of a trained zoo LM, frozen, so that the masked model's next-token distribution
matches the corpus bigram distribution ``P(w_i | w_{i-1})`` (:mod:`interp.data.bigram`),
for a sweep of density penalties ``lambda``. On held-out text the analysis then measures:

- the Pearson r between per-token surprisals of each subnetwork and of the bigram model
  (infinite bigram surprisals dropped), against the fraction of maskable weights kept;
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
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from interp.analyses import register
from interp.results import Result

log = logging.getLogger(__name__)


class Config(BaseModel):
    """Settings of the bigram-subnetwork analysis."""

    model_config = ConfigDict(extra="forbid")

    model: str = "zoo:code-lm-tiny"
    size_models: list[str] = Field(default_factory=list)  # more LMs: one mask each at the chosen lambda
    corpus: Optional[str] = None  # None: the zoo recipe's corpus (else stdlib)
    max_chars: Optional[int] = None  # None: the zoo recipe's (else 400k)
    corpus_seed: Optional[int] = None  # None: the zoo recipe's seed (so held-out files are the model's)
    lambdas: list[float] = Field(default_factory=lambda: [1.0, 5.0, 20.0])
    mask_steps: int = 1000
    batch_size: int = 16
    seq_len: int = 128  # clipped to the model's n_ctx
    lr: float = 1e-2
    init_logit: float = 0.1
    temperature_growth: float = 1.004  # paper 1.001; 1.004 lets soft and hard masks agree in ~1k steps
    max_kept: float = 0.10  # "sparse" for the r criterion and for choosing the main subnetwork
    pruning_mask: bool = True
    n_null: int = 10_000
    n_random: int = 3  # random same-structure subnetworks averaged
    n_eval: int = 64  # held-out sequences for surprisals
    n_resid: int = 48  # held-out sequences for the residual-stream maps
    ridge_alpha: float = 1e-2  # relative to the mean eigenvalue of X^T X
    recall_k: int = 10
    device: str = "auto"
    seed: int = 0


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
    for k, v in (("corpus", config.corpus), ("max_chars", config.max_chars), ("seed", config.corpus_seed)):
        if v is not None:
            src[k] = v
    corpus = load_corpus(src["corpus"], max_chars=src["max_chars"], seed=src["seed"])
    bos = m.tokenizer.bos_token_id
    return (tokenize_corpus(corpus.train, m.tokenizer, bos), tokenize_corpus(corpus.heldout, m.tokenizer, bos), src)


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
def surprisals(m, tokens: torch.Tensor, mask=None, complement: bool = False, batch_size: int = 16) -> np.ndarray:
    """``[n, pos-1]`` next-token surprisal (nats) of the model, under ``mask`` if given."""
    import contextlib

    from interp.methods.masks import native

    root = native(m)
    out = []
    ctx = mask.apply(m, complement=complement) if mask is not None else contextlib.nullcontext()
    with ctx:
        for i in range(0, len(tokens), batch_size):
            x = tokens[i : i + batch_size].to(m.device)
            logp = F.log_softmax(root(x).float(), dim=-1)
            out.append(-logp[:, :-1].gather(-1, x[:, 1:, None]).squeeze(-1).cpu().numpy())
    return np.concatenate(out)


def pearson_finite(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r over entries where both are finite."""
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or a[ok].std() == 0 or b[ok].std() == 0:
        return float("nan")
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def ridge_fit(X: torch.Tensor, Y: torch.Tensor, alpha: float):
    """Ridge map with intercept: returns ``predict(X') -> Y'``. ``alpha`` is relative to the
    mean eigenvalue of the centred ``X^T X``."""
    X, Y = X.double(), Y.double()
    mx, my = X.mean(0), Y.mean(0)
    Xc, Yc = X - mx, Y - my
    G = Xc.T @ Xc  # [d, d]
    reg = alpha * torch.trace(G) / G.shape[0]
    W = torch.linalg.solve(G + reg * torch.eye(G.shape[0], dtype=G.dtype), Xc.T @ Yc)  # [d_in, d_out]
    return lambda Z: ((Z.double() - mx) @ W + my).float()


@torch.no_grad()
def residual_maps(m, tokens: torch.Tensor, mask=None, *, alpha: float, k: int, seed: int) -> dict[str, np.ndarray]:
    """Per residual stream (embedding, then after each layer): recall@k of the current token
    from a ridge map to the embedding space, and Pearson r between the real surprisals and
    those read from a ridge map to the final residual stream. Maps are fitted on half of the
    sequences and scored on the other half."""
    import contextlib

    from interp.tracing.trace import trace

    L = m.n_layers
    names = ["blocks.0.hook_resid_pre"] + [f"blocks.{l}.hook_resid_post" for l in range(L)]
    ctx = mask.apply(m) if mask is not None else contextlib.nullcontext()
    acts = {n: [] for n in names}
    logits = []
    with ctx:
        for i in range(0, len(tokens), 16):
            out, a = trace(m, tokens[i : i + 16], capture=names)
            logits.append(out.float().cpu())
            for n in names:
                acts[n].append(a[n].float().cpu())
        W_E = m.module.W_E.detach().float().cpu()  # [vocab, d_model]
        ln_final, unembed = m.module.ln_final, m.module.unembed
        g = torch.Generator().manual_seed(seed)
        order = torch.randperm(len(tokens), generator=g)
        tr, te = order[: len(tokens) // 2], order[len(tokens) // 2 :]
        tok = tokens[:, 1:-1]  # skip BOS-like position 0 and the last (no next token)
        nxt = tokens[:, 2:]
        logits = torch.cat(logits)[:, 1:-1]
        real = -F.log_softmax(logits[te], -1).gather(-1, nxt[te, :, None]).squeeze(-1).reshape(-1)
        final = torch.cat(acts[names[-1]])[:, 1:-1]  # [n, pos, d]
        E_unit = F.normalize(W_E, dim=-1)
        recall, final_r = np.zeros(L + 1), np.zeros(L + 1)
        d = final.shape[-1]
        for j, n in enumerate(names):
            X = torch.cat(acts[n])[:, 1:-1]  # [n, pos, d]
            # current token: map to its input embedding, rank all tokens by cosine
            to_tok = ridge_fit(X[tr].reshape(-1, d), W_E[tok[tr].reshape(-1)], alpha)
            sims = F.normalize(to_tok(X[te].reshape(-1, d)), dim=-1) @ E_unit.T  # [N, vocab]
            true = sims.gather(-1, tok[te].reshape(-1, 1))
            recall[j] = float(((sims > true).sum(-1) < k).float().mean())
            # next token: map to the final residual, read it out through ln_final + unembed
            to_fin = ridge_fit(X[tr].reshape(-1, d), final[tr].reshape(-1, d), alpha)
            pred = to_fin(X[te].reshape(-1, d)).to(m.dtype).to(m.device)
            lp = F.log_softmax(unembed(ln_final(pred[None]))[0].float().cpu(), -1)
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


# ------------------------------------------------------------------ the run
@register("bigram", Config, title="Bigram subnetworks (continuous-sparsification masks)",
          paper="Chang & Bergen 2025, Bigram subnetworks: mapping to next tokens in transformer language models",
          figure_order=("sweep", "density", "surprisal_table", "residual", "overlap_null", "head_density"))
def run(config: Config) -> Result:
    """Lambda sweep of bigram masks, necessity/sufficiency, pruning overlap, residual maps."""
    import interp
    from interp.data.bigram import Bigram
    from interp.methods.masks import Mask, MaskTrainConfig, find_sites, native, row_shuffle_null, train_mask
    from interp.models.recipes.code_lm import lm_batches
    from interp.plotting import bigram as plots
    from interp.utils import seed_everything

    t_start = time.time()
    seed_everything(config.seed)
    m = interp.load_model(config.model, device=config.device)
    if m.kind != "transformer" or m.tokenizer is None:
        raise ValueError(f"bigram needs a transformer LM with a tokenizer; {config.model} is a {m.kind}")
    V, seq_len = m.cfg.d_vocab, min(config.seq_len, m.cfg.n_ctx)
    train_stream, held_stream, src = corpus_streams(config, m)
    log.info("model %s; corpus %s: %d train / %d held-out tokens", m.model_id, src, len(train_stream), len(held_stream))
    bigram = Bigram.from_tokens(train_stream, vocab_size=V)
    table = bigram.dense().to(m.device)  # [vocab, vocab] P(next | prev)
    target_fn = lambda tokens: table[tokens]  # noqa: E731  [batch, pos, vocab]
    eval_tokens = windows(held_stream, config.n_eval, seq_len, config.seed + 1)
    resid_tokens = windows(held_stream, config.n_resid, seq_len, config.seed + 2)
    bigram_s = bigram.surprisal(eval_tokens)
    root = native(m)
    base_state = {k: v.detach().clone() for k, v in root.state_dict().items()}
    sites = find_sites(m)
    n_mask = sum(s.size for s in sites)
    log.info("%d maskable matrices, %d weights", len(sites), n_mask)

    def mask_cfg(lam: float) -> MaskTrainConfig:
        return MaskTrainConfig(lam=lam, steps=config.mask_steps, lr=config.lr, init_logit=config.init_logit,
                               temperature_growth=config.temperature_growth)

    # ---- lambda sweep
    full_s = surprisals(m, eval_tokens)
    sweep, masks = [], []
    for i, lam in enumerate(config.lambdas):
        t0 = time.time()
        res = train_mask(m, lm_batches(train_stream, seq_len, config.batch_size, config.seed * 1000 + i), target_fn,
                         mask_cfg(lam), sites=sites, desc=f"bigram mask lambda={lam}")
        sub_s = surprisals(m, eval_tokens, res.mask)
        res.logits.train()  # the soft mask sigmoid(T*s) at the final T, for the soft/hard gap
        soft_s = surprisals(m, eval_tokens, _SoftMask(res.logits))
        res.logits.eval()
        point = {"lambda": lam, "kept_fraction": res.mask.kept_fraction, "r": pearson_finite(sub_s, bigram_s),
                 "r_soft": pearson_finite(soft_s, bigram_s), "final_temperature": res.logits.temperature,
                 "loss": float(sub_s.mean()), "steps": res.steps, "stopped_early": res.stopped_early,
                 "final_undecided": res.log[-1]["undecided"] if res.log else None, "seconds": time.time() - t0,
                 "by_component": res.mask.by_component()}
        log.info("lambda %g: kept %.3f%%, r %.3f (soft mask %.3f), %d steps (%.0f s)", lam,
                 100 * point["kept_fraction"], point["r"], point["r_soft"], res.steps, point["seconds"])
        res.mask.meta["name"] = f"bigram_lambda_{lam:g}"
        sweep.append(point)
        masks.append(res.mask)
    sparse_ok = [i for i, p in enumerate(sweep) if p["kept_fraction"] <= config.max_kept]
    best = (max(sparse_ok, key=lambda i: np.nan_to_num(sweep[i]["r"], nan=-1)) if sparse_ok
            else min(range(len(sweep)), key=lambda i: sweep[i]["kept_fraction"]))
    mask, lam = masks[best], config.lambdas[best]
    log.info("chosen subnetwork: lambda %g (%s)", lam, mask)

    # ---- necessity / sufficiency
    randoms = [mask.shuffled(config.seed * 7919 + j) for j in range(config.n_random)]
    rows = {
        "full": float(full_s.mean()),
        "subnetwork": float(surprisals(m, eval_tokens, mask).mean()),
        "random_subnetwork": float(np.mean([surprisals(m, eval_tokens, r).mean() for r in randoms])),
        "complement": float(surprisals(m, eval_tokens, mask, complement=True).mean()),
        "random_complement": float(np.mean([surprisals(m, eval_tokens, r, complement=True).mean() for r in randoms])),
    }
    finite = np.isfinite(bigram_s)
    rows_extra = {"bigram_model_finite": float(bigram_s[finite].mean()), "bigram_infinite_frac": float(1 - finite.mean())}
    log.info("surprisal table: %s", rows)

    # ---- overlap with the optimal pruning mask
    overlap = {}
    null = np.zeros(0)
    if config.pruning_mask:
        t0 = time.time()
        prune = train_mask(m, lm_batches(train_stream, seq_len, config.batch_size, config.seed * 1000 + 999), "self",
                           mask_cfg(lam), sites=sites, desc="pruning mask").mask
        observed = mask.overlap(prune)
        null = row_shuffle_null(mask, prune, config.n_null, config.seed + 3)
        p = (1 + int((null >= observed).sum())) / (1 + len(null))
        overlap = {"pruning_kept_fraction": prune.kept_fraction, "observed": observed,
                   "observed_frac_of_subnetwork": observed / max(1, mask.n_kept),
                   "null_mean": float(null.mean()), "null_std": float(null.std()), "p_value": p,
                   "n_null": len(null), "pruning_loss": float(surprisals(m, eval_tokens, prune).mean()),
                   "seconds": time.time() - t0}
        log.info("pruning overlap: %s", overlap)

    # ---- residual stream maps
    resid = {name: residual_maps(m, resid_tokens, mk, alpha=config.ridge_alpha, k=config.recall_k,
                                 seed=config.seed + 4)
             for name, mk in (("full", None), ("subnetwork", mask), ("random", randoms[0]))}

    # ---- sanity: masks leave the base alone and compose as specified
    x = eval_tokens[:8].to(m.device)
    with torch.no_grad():
        base_logits = root(x)
        with Mask.ones(sites).apply(m):
            ones_gap = float((root(x) - base_logits).abs().max())
        with Mask.zeros(sites).apply(m):
            zeros_logits = root(x)
        saved = {s.key: root.get_submodule(s.path).weight.detach().clone() for s in sites}
        try:
            for s in sites:
                root.get_submodule(s.path).weight.zero_()
            zeros_gap = float((root(x) - zeros_logits).abs().max())
        finally:
            for s in sites:
                root.get_submodule(s.path).weight.copy_(saved[s.key])
    base_gap = max(float((v - base_state[k]).abs().max()) for k, v in root.state_dict().items() if v.is_floating_point())
    size_gap = sum(abs(int(r.values[k].sum()) - int(mask.values[k].sum())) for r in randoms for k in mask.values)
    partition_gap = mask.n_kept + mask.complement().n_kept - n_mask

    # ---- other model sizes: the first-MLP finding
    sizes = []
    for name in config.size_models:
        sizes.append(_size_point(name, config, lam, mask_cfg(lam)))

    density_table, layers, mats = mask.layer_matrix_table()
    comp = mask.by_component()
    l0_mlp = comp.get("L0.mlp", float("nan"))
    others = [v for c, v in comp.items() if c != "L0.mlp"]
    result = Result("bigram")
    result.metrics.update({
        "model": m.model_id, "corpus": src, "n_maskable": n_mask, "n_sites": len(sites), "vocab": V,
        "seq_len": seq_len, "train_tokens": int(len(train_stream)), "heldout_tokens": int(len(held_stream)),
        "sweep": sweep, "chosen_lambda": lam, "chosen_kept_fraction": mask.kept_fraction,
        "chosen_r": sweep[best]["r"], "full_model_r": pearson_finite(full_s, bigram_s),
        "surprisal": {**rows, **rows_extra}, "overlap": overlap, "kept_by_component": comp,
        "kept_by_layer": {str(k): v for k, v in mask.by_layer().items()}, "kept_by_matrix": mask.by_matrix(),
        "residual": {k: {kk: vv.tolist() for kk, vv in v.items()} for k, v in resid.items()},
        "size_models": sizes, "temperature_growth": config.temperature_growth, "seconds": time.time() - t_start,
    })
    sparse_r = max([sweep[i]["r"] for i in sparse_ok], default=float("nan"))
    result.add_criterion("hard_ones_mask_equals_base", ones_gap, "<=", 0.0, kind="sanity",
                         description="max |logits with an all-ones hard mask - base logits|")
    result.add_criterion("zeros_mask_equals_zeroed_weights", zeros_gap, "<=", 0.0, kind="sanity",
                         description="max |logits with an all-zeros mask - logits with those matrices zeroed|")
    result.add_criterion("base_weights_unchanged", base_gap, "<=", 0.0, kind="sanity",
                         description="max |base weight after the run - before| (masks never write weights)")
    result.add_criterion("random_masks_same_size_per_matrix", size_gap, "==", 0, kind="sanity",
                         description="sum over matrices of |kept(random) - kept(subnetwork)|")
    result.add_criterion("complement_partitions_weights", partition_gap, "==", 0, kind="sanity",
                         description="kept(subnetwork) + kept(complement) - |M|")
    result.add_criterion("bigram_rows_sum_to_one", float((table.sum(-1) - 1).abs().max()), "<=", 1e-4, kind="sanity",
                         description="max |sum_next P(next | prev) - 1| over the vocabulary")
    result.add_criterion("sparse_subnetwork_r", sparse_r, ">=", 0.9, kind="claim",
                         description=f"best surprisal r with the bigram model among lambdas keeping <= "
                                     f"{config.max_kept:.0%} of maskable weights")
    result.add_criterion("layer0_mlp_densest", l0_mlp - max(others, default=float("nan")), ">", 0.0, kind="claim",
                         description="kept density of layer-0 MLP minus the densest other layer component "
                                     "(attn / mlp per layer) of the chosen subnetwork")
    result.add_criterion("subnetwork_far_below_random", rows["random_subnetwork"] - rows["subnetwork"], ">=", 1.0,
                         kind="claim", description="held-out surprisal of random same-structure subnetworks minus "
                                                   "the bigram subnetwork alone (nats)")
    result.add_criterion("removal_hurts_more_than_random",
                         rows["complement"] - rows["random_complement"], ">", 0.0, kind="claim",
                         description="surprisal with the subnetwork removed minus with a random same-structure set "
                                     "removed (nats)")
    if overlap:
        result.add_criterion("overlap_with_pruning_mask_p", overlap["p_value"], "<", 0.01, kind="claim",
                             description=f"one-sided p of the overlap with the optimal-pruning mask against "
                                         f"{len(null)} within-matrix row shuffles")
    for sp in sizes:
        result.add_criterion(f"layer0_mlp_densest@{sp['model']}", sp["l0_mlp_margin"], ">", 0.0, kind="claim",
                             description=f"layer-0 MLP density margin for {sp['model']} (one mask at lambda {lam:g})")

    result.arrays.update({
        "sweep_kept_fraction": np.array([p["kept_fraction"] for p in sweep]),
        "sweep_r": np.array([p["r"] for p in sweep]), "sweep_lambda": np.array(config.lambdas, dtype=float),
        "density_layer_matrix": density_table, "overlap_null": null,
        "subnetwork_mask_bits": np.packbits(np.concatenate([mask.values[s.key].numpy().ravel() for s in sites])),
        **{f"resid_{k}_{kk}": vv for k, v in resid.items() for kk, vv in v.items()},
    })
    heads = mask.by_head()
    result.figures.update({
        "sweep": plots.sweep_figure(result.arrays["sweep_kept_fraction"], result.arrays["sweep_r"], config.lambdas,
                                    chosen=best, r_soft=[p["r_soft"] for p in sweep]),
        "density": plots.density_heatmap(density_table, layers, mats),
        "surprisal_table": plots.surprisal_bars(rows, rows_extra.get("bigram_model_finite")),
        "residual": plots.residual_figure({k: v["recall"] for k, v in resid.items()},
                                          {k: v["final_r"] for k, v in resid.items()}, config.recall_k),
    })
    if heads:
        result.figures["head_density"] = plots.head_density(heads)
    if overlap:
        result.figures["overlap_null"] = plots.null_histogram(null, overlap["observed"], overlap["p_value"])
    return result


def _size_point(name: str, config: Config, lam: float, cfg) -> dict:
    """One bigram mask on another LM: its r, kept fraction and layer-0 MLP margin."""
    import interp
    from interp.data.bigram import Bigram
    from interp.methods.masks import train_mask
    from interp.models.recipes.code_lm import lm_batches

    m = interp.load_model(name, device=config.device)
    # a zoo LM reads its own recipe's corpus split; any other model the configured corpus
    reset = {"corpus": None, "max_chars": None, "corpus_seed": None} if name.startswith("zoo:") else {}
    sub_cfg = config.model_copy(update={"model": name, **reset})
    train_stream, held_stream, _ = corpus_streams(sub_cfg, m)
    seq_len = min(config.seq_len, m.cfg.n_ctx)
    bigram = Bigram.from_tokens(train_stream, vocab_size=m.cfg.d_vocab)
    table = bigram.dense().to(m.device)  # [vocab, vocab]
    res = train_mask(m, lm_batches(train_stream, seq_len, config.batch_size, config.seed * 1000 + 500),
                     lambda t: table[t], cfg, desc=f"bigram mask {name}")
    eval_tokens = windows(held_stream, config.n_eval, seq_len, config.seed + 1)
    r = pearson_finite(surprisals(m, eval_tokens, res.mask), bigram.surprisal(eval_tokens))
    comp = res.mask.by_component()
    others = [v for c, v in comp.items() if c != "L0.mlp"]
    return {"model": name, "n_layers": m.n_layers, "kept_fraction": res.mask.kept_fraction, "r": r,
            "by_component": comp, "l0_mlp_margin": comp.get("L0.mlp", float("nan")) - max(others, default=float("nan"))}
