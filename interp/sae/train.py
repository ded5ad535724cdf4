"""Train an SAE on activations held in memory or streamed from an :class:`interp.ActivationStore`.

    sae, report = train_sae(x, SAEConfig(d_in=64, d_sae=200), SAETrainConfig(steps=500))
    tc = SAETrainConfig(steps=20_000, batch_size=4096, checkpoint_every=1000)
    sae, report = train_sae(store, cfg, tc, hook=hook, checkpoint_dir="ckpt",
                            eval_data=heldout, model=m, eval_tokens=toks)
    report["metrics"]  # one point per checkpoint: step, fvu, l0, dead/dense frac, loss_recovered

**Batches.** Full batch when ``batch_size`` is None (the paper trains on a handful of prompts;
the rows are then all in memory). Minibatches stream (:class:`ShuffledStream`): each epoch visits
the store's shards in a shuffled order, holds as many of them as fit in ``buffer_rows`` rows,
and draws batches from those rows in a shuffled order; memory is bounded by the buffer plus a
batch, never the store. A tensor is one shard, shuffled whole. Batch ``s`` is rows
``[s * batch_size, (s + 1) * batch_size)`` of that fixed sequence, so it depends on the step only.

**Sinks.** With ``max_norm_ratio`` set, rows whose norm exceeds that multiple of the median row
norm are left out of everything: the moments, the batches (a batch loses the few it drew), the
resampling pool and the metrics. A pretrained LM's attention sinks are such rows (SmolLM2-135M:
about 0.08% of positions after the first, at ~160x the median norm); a handful of them dominate
the scale and the squared error, and an SAE fitted with them recovers little of the loss.

**Optimisation.** Adam (1e-3, betas 0.9/0.999, no weight decay), constant learning rate. Inputs
are scaled so that E|x|^2 = 1 (one streaming pass over the data first; the scale is stored in
``SAEConfig.input_scale``) and ``b_dec`` starts at their mean. After every step the decoder rows
are renormalised to unit norm; every ``resample_every`` steps latents that fired on no row of a
pool (the rows in the buffer, at most 16384) are re-initialised towards the rows reconstructed
worst (Anthropic's resampling; Adam keeps its moments for them).

**Checkpoints.** Every ``checkpoint_every`` steps and at the end the trainer measures a metric
point (:func:`interp.sae.metrics.latent_stats` on ``eval_data``, held-out rows, or else on the
first ``eval_rows`` training rows; :func:`interp.sae.metrics.loss_recovered` when ``model`` and
``eval_tokens`` are given). With ``checkpoint_dir`` it also writes ``step_<8 digits>/``
atomically: the SAE in SAELens's layout (``cfg.json``, ``sae_weights.safetensors``) and
``train_state.pt`` (unfolded parameters, Adam state, step, resampling RNG, log and metric points).
A run started again with the same data, configs and directory resumes from the newest one and
ends with the same weights, bit for bit, as a run never interrupted.
"""

from __future__ import annotations

import logging
import math
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import annotated_types as at
import torch
from jaxtyping import Float, Int
from pydantic import BaseModel, ConfigDict

from interp.sae.metrics import latent_stats
from interp.sae.model import SAE, SAEConfig

# The rows and the batch stream live in interp/sae/rows.py; re-exported here, the import path
# callers have always used.
from interp.sae.rows import RowSource as RowSource
from interp.sae.rows import ShuffledStream as ShuffledStream
from interp.sae.rows import as_matrix as as_matrix
from interp.sae.rows import check_finite

if TYPE_CHECKING:
    from interp.tracing.store import ActivationStore

log = logging.getLogger(__name__)

STATE_FILE = "train_state.pt"
RESAMPLE_ROWS = 16384  # rows a dead latent must fire on none of to be resampled
_STEP_DIR = re.compile(r"^step_(\d{8})$")


