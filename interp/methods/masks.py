"""Continuous-sparsification weight masks on the block matrices of a transformer.

A *site* is one maskable weight matrix inside a block (``W_Q``, ``W_K``, ``W_V``, ``W_O``,
``W_in``, ``W_out``); embeddings, unembedding, norms and biases are never masked. A mask
multiplies a site's weight elementwise through ``torch.nn.utils.parametrize`` while a
context manager is open, so the base weights are never written and every hook of the
model (``interp.trace``) sees the masked model.

Training (Savarese et al. 2020 continuous sparsification, as used by Chang & Bergen 2025):
mask logits ``s`` start at ``init_logit``; the soft mask ``sigmoid(T * s)`` is used while
training, with ``T`` multiplied by ``temperature_growth`` after every step; the loss is the
task loss plus ``lam * sum(m) / |M|``; training stops early once the undecided soft masks
(inside ``undecided_band``, 0.1 < m < 0.9) are fewer than ``undecided_stop`` times the kept
ones (m > 0.9), the official code's ``n_remaining < 0.01 * n_above``: a smaller subnetwork
tolerates fewer undecided weights. Evaluation uses the hard mask ``1[s > 0]``.

    sites = find_sites(model)                                  # every block matrix
    res = train_mask(model, batch_fn, target_fn, MaskTrainConfig(lam=5.0))
    mask = res.mask                                            # a hard :class:`Mask`
    with mask.apply(model):                                    # the subnetwork only
        logits = model(tokens)
    with mask.complement().apply(model): ...                   # everything but it
    mask.save(path); Mask.load(path)
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict
from torch import nn

# Where the maskable matrices are and how a mask reaches them is the tracing layer's
# knowledge; re-exported here, the import path methods and analyses have always used.
from interp.tracing.weights import (
    HEAD_AXIS,
    MATRICES,
    Site,
    find_sites,
    logits_of,
    masked,
    native,
)


class Mask:
    """A hard binary mask over sites: ``values[key]`` is a bool tensor of the site's shape."""

    def __init__(
        self,
        sites: Sequence[Site],
        values: dict[str, torch.Tensor],
        meta: dict[str, Any] | None = None,
    ):
        self.sites = list(sites)
        self.values = {s.key: values[s.key].to(torch.bool).cpu() for s in self.sites}
        for s in self.sites:
            if tuple(self.values[s.key].shape) != tuple(s.shape):
                raise ValueError(
                    f"{s.key}: mask shape {tuple(self.values[s.key].shape)} != {s.shape}"
                )
        self.meta = dict(meta or {})

    # ----------------------------------------------------------- constructors
    @classmethod
    def ones(cls, sites: Sequence[Site]) -> Mask:
        return cls(sites, {s.key: torch.ones(s.shape, dtype=torch.bool) for s in sites})

    @classmethod
    def zeros(cls, sites: Sequence[Site]) -> Mask:
        return cls(sites, {s.key: torch.zeros(s.shape, dtype=torch.bool) for s in sites})

    def __repr__(self) -> str:
        return (
            f"Mask({len(self.sites)} matrices, kept {self.n_kept}/{self.n_total} = "
            f"{self.kept_fraction:.4%})"
        )

    # ----------------------------------------------------------------- sizes
    @property
    def n_total(self) -> int:
        return sum(s.size for s in self.sites)

    @property
    def n_kept(self) -> int:
        return int(sum(int(v.sum()) for v in self.values.values()))

    @property
    def kept_fraction(self) -> float:
        return self.n_kept / max(1, self.n_total)

    def by_matrix(self) -> dict[str, float]:
        """Kept fraction of each site, by key."""
        return {s.key: float(self.values[s.key].float().mean()) for s in self.sites}

    def by_layer(self) -> dict[int, float]:
        """Kept fraction of each layer's maskable weights."""
        out: dict[int, list[int]] = {}
        for s in self.sites:
            k, n = out.get(s.layer, [0, 0])
            out[s.layer] = [k + int(self.values[s.key].sum()), n + s.size]
        return {layer: k / n for layer, (k, n) in sorted(out.items())}

    def by_component(self) -> dict[str, float]:
        """Kept fraction of each layer's attention (Q, K, V, O) and MLP (in, gate, out) weights,
        keys ``"L0.attn"``, ``"L0.mlp"``."""
        out: dict[str, list[int]] = {}
        for s in self.sites:
            comp = (
                "attn" if s.matrix in HEAD_AXIS else ("mlp" if s.matrix in MATRICES else s.matrix)
            )
            k, n = out.get(f"L{s.layer}.{comp}", [0, 0])
            out[f"L{s.layer}.{comp}"] = [k + int(self.values[s.key].sum()), n + s.size]
        return {c: k / n for c, (k, n) in out.items()}

    def layer_matrix_table(self) -> tuple[np.ndarray, list[int], list[str]]:
        """``[n_layers, n_matrices]`` kept fraction (NaN where a layer lacks that matrix),
        with the layer and matrix labels."""
        layers = sorted({s.layer for s in self.sites})
        mats = [m for m in dict.fromkeys(s.matrix for s in self.sites)]
        table = np.full((len(layers), len(mats)), np.nan)
        for s in self.sites:
            table[layers.index(s.layer), mats.index(s.matrix)] = float(
                self.values[s.key].float().mean()
            )
        return table, layers, mats

    def by_head(self) -> dict[str, np.ndarray]:
        """``{key: [n_heads]}`` kept fraction per head of every Q/K/V/O site."""
        out = {}
        for s in self.sites:
            if s.n_heads is None:
                continue
            v = self.values[s.key].float()
            v = v if s.head_axis == 0 else v.T  # [heads * d_head, d_model]
            out[s.key] = v.reshape(s.n_heads, -1).mean(1).numpy()  # [heads]
        return out

    # ------------------------------------------------------------ algebra
    def _check_same(self, other: Mask) -> None:
        if [s.key for s in self.sites] != [s.key for s in other.sites]:
            raise ValueError("masks cover different sites")

    def complement(self) -> Mask:
        """Every maskable weight except this mask's."""
        return Mask(
            self.sites, {k: ~v for k, v in self.values.items()}, {**self.meta, "complement": True}
        )

    def __and__(self, other: Mask) -> Mask:
        self._check_same(other)
        return Mask(self.sites, {k: v & other.values[k] for k, v in self.values.items()})

    def __or__(self, other: Mask) -> Mask:
        self._check_same(other)
        return Mask(self.sites, {k: v | other.values[k] for k, v in self.values.items()})

    def overlap(self, other: Mask) -> int:
        """Number of weights kept by both masks."""
        return (self & other).n_kept

    def shuffled(self, seed: int) -> Mask:
        """A random mask with the same number of kept weights in every matrix
        (entries permuted within each matrix)."""
        g = torch.Generator().manual_seed(seed)
        vals = {}
        for s in self.sites:
            flat = self.values[s.key].reshape(-1)
            vals[s.key] = flat[torch.randperm(flat.numel(), generator=g)].reshape(s.shape)
        return Mask(self.sites, vals, {"shuffled_from": self.meta.get("name"), "seed": seed})

    # ------------------------------------------------------------ applying
    def apply(self, model: Any, complement: bool = False) -> contextlib.AbstractContextManager[Any]:
        """Context manager: ``model`` runs with only the kept weights (or, with
        ``complement=True``, with everything but them) of the masked matrices."""
        vals = self.complement().values if complement else self.values
        return masked(model, self.sites, lambda s: vals[s.key])

    # ----------------------------------------------------------- save/load
    def save(self, path: str | Path) -> Path:
        """``path/mask.safetensors`` (uint8 per site) + ``path/mask.json`` (sites and meta)."""
        from safetensors.torch import save_file

        from interp.utils import write_json

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_file(
            {k: v.to(torch.uint8).contiguous() for k, v in self.values.items()},
            str(path / "mask.safetensors"),
        )
        write_json(
            path / "mask.json",
            {
                "sites": [asdict(s) for s in self.sites],
                "meta": self.meta,
                "kept_fraction": self.kept_fraction,
            },
        )
        return path

    @classmethod
    def load(cls, path: str | Path) -> Mask:
        from safetensors.torch import load_file

        from interp.utils import read_json

        path = Path(path)
        info = read_json(path / "mask.json")
        sites = [Site(**{**s, "shape": tuple(s["shape"])}) for s in info["sites"]]
        return cls(sites, load_file(str(path / "mask.safetensors")), info.get("meta"))


