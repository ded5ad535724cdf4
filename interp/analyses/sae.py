"""An SAE on a language model's residual stream: trained from a collected activation store,
judged by what SAE users look at first.

Steps: collect one hook's activations on training windows into a store on disk; train an SAE
on the store; measure on held-out windows its FVU, L0, dead and dense latents, and the
cross-entropy loss recovered when its reconstruction replaces the activation
(:func:`interp.sae.loss_recovered`: 0 = zero-ablation, 1 = clean); check that the spliced
forward with the error term is exact; and write feature pages (:mod:`interp.sae.features`),
which the dashboard's Features page reads.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Literal

import annotated_types as at
import torch
from pydantic import BaseModel, ConfigDict, model_validator

from interp.analyses import register
from interp.fields import (
    MAX_COUNT,
    CorpusSource,
    Count,
    Device,
    Fraction,
    ModelName,
    NonNegInt,
    PositiveFloat,
    Seed,
)
from interp.results import Result

log = logging.getLogger(__name__)


class Config(BaseModel):
    """Settings of the SAE experiment."""

    model_config = ConfigDict(extra="forbid")

    model: ModelName = "zoo:code-lm-tiny"
    corpus: CorpusSource = "stdlib"
    layer: Annotated[
        int, at.Ge(-64), at.Le(64)
    ] = -1  # resid_post of this block (negative: from the end)
    n_train: Count = 512  # training windows
    n_eval: Count = 64  # held-out windows for FVU, L0 and the loss recovered
    seq_len: Annotated[int, at.Ge(2), at.Le(MAX_COUNT)] = 64
    kind: Literal["relu", "topk", "jumprelu"] = "topk"
    d_sae: Count = 512
    k: Count = 32  # topk: active latents per token
    sparsity: Annotated[float, at.Ge(0.0), at.Le(100.0)] = 0.02  # relu / jumprelu penalty
    steps: Count = 2000
    batch_size: Count = 1024  # tokens per SAE step
    lr: PositiveFloat = 1e-3
    dense_above: Fraction = (
        0.1  # a latent firing on more than this fraction of tokens counts as dense
    )
    feature_k: Count = 10  # top contexts per latent on the feature pages
    collect_batch: Count = 32
    # Positions left out of training and evaluation at the start of each window. Position 0 of a
    # pretrained LM is an attention sink whose residual norm can be 100x the others' (SmolLM2:
    # ~25,000 against ~175 from layer 15 on); an SAE fitted to it spends its latents there.
    skip_first: NonNegInt = 1
    # Later positions with a residual norm above this multiple of the median are sinks too
    # (SmolLM2: ~0.08% of positions, mostly the second, at ~160x the median): left out of
    # training, of FVU/L0 and of the loss recovered's edits (they stay clean). None: keep all.
    sink_norm_ratio: Annotated[float, at.Gt(1.0), at.Le(1e6)] | None = 10.0
    corpus_chars: Count = 400_000  # characters of the corpus read (windows are drawn from them)
    # Keep the training store in the cache and reuse it on the next run with the same inputs
    # (the real model's 200k-token store takes minutes to collect); off: a temporary store.
    cache_store: bool = False
    device: Device = "cpu"
    seed: Seed = 0

    @model_validator(mode="after")
    def _k_fits(self) -> Config:
        if self.kind == "topk" and self.k > self.d_sae:  # all on: the L0 claim would hold trivially
            raise ValueError(
                f"k={self.k} is larger than d_sae={self.d_sae}; valid: 1..{self.d_sae}"
            )
        if self.skip_first >= self.seq_len - 1:
            raise ValueError(
                f"skip_first={self.skip_first} leaves nothing of seq_len={self.seq_len}; "
                f"valid: 0..{self.seq_len - 2}"
            )
        return self


# ------------------------------------------------------------------ steps
def load(config: Config):
    """The model and the hook name."""
    import interp
    from interp.fields import ConfigError, check_layer, check_seq_len

    m = interp.load_model(config.model, device=config.device)
    if m.tokenizer is None:
        raise ConfigError(
            f"model={config.model}: the sae experiment reads text, and this model has no tokenizer"
        )
    check_seq_len(m, config.seq_len)
    return m, m.hook("resid_post", check_layer(m, config.layer))


def collect_store(
    m, hook: str, tokens: torch.Tensor, root: Path, batch_size: int, skip_first: int = 0
):
    """The training activations, collected into a sharded store on disk (the SAE streams from it),
    from position ``skip_first`` on. A complete store already at ``root`` is reused."""
    import interp

    positions = slice(skip_first, None) if skip_first else "all"
    return interp.collect(
        m,
        tokens,
        [hook],
        batch_size=batch_size,
        out=root / "train_store",
        shard_size=64,
        positions=positions,
    )


def store_root(m, hook: str, config: Config) -> Path:
    """Where the training store of ``config`` is kept when ``cache_store`` is on: keyed by
    everything that decides its content (the store's own manifest also checks the weights)."""
    from interp.utils import cache_dir, config_hash

    key = config_hash(
        {
            "model": m.model_id,
            "hook": hook,
            "corpus": config.corpus,
            "n": config.n_train,
            "seq_len": config.seq_len,
            "seed": config.seed,
            "skip": config.skip_first,
            "chars": config.corpus_chars,
        }
    )
    return cache_dir() / "stores" / f"sae-{key}"


def train(store, hook: str, d_in: int, config: Config):
    """The SAE, trained on the store's activations."""
    from interp.sae import SAEConfig, SAETrainConfig, train_sae

    cfg = SAEConfig(
        d_in=d_in,
        d_sae=config.d_sae,
        kind=config.kind,
        k=config.k,
        init_seed=config.seed,
        hook_name=hook,
    )
    tc = SAETrainConfig(
        steps=config.steps,
        lr=config.lr,
        sparsity=config.sparsity,
        batch_size=config.batch_size,
        seed=config.seed,
        mse="sum",
        max_norm_ratio=config.sink_norm_ratio,
    )
    return train_sae(store, cfg, tc, hook=hook)


@torch.no_grad()
def evaluate(
    m, sae, hook: str, tokens: torch.Tensor, config: Config, max_norm: float | None = None
) -> dict:
    """Held-out FVU, L0, dead and dense latents, loss recovered, and the error-term check;
    positions whose norm exceeds ``max_norm`` (the training's sink threshold) are left out."""
    from interp.sae import loss_recovered, spliced
    from interp.sae.train import evaluate_sae
    from interp.tracing.trace import trace

    clean, acts = trace(m, tokens, capture=[hook])
    x = acts[hook][:, config.skip_first :].reshape(-1, acts[hook].shape[-1])
    n_positions = len(x)
    if max_norm is not None:
        x = x[x.norm(dim=-1) <= max_norm]
    quality = evaluate_sae(sae, x)
    density = (sae.encode(x) > 0).float().mean(0).numpy()
    with spliced(m, {hook: sae}, error_term=True):
        exact, _ = trace(m, tokens)
    lr = loss_recovered(
        m,
        sae,
        hook,
        tokens,
        batch_size=config.collect_batch,
        first_position=config.skip_first,
        max_norm=max_norm,
    )
    # relative to the logits' scale: float32 keeps ~7 digits of x - rec + rec, whatever x's size
    scale = max(1.0, float(clean.abs().max()))
    return {
        **quality,
        **lr,
        "density": density,
        "dense_frac": float((density > config.dense_above).mean()),
        "error_term_gap": float((exact - clean).abs().max()) / scale,
        "decoder_norm_gap": float((sae.W_dec.norm(dim=-1) - 1).abs().max()),
        "heldout_sink_frac": 1.0 - len(x) / max(n_positions, 1),
    }


def _check_sizes(m, config: Config) -> None:
    """Before any work: what the run holds in memory, and the store it writes to the temporary
    folder, fit this machine (:class:`~interp.fields.ConfigError` naming the settings otherwise)."""
    import tempfile

    from interp.fields import check_disk, check_fits

    d, tokens = m.cfg.d_model, config.n_eval * config.seq_len
    check_fits(
        {
            "training tokens": config.n_train * config.seq_len * 8,
            "held-out logits (x3)": 3 * tokens * m.cfg.d_vocab * 4,
            "held-out activations and codes": tokens * (d + config.d_sae) * 4,
        },
        "Lower n_train, n_eval, seq_len or d_sae.",
    )
    check_disk(
        Path(tempfile.gettempdir()) if not config.cache_store else store_root(m, "", config).parent,
        config.n_train * config.seq_len * d * 4,
        "the activation store of the training windows",
        "Lower n_train or seq_len.",
    )


def add_criteria(result: Result, ev: dict) -> None:
    result.add_criterion(
        "error_term_makes_splice_exact",
        ev["error_term_gap"],
        "<=",
        1e-5,
        kind="sanity",
        description="max |logits with the SAE spliced in plus its error term - clean logits| "
        "/ max(1, max |clean logits|)",
    )
    result.add_criterion(
        "decoder_rows_unit_norm",
        ev["decoder_norm_gap"],
        "<=",
        1e-4,
        kind="sanity",
        description="max | |W_dec row| - 1 | over the latents",
    )
    result.add_criterion(
        "loss_recovered",
        ev["loss_recovered"],
        ">=",
        0.9,
        kind="claim",
        description="(CE zero-ablated - CE spliced) / (CE zero-ablated - CE clean) on held-out text",
    )
    result.add_criterion(
        "l0_at_most_64",
        ev["l0"],
        "<=",
        64,
        kind="claim",
        description="mean active latents per held-out token (for topk it is k by construction; "
        "a real test for relu and jumprelu)",
    )


def figures(ev: dict, report: dict) -> dict:
    from interp.plotting import sae as plots

    return {
        "loss": plots.loss_bars(ev["ce_clean"], ev["ce_spliced"], ev["ce_zero"]),
        "density": plots.density_histogram(ev["density"]),
        "training": plots.training_curve(report["log"]),
    }


# ------------------------------------------------------------------ run
@register(
    "sae",
    Config,
    title="SAE on the residual stream: loss recovered, sparsity, feature pages",
    figure_order=("loss", "density", "training"),
)
def run(config: Config) -> Result:
    """Train an SAE from a collected store; loss recovered, L0, FVU, dead/dense latents, feature pages."""
    from interp.data.sae import token_windows
    from interp.sae.features import feature_pages

    torch.manual_seed(config.seed)
    m, hook = load(config)
    _check_sizes(m, config)
    windows = dict(
        seq_len=config.seq_len, max_chars=config.corpus_chars, start_token=m.start_token_id
    )
    train_tokens = token_windows(
        m.tokenizer, config.corpus, "train", config.n_train, seed=config.seed, **windows
    )
    eval_tokens = token_windows(
        m.tokenizer, config.corpus, "heldout", config.n_eval, seed=config.seed + 1, **windows
    )
    root = (
        store_root(m, hook, config)
        if config.cache_store
        else Path(tempfile.mkdtemp(prefix="interp-sae-"))
    )
    try:
        store = collect_store(m, hook, train_tokens, root, config.collect_batch, config.skip_first)
        d_in = int(store.manifest.arrays[hook].shape[-1])
        sae, report = train(store, hook, d_in, config)
        ev = evaluate(m, sae, hook, eval_tokens, config, report["max_norm"])
        pages = feature_pages(sae, store, hook, model=m, k=config.feature_k)
    finally:
        if not config.cache_store:
            shutil.rmtree(root, ignore_errors=True)
    result = Result("sae")
    add_criteria(result, ev)
    result.metrics.update(
        {
            k: ev[k]
            for k in (
                "fvu",
                "l0",
                "dead_frac",
                "dense_frac",
                "ce_clean",
                "ce_spliced",
                "ce_zero",
                "loss_recovered",
            )
        }
    )
    result.metrics.update(
        {
            "hook": hook,
            "train_tokens": int(len(train_tokens) * (config.seq_len - config.skip_first)),
            "skip_first": config.skip_first,
            "d_in": d_in,
            "input_scale": float(sae.cfg.input_scale),
            "train_fvu": report["fvu"],
            "train_seconds": report["seconds"],
            "resampled": report["resampled"],
            "sink_norm": report["max_norm"],
            "train_sink_frac": report["sink_rows"] / max(report["n_rows"], 1),
            "heldout_sink_frac": ev["heldout_sink_frac"],
        }
    )
    result.arrays["latent_density"] = ev["density"]
    result.figures.update(figures(ev, report))
    pages.to_result(result)
    log.info(
        "sae on %s: loss recovered %.3f, L0 %.1f, FVU %.3f, dead %.2f",
        hook,
        ev["loss_recovered"],
        ev["l0"],
        ev["fvu"],
        ev["dead_frac"],
    )
    return result