class SAETrainConfig(BaseModel):
    """Optimisation of an SAE (defaults: the paper's Adam 1e-3, L1 0.02, full batch)."""

    model_config = ConfigDict(extra="forbid")

    steps: Annotated[int, at.Ge(1)] = 1000
    lr: Annotated[float, at.Gt(0.0), at.Lt(float("inf"))] = 1e-3
    # L1 coefficient (relu), L0 coefficient (jumprelu); unused by topk
    sparsity: Annotated[float, at.Ge(0.0), at.Lt(float("inf"))] = 0.02
    batch_size: Annotated[int, at.Ge(1)] | None = None  # None: full batch (all rows in memory)
    normalise: bool = True  # scale inputs so that E|x|^2 = 1 (stored in SAEConfig.input_scale)
    mse: Literal["sum", "mean"] = "sum"  # reconstruction error summed over features, or averaged
    # ("mean" with normalise=False is the paper's F.mse_loss on raw activations)
    resample_every: Annotated[int, at.Ge(0)] = 250  # 0: never resample dead latents
    resample_until: Annotated[float, at.Ge(0.0), at.Le(1.0)] = 0.75  # none in the last quarter
    seed: Annotated[int, at.Ge(0)] = 0
    log_every: Annotated[int, at.Ge(1)] = 100
    progress: bool = False  # show a progress bar (noise when training many small SAEs)
    # minibatches: rows held and shuffled together (at least one shard)
    buffer_rows: Annotated[int, at.Ge(1)] = 1 << 16
    # steps between checkpoints (metric points, files); 0: at the end only
    checkpoint_every: Annotated[int, at.Ge(0)] = 0
    keep_checkpoints: Annotated[int, at.Ge(0)] = 2  # newest step_* folders kept (0: all)
    # training rows measured at a checkpoint when no eval_data is given
    eval_rows: Annotated[int, at.Ge(1)] = 8192
    # a latent firing on more than this fraction of rows is dense
    dense_above: Annotated[float, at.Ge(0.0), at.Le(1.0)] = 0.1
    # rows with norm > this x the median row norm are sinks, left out (None: keep every row)
    max_norm_ratio: Annotated[float, at.Gt(1.0), at.Lt(float("inf"))] | None = None


# ------------------------------------------------------------------ metrics and resampling
@torch.no_grad()
def evaluate_sae(
    sae: SAE, x: Float[torch.Tensor, "n d_in"], chunk: int = 8192, dense_above: float = 0.1
) -> dict[str, float]:
    """FVU, L0 (mean active latents), dead and dense fractions of ``sae`` on rows
    ``x [n, d_in]``."""
    stats = latent_stats(
        sae, (x[i : i + chunk] for i in range(0, len(x), chunk)), dense_above=dense_above
    )
    return {k: stats[k] for k in ("fvu", "l0", "dead_frac", "dense_frac")}


@torch.no_grad()
def resample_dead(sae: SAE, xs: Float[torch.Tensor, "n d_in"], g: torch.Generator) -> int:
    """Re-initialise latents that fire on no row of ``xs`` (scaled inputs); return how many."""
    f = sae.kind.activate(sae, sae.pre_acts(xs))
    dead = (f == 0).all(0).nonzero().flatten()
    if len(dead) == 0:
        return 0
    resid = (xs - (f @ sae.W_dec + sae.b_dec)).pow(2).sum(-1)  # [n]
    if resid.sum() <= 0:
        return 0
    rows = torch.multinomial(resid / resid.sum(), len(dead), replacement=True, generator=g)
    dirs = xs[rows] - sae.b_dec
    dirs = dirs / dirs.norm(dim=-1, keepdim=True).clamp_min(1e-8)  # [n_dead, d_in]
    alive = torch.ones(sae.cfg.d_sae, dtype=torch.bool)
    alive[dead] = False
    enc_norm = sae.W_enc[:, alive].norm(dim=0).mean() if alive.any() else torch.tensor(1.0)
    sae.W_dec[dead] = dirs
    sae.W_enc[:, dead] = dirs.T * 0.2 * enc_norm
    sae.b_enc[dead] = 0.0
    return len(dead)


def metric_point(
    sae: SAE,
    step: int,
    evals: RowSource,
    tc: SAETrainConfig,
    model: Any = None,
    hook: str | None = None,
    eval_tokens: torch.Tensor | None = None,
    on: str = "heldout",
) -> dict[str, Any]:
    """One checkpoint's metrics: FVU, L0, dead and dense fractions on ``evals`` (its first
    ``eval_rows`` rows when ``on="train"``), and the loss recovered when a model is given."""
    from interp.sae.metrics import loss_recovered

    limit = tc.eval_rows if on == "train" else None
    stats = latent_stats(sae, evals.chunks(limit=limit), dense_above=tc.dense_above)
    point = {
        "step": step,
        "on": on,
        **{k: stats[k] for k in ("fvu", "l0", "dead_frac", "dense_frac", "n_rows")},
    }
    if model is not None and eval_tokens is not None and hook is not None:
        lr = loss_recovered(model, sae, hook, eval_tokens, max_norm=evals.max_norm)
        point.update({k: lr[k] for k in ("loss_recovered", "ce_clean", "ce_spliced", "ce_zero")})
    return point