# ---------------------------------------------------------------- training
class MaskTrainConfig(BaseModel):
    """Settings of one continuous-sparsification mask training."""

    model_config = ConfigDict(extra="forbid")

    lam: float = 1.0  # weight of the density penalty sum(m)/|M|
    steps: int = 1000  # at most; early stop when decided
    lr: float = 1e-2
    init_logit: float = 0.1
    temperature: float = 1.0  # T at step 0
    temperature_growth: float = 1.004  # T is multiplied by this after every step (paper: 1.001)
    undecided_stop: float = (
        0.01  # stop once undecided masks < this fraction of the kept (m > band[1]) ones
    )
    undecided_band: tuple[float, float] = (0.1, 0.9)
    check_every: int = 10
    matrices: list[str] | None = None  # None: every block matrix


class MaskLogits(nn.Module):
    """Learnable logits per site. ``train()`` mode gives the soft mask ``sigmoid(T*s)``,
    ``eval()`` the hard mask ``1[s>0]``; inside :meth:`unmasked` the model runs unmasked."""

    def __init__(self, sites: Sequence[Site], init_logit: float = 0.1, temperature: float = 1.0):
        super().__init__()
        self.sites = list(sites)
        self.logits = nn.ParameterList(
            [nn.Parameter(torch.full(s.shape, float(init_logit))) for s in self.sites]
        )
        self._index = {s.key: i for i, s in enumerate(self.sites)}
        self.temperature = float(temperature)
        self._off = False

    def mask(self, site: Site) -> torch.Tensor | None:
        if self._off:
            return None
        s = self.logits[self._index[site.key]]
        return torch.sigmoid(self.temperature * s) if self.training else (s > 0).to(s.dtype)

    @contextlib.contextmanager
    def unmasked(self) -> Iterator[None]:
        self._off = True
        try:
            yield
        finally:
            self._off = False

    def soft_density(self) -> torch.Tensor:
        """``sum(sigmoid(T*s)) / |M|`` over all sites (the L0 surrogate)."""
        total = sum(s.size for s in self.sites)
        mass = torch.sigmoid(self.temperature * self.logits[0]).sum()
        for s in self.logits[1:]:  # in site order, as sum() adds them
            mass = mass + torch.sigmoid(self.temperature * s).sum()
        return mass / total

    @torch.no_grad()
    def soft_counts(self, band: tuple[float, float] = (0.1, 0.9)) -> tuple[int, int]:
        """``(undecided, kept)``: how many soft masks lie strictly inside ``band`` and how many
        above it."""
        und = kept = 0
        for s in self.logits:
            m = torch.sigmoid(self.temperature * s)
            und += int(((m > band[0]) & (m < band[1])).sum())
            kept += int((m > band[1]).sum())
        return und, kept

    def undecided_fraction(self, band: tuple[float, float] = (0.1, 0.9)) -> float:
        """Undecided soft masks as a fraction of all maskable weights (logged, not the stop
        rule)."""
        return self.soft_counts(band)[0] / sum(s.size for s in self.sites)

    def decided(self, stop: float = 0.01, band: tuple[float, float] = (0.1, 0.9)) -> bool:
        """The stopping rule: fewer undecided masks than ``stop`` times the kept ones
        (never true while nothing is kept above the band)."""
        return should_stop(*self.soft_counts(band), stop)

    def hard(self, meta: dict[str, Any] | None = None) -> Mask:
        return Mask(
            self.sites,
            {s.key: (p.detach() > 0) for s, p in zip(self.sites, self.logits, strict=True)},
            meta,
        )


