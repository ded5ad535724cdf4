"""The one training loop every zoo recipe uses.

AdamW, linear warm-up then cosine (or constant) decay, gradient clipping, a progress bar
with the running loss, a loss log, and a resumable checkpoint every ``checkpoint_every``
steps: an interrupted training picks up where its last checkpoint left off.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict

from interp.utils import atomic_path, progress


class TrainConfig(BaseModel):
    """Optimiser and schedule. Shared by every recipe."""

    model_config = ConfigDict(extra="forbid")

    steps: int = 500
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.99)
    warmup: int = 50
    schedule: Literal["cosine", "constant", "linear"] = "cosine"
    min_lr_frac: float = 0.1
    grad_clip: float | None = 1.0
    log_every: int = 25
    checkpoint_every: int = 250


def lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    if cfg.schedule == "constant":
        return cfg.lr
    frac = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    if cfg.schedule == "linear":
        scale = 1 - frac
    else:
        scale = 0.5 * (1 + math.cos(math.pi * min(frac, 1.0)))
    return cfg.lr * (cfg.min_lr_frac + (1 - cfg.min_lr_frac) * scale)


def load_checkpoint(path: Any) -> Any:
    """Read a training checkpoint (``torch.save`` of tensors, numbers, strings, lists, dicts).

    ``weights_only=True``: torch's restricted unpickler, which builds no other object, so a
    file planted in the cache cannot run code. A file it refuses is reported, never executed."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises UnpicklingError / RuntimeError with its own text
        raise ValueError(
            f"refusing to read checkpoint {path}: it is not plain tensors and data "
            f"({type(e).__name__}: {str(e).splitlines()[0][:200]}). Delete it to rebuild."
        ) from None


def train(
    module: torch.nn.Module,
    batch_fn: Callable[[int], Any],
    loss_fn: Callable[[torch.nn.Module, Any], torch.Tensor],
    cfg: TrainConfig,
    *,
    params: list[torch.nn.Parameter] | None = None,
    checkpoint_dir: Path | None = None,
    eval_fn: Callable[[torch.nn.Module], dict[str, float]] | None = None,
    eval_every: int | None = None,
    on_step: Callable[[int, torch.nn.Module], None] | None = None,
    desc: str = "train",
) -> list[dict[str, float]]:
    """Train ``module`` for ``cfg.steps`` steps; return the log (one dict per logged step).

    ``batch_fn(step)`` returns a batch (seeded by the step, so a resumed run sees the same
    data); ``loss_fn(module, batch)`` returns a scalar loss. ``on_step(step, module)`` runs
    after each optimiser step (e.g. to save training checkpoints for analyses).
    """
    params = [p for p in (params or module.parameters()) if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=cfg.betas)
    log: list[dict[str, float]] = []
    start = 0
    ckpt = Path(checkpoint_dir) / "train_state.pt" if checkpoint_dir else None
    if ckpt is not None and ckpt.exists():
        state = load_checkpoint(ckpt)
        module.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start, log = state["step"], state["log"]
    module.train()
    bar = progress(range(start, cfg.steps), total=cfg.steps, initial=start, desc=desc)
    running, t0 = None, time.time()
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        loss = loss_fn(module, batch_fn(step))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        value = loss.item()
        running = value if running is None else 0.9 * running + 0.1 * value
        bar.set_postfix(loss=f"{running:.3f}")
        if on_step is not None:
            on_step(step, module)
        last = step == cfg.steps - 1
        if step % cfg.log_every == 0 or last:
            entry = {
                "step": step,
                "loss": value,
                "lr": lr_at(step, cfg),
                "seconds": time.time() - t0,
            }
            if eval_fn is not None and (last or (eval_every and step % eval_every == 0)):
                module.eval()
                with torch.no_grad():
                    entry.update(eval_fn(module))
                module.train()
            log.append(entry)
        if (
            ckpt is not None
            and cfg.checkpoint_every
            and (step + 1) % cfg.checkpoint_every == 0
            and not last
        ):
            with atomic_path(ckpt) as tmp:
                torch.save(
                    {
                        "model": module.state_dict(),
                        "optimizer": opt.state_dict(),
                        "step": step + 1,
                        "log": log,
                    },
                    tmp,
                )
    module.eval()
    if ckpt is not None and ckpt.exists():
        ckpt.unlink()
    return log