# ------------------------------------------------------------------ checkpoints
def latest_checkpoint(checkpoint_dir: str | Path) -> Path | None:
    """The newest complete ``step_*`` folder under ``checkpoint_dir`` (None: there is none)."""
    root = Path(checkpoint_dir)
    found = (
        sorted(
            p for p in root.glob("step_*") if _STEP_DIR.match(p.name) and (p / STATE_FILE).exists()
        )
        if root.exists()
        else []
    )
    return found[-1] if found else None


def _checkpoint_problem(path: Path) -> str:
    """ "" when ``path`` is a checkpoint folder holding only what ``_write_checkpoint`` writes."""
    from interp.sae.files import CFG_FILE, WEIGHTS_FILE
    from interp.utils import owned_dir_problem

    def allowed(rel: str) -> bool:
        return rel in (CFG_FILE, WEIGHTS_FILE, STATE_FILE)

    def has_state(p: Path) -> bool:
        return (p / STATE_FILE).is_file()

    return owned_dir_problem(path, "an SAE checkpoint", allowed, has_state)


def _write_checkpoint(root: Path, sae: SAE, state: dict[str, Any], keep: int) -> Path:
    from interp.utils import atomic_path

    path = root / f"step_{state['step']:08d}"
    with atomic_path(path, owned=_checkpoint_problem) as tmp:  # appears whole or not at all
        sae.save(tmp)
        torch.save(state, tmp / STATE_FILE)
    if keep:  # older checkpoints go; a step_* folder that is not one of ours stays
        old = sorted(p for p in root.glob("step_*") if _STEP_DIR.match(p.name))[:-keep]
        for p in old:
            if not _checkpoint_problem(p):
                shutil.rmtree(p, ignore_errors=True)
    return path


def _same(what: str, saved: dict[str, Any], now: dict[str, Any], path: Path) -> None:
    diff = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
    if diff:
        changes = "; ".join(f"{k}: {saved.get(k)!r} there, {now.get(k)!r} now" for k in diff)
        raise ValueError(
            f"checkpoint {path} was written with other {what} ({changes}); resume with the same "
            "settings or use a new checkpoint_dir"
        )


def _resume(
    path: Path, sae_cfg: SAEConfig, tc: SAETrainConfig, data: dict[str, Any]
) -> dict[str, Any]:
    from interp.models.train import load_checkpoint

    state: dict[str, Any] = load_checkpoint(path / STATE_FILE)
    _same("training settings", state["train_cfg"], _train_key(tc), path)
    _same(
        "SAE settings",
        {k: v for k, v in state["sae_cfg"].items() if k != "input_scale"},
        {k: v for k, v in sae_cfg.model_dump().items() if k != "input_scale"},
        path,
    )
    _same("data", state["data"], data, path)
    return state


def _drop_sinks(src: RowSource, ratio: float | None) -> dict[str, Any]:
    """Mark ``src``'s sink rows (norm above ``ratio`` x the median; see the module docstring) and,
    for an in-memory source, drop them. Returns the report's ``max_norm`` and ``sink_rows``."""
    if ratio is None:
        return {"max_norm": None, "sink_rows": 0}
    threshold, n_sinks = src.set_sink_threshold(ratio)
    if src.store is None:
        src.tensor = src.keep(src.tensor)
        src.shard_rows = [len(src.tensor)]
        src.n_rows = len(src.tensor)
    if n_sinks:
        log.info("SAE training: %d sink rows above norm %.4g left out", n_sinks, threshold)
    return {"max_norm": threshold, "sink_rows": n_sinks}


def _train_key(tc: SAETrainConfig) -> dict[str, Any]:
    return tc.model_dump(exclude={"progress", "log_every", "keep_checkpoints"})


def _scaled(
    src: RowSource, cfg: SAEConfig, tc: SAETrainConfig, full: bool
) -> tuple[SAEConfig, torch.Tensor | None]:
    """``cfg`` with the input scale that makes E|x|^2 = 1 (1 without ``tc.normalise``), and the
    rows' mean where a streaming pass read it (None for the full batch, whose mean is taken from
    the scaled rows)."""
    if full:  # the scale exactly as the full-batch trainer has always computed it
        x = src.tensor.float()
        check_finite(x)
        scale = (
            float(1.0 / x.pow(2).sum(-1).mean().sqrt().clamp_min(1e-12)) if tc.normalise else 1.0
        )
        return cfg.model_copy(update={"input_scale": scale}), None
    mean, sq = src.moments()
    scale = float(1.0 / max(sq, 1e-24) ** 0.5) if tc.normalise else 1.0
    return cfg.model_copy(update={"input_scale": scale}), mean


