"""Zoo recipes: noise-driven ReLU RNNs trained to emit HMM sequences (Torre et al. 2025).

Training follows the paper: whole-sequence debiased Sinkhorn divergence (p=2, blur=0.2)
between one-hot RNN samples and fresh HMM samples, Adam (AdamW with weight decay 0) at
1e-3, betas (0.9, 0.9), gradient clipping 0.9. The learning rate is constant for the first
two thirds of the steps and decays linearly to ``lr_final`` over the last third: two
calls of the shared :func:`~interp.models.train.train` loop (the second one's Adam moments
restart; with beta 0.9 they re-estimate within a few steps).

A few state-dict snapshots taken during training are kept next to the recipe's scratch
directory (``snapshots.pt``) so that analyses can measure metrics over training.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from interp.data.rnn_hmm import HMMSpec, make_hmm, sample
from interp.models import zoo
from interp.models.hmm_rnn import BUILDER, HMMRNN, HMMRNNSpec, sinkhorn_loss
from interp.models.train import TrainConfig, load_checkpoint, train
from interp.models.zoo import recipe, scratch_dir
from interp.tracing.model import Model
from interp.utils import seed_everything

log = logging.getLogger(__name__)

SNAPSHOT_FILE = "snapshots.pt"


class HMMRecipe(BaseModel):
    """An HMM family, sequence length and RNN size, plus the paper's optimiser settings."""

    model_config = ConfigDict(extra="forbid")

    name: str
    hmm_kind: Literal["chain", "fully_connected", "cyclic"] = "chain"
    n_states: int = 2
    T: int = 50
    spec: HMMRNNSpec = Field(default_factory=HMMRNNSpec)
    batch_size: int = 1024
    steps: int = 1500
    lr: float = 1e-3
    lr_final: float = 1e-4
    decay_frac: float = 1 / 3
    betas: tuple[float, float] = (0.9, 0.9)
    grad_clip: float = 0.9
    blur: float = 0.2
    n_snapshots: int = 6
    seed: int = 0


def hmm_of(cfg: HMMRecipe) -> HMMSpec:
    """The HMM of the recipe."""
    return make_hmm(cfg.hmm_kind, cfg.n_states)


def snapshot_steps(cfg: HMMRecipe) -> list[int]:
    """Steps after which a snapshot is kept (evenly spaced, the last step included)."""
    k = max(1, cfg.n_snapshots)
    return sorted({int(round((i + 1) * cfg.steps / k)) - 1 for i in range(k)})


def load_snapshots(cfg: HMMRecipe) -> dict[int, dict]:
    """``{step: state_dict}`` saved while training ``cfg`` ({} if not available)."""
    path = scratch_dir(cfg.name, cfg) / SNAPSHOT_FILE
    if not path.exists():
        return {}
    return load_checkpoint(path)["snapshots"]


def _batch_and_loss(cfg: HMMRecipe, hmm: HMMSpec) -> tuple[Callable, Callable]:
    """``batch_fn(step)``: one-hot HMM samples (seeded by step) and the step; ``loss_fn(m,
    batch)``: the Sinkhorn loss of the RNN's outputs on fresh noise (seeded by step) to them."""
    sinkhorn = sinkhorn_loss(blur=cfg.blur)

    def batch_fn(step: int) -> tuple[torch.Tensor, int]:
        _, obs = sample(hmm, cfg.batch_size, cfg.T, seed=cfg.seed * 1_000_003 + step)
        return F.one_hot(obs, hmm.n_outputs).float(), step

    def loss_fn(m: HMMRNN, batch: tuple[torch.Tensor, int]) -> torch.Tensor:
        target, step = batch
        g = torch.Generator().manual_seed(cfg.seed * 7_919 + step + 17)
        y = m.sample_outputs(m.noise(cfg.batch_size, cfg.T, g), generator=g)
        return sinkhorn(y, target)

    return batch_fn, loss_fn