@dataclass
class MaskTraining:
    """What :func:`train_mask` returns: the hard mask, the logits and the training log."""

    mask: Mask
    logits: MaskLogits
    log: list[dict[str, Any]]
    steps: int
    stopped_early: bool


class _Decided(Exception):
    pass


def should_stop(n_undecided: int, n_kept: int, stop: float) -> bool:
    """Chang & Bergen's stopping rule: undecided masks fewer than ``stop`` times the kept ones."""
    return n_undecided < stop * n_kept


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over positions of ``-sum_v target[.., v] * log_softmax(logits)[.., v]``."""
    logp = F.log_softmax(logits.float(), dim=-1)
    return -(target * logp).sum(-1).mean()


class _Objective:
    """The loss and the per-step bookkeeping of one :func:`train_mask` run: the task loss
    against the target distribution plus ``lam`` times the soft density, the temperature
    schedule, the training log and the early stop."""

    def __init__(
        self,
        root: nn.Module,
        target_fn: Callable[[torch.Tensor], torch.Tensor] | str,
        cfg: MaskTrainConfig,
        total: int,
    ):
        if isinstance(target_fn, str) and target_fn != "self":
            raise ValueError(f"target_fn must be a callable or 'self', got {target_fn!r}")
        self.root, self.target_fn, self.cfg, self.total = root, target_fn, cfg, total
        self.history: list[dict[str, Any]] = []
        self.steps, self.early = 0, False
        self.last = (math.nan, math.nan)  # (task loss, soft density) of the latest step

    def target(self, module: MaskLogits, tokens: torch.Tensor) -> torch.Tensor:
        """``[batch, pos, vocab]`` probabilities the masked model should match."""
        if isinstance(self.target_fn, str):  # "self": the unmasked model's own softmax
            with torch.no_grad(), module.unmasked():
                return F.softmax(logits_of(self.root(tokens)).float(), dim=-1)
        return self.target_fn(tokens).to(_device(self.root))

    def loss(self, module: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
        assert isinstance(module, MaskLogits)  # train() hands back the module it trains
        tokens = tokens.to(_device(self.root))
        target = self.target(module, tokens)
        task = soft_cross_entropy(logits_of(self.root(tokens)), target)
        density = module.soft_density()
        self.last = (task.item(), density.item())
        return task + self.cfg.lam * density

    def on_step(self, step: int, module: nn.Module) -> None:
        assert isinstance(module, MaskLogits)  # train() hands back the module it trains
        cfg = self.cfg
        module.temperature *= cfg.temperature_growth
        self.steps = step + 1
        if step % cfg.check_every == 0 or step == cfg.steps - 1:
            und, kept = module.soft_counts(cfg.undecided_band)
            task, density = self.last
            self.history.append(
                {
                    "step": step,
                    "task_loss": task,
                    "soft_density": density,
                    "undecided": und / self.total,
                    "undecided_per_kept": und / kept if kept else None,
                    "n_undecided": und,
                    "n_soft_kept": kept,
                    "temperature": module.temperature,
                }
            )
            if should_stop(und, kept, cfg.undecided_stop):
                self.early = True
                raise _Decided


@contextlib.contextmanager
def _frozen(root: nn.Module) -> Iterator[None]:
    """While open, none of ``root``'s trainable parameters takes gradients."""
    frozen = [p for p in root.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in frozen:
            p.requires_grad_(True)


def train_mask(
    model: Any,
    batch_fn: Callable[[int], torch.Tensor],
    target_fn: Callable[[torch.Tensor], torch.Tensor] | str,
    cfg: MaskTrainConfig,
    *,
    sites: Sequence[Site] | None = None,
    desc: str = "mask",
) -> MaskTraining:
    """Train a mask on ``model`` so that the masked model's next-token distribution matches
    ``target_fn(tokens) -> [batch, pos, vocab]`` probabilities (or ``"self"``: the unmasked
    model's own softmax, i.e. "optimal pruning"). ``batch_fn(step)`` gives ``[batch, pos]``
    tokens. Base weights are frozen and unchanged; uses :func:`interp.models.train.train`."""
    from interp.models.train import TrainConfig, train

    sites = list(sites) if sites is not None else find_sites(model, cfg.matrices)
    root = native(model)
    logits = MaskLogits(sites, cfg.init_logit, cfg.temperature).to(_device(root))
    objective = _Objective(root, target_fn, cfg, sum(s.size for s in sites))
    tcfg = TrainConfig(
        steps=cfg.steps,
        batch_size=1,
        lr=cfg.lr,
        weight_decay=0.0,
        warmup=0,
        schedule="constant",
        grad_clip=None,
        log_every=max(1, cfg.steps // 20),
        checkpoint_every=0,
    )
    with _frozen(root), masked(model, sites, logits.mask):
        try:
            train(
                logits,
                batch_fn,
                objective.loss,
                tcfg,
                params=list(logits.parameters()),
                desc=desc,
                on_step=objective.on_step,
            )
        except _Decided:
            pass
    logits.eval()
    meta = {
        **cfg.model_dump(mode="json"),
        "steps_run": objective.steps,
        "stopped_early": objective.early,
        "final_temperature": logits.temperature,
    }
    return MaskTraining(
        logits.hard(meta), logits, objective.history, objective.steps, objective.early
    )


def _device(module: nn.Module) -> torch.device:
    for p in module.parameters():
        return p.device
    return torch.device("cpu")


def row_shuffle_null(a: Mask, b: Mask, n: int, seed: int) -> np.ndarray:
    """Null distribution of ``a.overlap(b)`` when the rows of every matrix of ``a`` are
    permuted at random (``n`` draws): keeps each row's pattern and each matrix's count."""
    a._check_same(b)
    rng = np.random.default_rng(seed)
    total = np.zeros(n, dtype=np.int64)
    for s in a.sites:
        A = a.values[s.key].numpy().astype(np.int32)  # [rows, cols]
        B = b.values[s.key].numpy().astype(np.int32)
        G = A @ B.T  # G[i, j] = overlap of a's row i placed at b's row j
        rows = G.shape[0]
        chunk = max(1, 2_000_000 // rows)
        for lo in range(0, n, chunk):
            hi = min(n, lo + chunk)
            perms = rng.permuted(np.tile(np.arange(rows), (hi - lo, 1)), axis=1)  # [draws, rows]
            total[lo:hi] += G[perms, np.arange(rows)[None, :]].sum(1)
    return total


__all__ = [
    "Site",
    "Mask",
    "MaskLogits",
    "MaskTrainConfig",
    "MaskTraining",
    "find_sites",
    "masked",
    "train_mask",
    "soft_cross_entropy",
    "should_stop",
    "row_shuffle_null",
    "native",
    "logits_of",
    "MATRICES",
]