def _identity(cfg: SAEConfig, tc: SAETrainConfig, fingerprint: dict[str, Any]) -> dict[str, Any]:
    """What a checkpoint records of the run and a resumed run must match."""
    return {"sae_cfg": cfg.model_dump(), "train_cfg": _train_key(tc), "data": fingerprint}


def _saver(
    root: Path | None, sae: SAE, identity: dict[str, Any], tc: SAETrainConfig
) -> Callable[[dict[str, Any]], Path | None]:
    """``save(state)``: a checkpoint of ``sae`` and the loop's ``state`` under ``root``, with the
    ``identity`` a resumed run must match (configs, data fingerprint); nothing without a root."""
    if root is None:
        return lambda st: None
    return lambda st: _write_checkpoint(root, sae, {**st, **identity}, tc.keep_checkpoints)


# ------------------------------------------------------------------ training
def train_sae(
    data: Float[torch.Tensor, "*rows d"] | ActivationStore,
    cfg: SAEConfig | dict[str, Any] | None = None,
    train_cfg: SAETrainConfig | dict[str, Any] | None = None,
    *,
    hook: str | None = None,
    checkpoint_dir: str | Path | None = None,
    eval_data: Float[torch.Tensor, "*rows d"] | ActivationStore | None = None,
    model: Any = None,
    eval_tokens: Int[torch.Tensor, "n pos"] | None = None,
) -> tuple[SAE, dict[str, Any]]:
    """Train an SAE on ``data`` (tensor ``[..., d]`` or ActivationStore with ``hook``); see the
    module
    docstring for batches, checkpoints and resuming.

    Returns ``(sae, report)``; report holds ``fvu``, ``l0``, ``dead_frac``, ``dense_frac`` (on all
    training rows), ``metrics`` (the checkpoint points), ``resampled``, ``seconds``, the loss
    ``log``, ``n_rows``, ``max_resident_rows`` (most training rows in memory at once) and
    ``resumed_from`` (the step a checkpoint gave, or 0)."""
    t0 = time.time()
    tc = SAETrainConfig() if train_cfg is None else SAETrainConfig.model_validate(train_cfg)
    full = tc.batch_size is None
    src = RowSource(as_matrix(data, hook) if full else data, hook)
    sae_cfg = SAEConfig.model_validate(cfg if cfg is not None else {"d_in": src.d})
    if sae_cfg.d_in != src.d:
        raise ValueError(f"SAE d_in={sae_cfg.d_in} but the data has {src.d} features")
    hook = hook or (src.hook if src.store is not None else None) or sae_cfg.hook_name
    sinks = _drop_sinks(src, tc.max_norm_ratio)
    fingerprint = src.fingerprint()
    ckpt_root = Path(checkpoint_dir) if checkpoint_dir is not None else None
    latest = latest_checkpoint(ckpt_root) if ckpt_root is not None else None
    state = _resume(latest, sae_cfg, tc, fingerprint) if latest is not None else None
    if state is not None:
        sae_cfg, mean = SAEConfig.model_validate(state["sae_cfg"]), None
    else:
        sae_cfg, mean = _scaled(src, sae_cfg, tc, full)
    sae = SAE(sae_cfg)
    dtype = sae.W_dec.dtype
    xs = (src.tensor.float() * sae_cfg.input_scale).to(dtype) if full else None  # [n, d_in]
    stream = (
        None if full else ShuffledStream(src, tc.buffer_rows, tc.seed, sae_cfg.input_scale, dtype)
    )
    opt = _optimiser(sae, tc)
    g = torch.Generator().manual_seed(tc.seed)
    evals, on = (RowSource(eval_data, hook), "heldout") if eval_data is not None else (src, "train")
    evals.max_norm = src.max_norm
    if state is not None:
        start, resampled, loss_log, points = _restore(sae, opt, g, state)
    else:
        start, resampled, loss_log = 0, 0, []
        with torch.no_grad():  # b_dec starts at the scaled rows' mean
            sae.b_dec.copy_(xs.mean(0) if xs is not None else _scaled_mean(mean, sae_cfg, dtype))
        points = [metric_point(sae, 0, evals, tc, model, hook, eval_tokens, on)]

    def measure(step: int) -> dict[str, Any]:
        return metric_point(sae, step, evals, tc, model, hook, eval_tokens, on)

    save = _saver(ckpt_root, sae, _identity(sae_cfg, tc, fingerprint), tc)
    resampled += _loop(
        sae, opt, g, tc, xs, stream, start, loss_log, points, measure, save, resampled
    )
    final = latent_stats(sae, src.chunks(), dense_above=tc.dense_above)
    report: dict[str, Any] = {k: final[k] for k in ("fvu", "l0", "dead_frac", "dense_frac")}
    report.update(
        {
            "resampled": resampled,
            "seconds": time.time() - t0,
            "log": loss_log,
            "metrics": points,
            "kind": sae_cfg.kind,
            "n_rows": src.n_rows,
            "resumed_from": start,
            "max_resident_rows": src.n_rows if stream is None else stream.max_resident_rows,
            **sinks,
        }
    )
    fvu, l0, dead = (report[k] for k in ("fvu", "l0", "dead_frac"))
    log.debug("SAE %s: fvu %.3f l0 %.2f dead %.2f", sae_cfg.kind, fvu, l0, dead)
    return sae, report


