"""Train an SAE on activations held in memory or in an :class:`interp.ActivationStore`.

The optimisation runs in the shared loop (:func:`interp.models.train.train`): full-batch
when ``batch_size`` is None (the paper trains on a handful of prompts), minibatches
otherwise. After every step the decoder rows are renormalised to unit norm; every
``resample_every`` steps latents that fired on no input are re-initialised towards the
inputs reconstructed worst (Anthropic's resampling; the shared loop keeps its Adam moments
for them). The returned report gives FVU, L0 and the dead fraction on the training data.

    sae, report = train_sae(x, SAEConfig(d_in=64, d_sae=200), SAETrainConfig(steps=500))
    report["fvu"], report["l0"], report["dead_frac"]
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal, Optional, Union

import torch
from jaxtyping import Float
from pydantic import BaseModel, ConfigDict

from interp.sae.model import SAE, SAEConfig

if TYPE_CHECKING:
    from interp.tracing.store import ActivationStore

log = logging.getLogger(__name__)


class SAETrainConfig(BaseModel):
    """Optimisation of an SAE (defaults: the paper's Adam 1e-3, L1 0.02, full batch)."""

    model_config = ConfigDict(extra="forbid")

    steps: int = 1000
    lr: float = 1e-3
    sparsity: float = 0.02  # L1 coefficient (relu), L0 coefficient (jumprelu); unused by topk
    batch_size: Optional[int] = None  # None: full batch
    normalise: bool = True  # scale inputs so that E|x|^2 = 1 (stored in SAEConfig.input_scale)
    mse: Literal["sum", "mean"] = "sum"  # reconstruction error summed over features, or averaged
    # ("mean" with normalise=False is the paper's F.mse_loss on raw activations)
    resample_every: int = 250  # 0: never resample dead latents
    resample_until: float = 0.75  # no resampling in the last quarter of training
    seed: int = 0
    log_every: int = 100
    progress: bool = False  # show the shared loop's progress bar (noise when training many small SAEs)


def as_matrix(data: Union[Float[torch.Tensor, "*rows d"], "ActivationStore"], hook: Optional[str] = None) -> Float[torch.Tensor, "n d"]:
    """``[n, d]`` float rows from a tensor (any leading dims) or an ActivationStore + hook name."""
    from interp.tracing.store import ActivationStore

    if isinstance(data, ActivationStore):
        if hook is None:
            names = list(data.hooks)
            if len(names) != 1:
                raise ValueError(f"the store holds {names}: name the hook to train on")
            hook = names[0]
        data = data[hook]
    x = torch.as_tensor(data)
    return x.reshape(-1, x.shape[-1]).float()


@torch.no_grad()
def evaluate_sae(sae: SAE, x: Float[torch.Tensor, "n d_in"], chunk: int = 8192) -> dict[str, float]:
    """FVU, L0 (mean active latents) and dead fraction of ``sae`` on rows ``x [n, d_in]``."""
    x = x.to(sae.W_dec.dtype)
    err = 0.0
    fired = torch.zeros(sae.cfg.d_sae, dtype=torch.bool)
    l0 = 0.0
    for i in range(0, len(x), chunk):
        xb = x[i : i + chunk]
        f = sae.encode(xb)
        err += (sae.decode(f) - xb).pow(2).sum().item()
        active = f != 0
        l0 += active.sum().item()
        fired |= active.any(0).cpu()
    total = (x - x.mean(0)).pow(2).sum().item()
    return {"fvu": err / max(total, 1e-12), "l0": l0 / len(x), "dead_frac": 1.0 - fired.float().mean().item()}


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


@contextmanager
def _quiet(on: bool):
    """Silence the shared loop's progress bar (it reads INTERP_QUIET) for the duration."""
    old = os.environ.get("INTERP_QUIET")
    if on:
        os.environ["INTERP_QUIET"] = "1"
    try:
        yield
    finally:
        if on:
            if old is None:
                os.environ.pop("INTERP_QUIET", None)
            else:
                os.environ["INTERP_QUIET"] = old


def train_sae(data: Union[Float[torch.Tensor, "*rows d"], "ActivationStore"], cfg: SAEConfig | dict | None = None, train_cfg: SAETrainConfig | dict | None = None,
              *, hook: Optional[str] = None) -> tuple[SAE, dict[str, Any]]:
    """Train an SAE on ``data`` (tensor ``[..., d]`` or ActivationStore with ``hook``).

    Returns ``(sae, report)``; report holds ``fvu``, ``l0``, ``dead_frac``, ``resampled``,
    ``seconds`` and the loss log."""
    from interp.models.train import TrainConfig, train

    t0 = time.time()
    x = as_matrix(data, hook)
    tc = SAETrainConfig() if train_cfg is None else SAETrainConfig.model_validate(train_cfg)
    if cfg is None:
        cfg = SAEConfig(d_in=x.shape[-1])
    cfg = SAEConfig.model_validate(cfg)
    if cfg.d_in != x.shape[-1]:
        raise ValueError(f"SAE d_in={cfg.d_in} but the data has {x.shape[-1]} features")
    scale = 1.0
    if tc.normalise:
        scale = float(1.0 / x.pow(2).sum(-1).mean().sqrt().clamp_min(1e-12))
    cfg = cfg.model_copy(update={"input_scale": scale})
    sae = SAE(cfg)
    xs = (x * scale).to(sae.W_dec.dtype)  # [n, d_in]
    with torch.no_grad():
        sae.b_dec.copy_(xs.mean(0))
    g = torch.Generator().manual_seed(tc.seed)
    resampled = 0

    def batch_fn(step: int) -> torch.Tensor:
        if tc.batch_size is None or tc.batch_size >= len(xs):
            return xs
        gs = torch.Generator().manual_seed(tc.seed * 1_000_003 + step)
        return xs[torch.randint(0, len(xs), (tc.batch_size,), generator=gs)]

    def loss_fn(module: SAE, xb: torch.Tensor) -> torch.Tensor:
        return module.scaled_loss(xb, tc.sparsity, tc.mse)[0]  # batches are already scaled

    def on_step(step: int, module: SAE) -> None:
        nonlocal resampled
        module.normalise_decoder()
        if tc.resample_every and (step + 1) % tc.resample_every == 0 and step + 1 < tc.resample_until * tc.steps:
            resampled += resample_dead(module, xs if len(xs) <= 16384 else batch_fn(step), g)

    opt = TrainConfig(steps=tc.steps, batch_size=tc.batch_size or len(xs), lr=tc.lr, weight_decay=0.0,
                      betas=(0.9, 0.999), warmup=0, schedule="constant", grad_clip=None,
                      log_every=tc.log_every, checkpoint_every=0)
    with _quiet(not tc.progress):
        loss_log = train(sae, batch_fn, loss_fn, opt, on_step=on_step, desc=f"sae:{cfg.kind}")
    report = evaluate_sae(sae, x)
    report.update({"resampled": resampled, "seconds": time.time() - t0, "log": loss_log,
                   "kind": cfg.kind, "n_rows": len(x)})
    log.debug("SAE %s: fvu %.3f l0 %.2f dead %.2f", cfg.kind, report["fvu"], report["l0"], report["dead_frac"])
    return sae, report