def train_hmm_rnn(cfg: HMMRecipe):
    """Train an :class:`HMMRNN` on ``cfg``; return an ``interp.Model``."""
    seed_everything(cfg.seed)
    hmm = hmm_of(cfg)
    spec = cfg.spec.model_copy(update={"d_out": hmm.n_outputs})
    module = HMMRNN(spec)
    batch_fn, loss_fn = _batch_and_loss(cfg, hmm)
    work = scratch_dir(cfg.name, cfg)
    keep = set(snapshot_steps(cfg))
    snaps: dict[int, dict] = {}
    n_decay = int(round(cfg.steps * cfg.decay_frac))
    n_const = cfg.steps - n_decay
    common = dict(
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        weight_decay=0.0,
        betas=cfg.betas,
        warmup=0,
        grad_clip=cfg.grad_clip,
        log_every=25,
        checkpoint_every=250,
    )
    logs = []
    phase1 = work / "phase1.pt"
    if phase1.exists():
        state = load_checkpoint(phase1)
        module.load_state_dict(state["model"])
        snaps, logs = state["snapshots"], state["log"]
    else:

        def on_step1(step, m):
            if step in keep:
                snaps[step] = {k: v.detach().clone() for k, v in m.state_dict().items()}

        logs = train(
            module,
            batch_fn,
            loss_fn,
            TrainConfig(steps=n_const, schedule="constant", **common),
            checkpoint_dir=work / "p1",
            on_step=on_step1,
            desc=f"zoo:{cfg.name} (lr {cfg.lr:g})",
        )
        torch.save({"model": module.state_dict(), "snapshots": snaps, "log": logs}, phase1)
    if n_decay > 0:

        def on_step2(step, m):
            if step + n_const in keep:
                snaps[step + n_const] = {k: v.detach().clone() for k, v in m.state_dict().items()}

        log2 = train(
            module,
            lambda s: batch_fn(s + n_const),
            loss_fn,
            TrainConfig(
                steps=n_decay, schedule="linear", min_lr_frac=cfg.lr_final / cfg.lr, **common
            ),
            checkpoint_dir=work / "p2",
            on_step=on_step2,
            desc=f"zoo:{cfg.name} (decay)",
        )
        logs = logs + [{**e, "step": e["step"] + n_const} for e in log2]
    torch.save({"snapshots": snaps, "log": logs}, work / SNAPSHOT_FILE)
    model = Model(
        module,
        backend="tl",
        model_id=f"zoo:{cfg.name}",
        kind="rnn",
        spec={"builder": BUILDER, "spec": spec.model_dump(mode="json")},
        example_input=torch.zeros(1, 3, spec.d_input),
    )
    model.train_log = logs
    return model


# ------------------------------------------------------------------------ recipes
def _quick(name: str, n_states: int, **kw) -> HMMRecipe:
    return HMMRecipe(
        name=name, n_states=n_states, T=50, spec=HMMRNNSpec(d_hidden=50, d_input=10), **kw
    )


QUICK = {
    "hmm-chain2-h50": _quick("hmm-chain2-h50", 2, batch_size=512, steps=1500),
    "hmm-chain3-h50": _quick("hmm-chain3-h50", 3, batch_size=512, steps=1500),
}
FULL: dict[str, HMMRecipe] = {}
for _seed in range(3):
    for _M in (2, 3, 4, 5):
        _n = f"hmm-chain{_M}-h150-s{_seed}"
        FULL[_n] = HMMRecipe(
            name=_n,
            n_states=_M,
            T=100,
            spec=HMMRNNSpec(d_hidden=150, d_input=10, init_seed=_seed),
            batch_size=512,
            steps=4000,
            seed=_seed,
        )
    for _kind, _short in (("cyclic", "cyclic"), ("fully_connected", "fc")):
        _n = f"hmm-{_short}-h150-s{_seed}"
        FULL[_n] = HMMRecipe(
            name=_n,
            hmm_kind=_kind,
            T=100,
            spec=HMMRNNSpec(d_hidden=150, d_input=10, init_seed=_seed),
            batch_size=512,
            steps=4000,
            seed=_seed,
        )
for _seed in range(3):
    _n = f"hmm-chain2-h50-s{_seed}"
    FULL[_n] = HMMRecipe(
        name=_n,
        n_states=2,
        T=50,
        spec=HMMRNNSpec(d_hidden=50, d_input=10, init_seed=_seed),
        batch_size=1024,
        steps=1500,
        seed=_seed,
    )


def _register(name: str, cfg: HMMRecipe, desc: str) -> None:
    recipe(name, cfg, desc)(train_hmm_rnn)


for _n, _c in QUICK.items():
    _register(
        _n,
        _c,
        f"ReLU RNN (H={_c.spec.d_hidden}) emulating a {_c.n_states}-state chain HMM, T={_c.T} "
        f"(~{_c.steps} steps; a few minutes on CPU)",
    )
for _n, _c in FULL.items():
    _register(
        _n,
        _c,
        f"ReLU RNN (H={_c.spec.d_hidden}, seed {_c.seed}) emulating the {_c.hmm_kind} HMM "
        f"(M={_c.n_states}), T={_c.T} (full preset; long on CPU)",
    )


def recipe_config(model_name: str) -> HMMRecipe | None:
    """The :class:`HMMRecipe` behind ``zoo:<name>`` (None if it is not one of these recipes)."""
    name = model_name[4:] if model_name.startswith("zoo:") else model_name
    try:
        cfg = zoo.get(name).config  # a recipe or <recipe>@<training seed>
    except (KeyError, ValueError):
        return None
    return cfg if isinstance(cfg, HMMRecipe) else None