def _optimiser(sae: SAE, tc: SAETrainConfig) -> torch.optim.AdamW:
    """AdamW without weight decay (betas 0.9/0.999): the shared training loop's optimiser, so
    full-batch runs train as before."""
    return torch.optim.AdamW(
        [p for p in sae.parameters() if p.requires_grad], lr=tc.lr, weight_decay=0.0
    )


def _restore(
    sae: SAE, opt: torch.optim.Optimizer, g: torch.Generator, state: dict[str, Any]
) -> tuple[int, int, list[dict[str, Any]], list[dict[str, Any]]]:
    """Load a checkpoint's weights, optimiser and RNG state; its (step, latents resampled, loss
    log, metric points)."""
    sae.load_state_dict(state["params"])
    opt.load_state_dict(state["optimizer"])
    g.set_state(state["rng"])
    return state["step"], state["resampled"], state["log"], state["metrics"]


def _scaled_mean(mean: torch.Tensor | None, cfg: SAEConfig, dtype: torch.dtype) -> torch.Tensor:
    """The streamed rows' mean, scaled as the batches are."""
    if mean is None:
        raise ValueError("the streamed rows' mean was not read (a resumed run keeps its b_dec)")
    return (mean * cfg.input_scale).to(dtype)


def _loop(
    sae: SAE,
    opt: torch.optim.Optimizer,
    g: torch.Generator,
    tc: SAETrainConfig,
    xs: torch.Tensor | None,
    stream: ShuffledStream | None,
    start: int,
    loss_log: list[dict[str, Any]],
    points: list[dict[str, Any]],
    measure: Callable[[int], dict[str, Any]],
    save: Callable[[dict[str, Any]], Path | None],
    resampled_before: int,
) -> int:
    """Steps ``start .. tc.steps - 1``; appends to ``loss_log`` and ``points``; returns latents
    resampled."""
    from interp.utils import progress

    resampled = 0
    bar = progress(  # type: ignore[no-untyped-call]  # interp.utils.progress: not annotated yet
        range(start, tc.steps),
        total=tc.steps,
        initial=start,
        desc=f"sae:{sae.cfg.kind}",
        disable=None if tc.progress else True,
    )
    running, t0 = None, time.time()
    for step in bar:
        if stream is None:  # full batch
            assert xs is not None
            xb = xs
        else:
            assert tc.batch_size is not None
            xb = stream.take(step * tc.batch_size, tc.batch_size)
        loss = sae.scaled_loss(xb, tc.sparsity, tc.mse)[0]  # batches are already scaled
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]  # torch: Tensor.backward unannotated
        opt.step()
        value = loss.item()
        if not math.isfinite(value):  # a diverged step poisons every weight: stop and say so
            raise ValueError(
                f"SAE training diverged at step {step} (loss {value}); lower lr "
                f"(now {tc.lr}) or check the training data"
            )
        running = value if running is None else 0.9 * running + 0.1 * value
        bar.set_postfix(loss=f"{running:.3f}")
        sae.normalise_decoder()
        if (
            tc.resample_every
            and (step + 1) % tc.resample_every == 0
            and step + 1 < tc.resample_until * tc.steps
        ):
            # full batch: xb is every row
            pool = xb if stream is None else stream.pool(RESAMPLE_ROWS)
            resampled += resample_dead(sae, pool, g)
        last = step == tc.steps - 1
        if step % tc.log_every == 0 or last:
            loss_log.append({"step": step, "loss": value, "lr": tc.lr, "seconds": time.time() - t0})
        if last or (tc.checkpoint_every and (step + 1) % tc.checkpoint_every == 0):
            points.append(measure(step + 1))
            if save is not None:
                save(
                    {
                        "params": sae.state_dict(),
                        "optimizer": opt.state_dict(),
                        "step": step + 1,
                        "rng": g.get_state(),
                        "resampled": resampled_before + resampled,
                        "log": loss_log,
                        "metrics": points,
                    }
                )
    bar.close()
    return resampled
