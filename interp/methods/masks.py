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
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict
from torch import nn
from torch.nn.utils import parametrize

# Module-name -> canonical matrix name (TransformerLens names). The native zoo transformer
# uses q/k/v/o and fc_in/fc_out; the rest are common Hugging Face names.
MATRIX_ALIASES = {
    "q": "W_Q",
    "q_proj": "W_Q",
    "query": "W_Q",
    "k": "W_K",
    "k_proj": "W_K",
    "key": "W_K",
    "v": "W_V",
    "v_proj": "W_V",
    "value": "W_V",
    "o": "W_O",
    "o_proj": "W_O",
    "out_proj": "W_O",
    "fc_in": "W_in",
    "fc1": "W_in",
    "up_proj": "W_in",
    "c_fc": "W_in",
    "in": "W_in",
    "fc_out": "W_out",
    "fc2": "W_out",
    "down_proj": "W_out",
    "out": "W_out",
    "gate": "W_gate",
    "gate_proj": "W_gate",
    # fused query/key/value (GPT-2 Conv1D c_attn, GPT-NeoX query_key_value): one site, no head axis yet
    "c_attn": "W_QKV",
    "query_key_value": "W_QKV",
    "qkv_proj": "W_QKV",
    "Wqkv": "W_QKV",
    "dense_h_to_4h": "W_in",
    "dense_4h_to_h": "W_out",
}
# Names that mean different matrices under attention and under the MLP (GPT-2 c_proj, NeoX dense).
PARENT_ALIASES = {
    ("attn", "c_proj"): "W_O",
    ("mlp", "c_proj"): "W_out",
    ("attention", "dense"): "W_O",
}
MATRICES = ("W_Q", "W_K", "W_V", "W_QKV", "W_O", "W_in", "W_gate", "W_out")
# nn.Linear weights are [out, in]: the heads of Q/K/V lie along rows, of O along columns.
# GPT-2's Conv1D stores [in, out], so there the axes swap.
HEAD_AXIS = {"W_Q": 0, "W_K": 0, "W_V": 0, "W_O": 1}
_LAYER_RE = re.compile(r"(?:^|\.)(?:layers|blocks|h|layer)\.(\d+)\.")


@dataclass(frozen=True)
class Site:
    """One maskable matrix: ``key`` ("blocks.0.W_in"), its module ``path`` in the native
    model, weight ``shape`` and, for attention matrices, the head axis and ``d_head``."""

    key: str
    layer: int
    matrix: str
    path: str
    shape: tuple[int, int]
    head_axis: int | None = None
    d_head: int | None = None

    @property
    def n_heads(self) -> int | None:
        if self.head_axis is None or not self.d_head:
            return None
        return self.shape[self.head_axis] // self.d_head

    @property
    def size(self) -> int:
        return self.shape[0] * self.shape[1]


def logits_of(out: Any) -> torch.Tensor:
    """The logits a native forward returned: a tensor, a Hugging Face ``ModelOutput`` or a tuple."""
    if isinstance(out, torch.Tensor):
        return out
    if getattr(out, "logits", None) is not None:
        return out.logits
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    raise TypeError(f"cannot find logits in a {type(out).__name__} returned by the model's forward")


def native(model: Any) -> nn.Module:
    """The ``nn.Module`` holding the weights: ``Model.module.original_model`` or the module itself."""
    module = getattr(model, "module", model)
    return getattr(module, "original_model", module)


def find_sites(
    model: Any, matrices: Sequence[str] | None = None, layers: Sequence[int] | None = None
) -> list[Site]:
    """Maskable matrices of ``model`` (an ``interp.Model``, a bridge or an ``nn.Module``),
    in layer order; keep only ``matrices`` / ``layers`` when given. Any 2-D weight of an
    ``nn.Linear`` inside a numbered block counts; unknown module names keep their path."""
    root = native(model)
    cfg = getattr(getattr(model, "module", model), "cfg", None) or getattr(root, "cfg", None)
    d_head = getattr(cfg, "d_head", None)
    sites = []
    for path, mod in root.named_modules():
        conv1d = (
            type(mod).__name__ == "Conv1D" and getattr(mod, "weight", None) is not None
        )  # GPT-2: [in, out]
        if not (isinstance(mod, nn.Linear) or conv1d):
            continue
        clean = ".".join(p for p in path.split(".") if p != "_original_component")
        hit = _LAYER_RE.search(clean)
        if hit is None:
            continue
        layer = int(hit.group(1))
        parts = clean.split(".")
        leaf, parent = parts[-1], parts[-2] if len(parts) > 1 else ""
        matrix = PARENT_ALIASES.get((parent, leaf)) or MATRIX_ALIASES.get(leaf, clean[hit.end() :])
        if matrices is not None and matrix not in matrices:
            continue
        if layers is not None and layer not in layers:
            continue
        axis = HEAD_AXIS.get(matrix) if d_head else None
        if axis is not None and conv1d:
            axis = 1 - axis
        if axis is not None and mod.weight.shape[axis] % d_head:
            axis = None
        sites.append(
            Site(
                f"blocks.{layer}.{matrix}",
                layer,
                matrix,
                path,
                tuple(mod.weight.shape),
                axis,
                int(d_head) if axis is not None else None,
            )
        )
    sites = _without_unused_fused_qkv(sites)
    order = {m: i for i, m in enumerate(MATRICES)}
    sites.sort(key=lambda s: (s.layer, order.get(s.matrix, len(order)), s.key))
    keys = [s.key for s in sites]
    if len(set(keys)) != len(keys):
        raise ValueError(f"two maskable matrices share a key: {keys}")
    if not sites:
        raise ValueError("no maskable nn.Linear or Conv1D weights found inside numbered blocks")
    return sites


def _without_unused_fused_qkv(sites: list[Site]) -> list[Site]:
    """Drop a fused query/key/value weight that sits beside separate Q, K and V weights.

    A TransformerLens bridge over a Hugging Face model splits GPT-2's ``c_attn`` and GPT-NeoX's
    ``query_key_value`` into per-head ``q``/``k``/``v`` linears, which the forward uses; the
    fused original stays in the tree as ``qkv`` but computes nothing. Masking it would change
    nothing and would count its weights as kept or removed."""

    def parent(s: Site) -> str:
        return ".".join(p for p in s.path.split(".") if p != "_original_component").rsplit(".", 1)[
            0
        ]

    split = {(s.layer, parent(s)) for s in sites if s.matrix in ("W_Q", "W_K", "W_V")}
    return [
        s
        for s in sites
        if not (s.key.endswith(".qkv") or s.matrix == "W_QKV") or (s.layer, parent(s)) not in split
    ]


class _MaskParam(nn.Module):
    """Parametrization ``W -> W * mask(key)``; the mask source is a plain callable."""

    def __init__(self, fn: Callable[[], torch.Tensor | None]):
        super().__init__()
        self._fn = fn

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        m = self._fn()
        return weight if m is None else weight * m.to(weight.dtype)


@contextlib.contextmanager
def masked(
    model: Any, sites: Sequence[Site], mask_fn: Callable[[Site], torch.Tensor | None]
) -> Iterator[Any]:
    """While open, every site's weight reads as ``weight * mask_fn(site)`` (``None``: unmasked).
    Base weights are untouched; the parametrizations are removed on exit."""
    root = native(model)
    done = []
    try:
        for site in sites:
            mod = root.get_submodule(site.path)
            if tuple(mod.weight.shape) != tuple(site.shape):
                raise ValueError(
                    f"{site.key}: weight shape {tuple(mod.weight.shape)} != mask shape {site.shape}"
                )
            if parametrize.is_parametrized(mod, "weight"):
                raise RuntimeError(
                    f"{site.key} is already masked: masks do not nest (combine them with & or |)"
                )
            parametrize.register_parametrization(
                mod, "weight", _MaskParam(lambda s=site: mask_fn(s)), unsafe=True
            )
            done.append(mod)
        yield model
    finally:
        for mod in done:
            parametrize.remove_parametrizations(mod, "weight", leave_parametrized=False)


class Mask:
    """A hard binary mask over sites: ``values[key]`` is a bool tensor of the site's shape."""

    def __init__(
        self, sites: Sequence[Site], values: dict[str, torch.Tensor], meta: dict | None = None
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
        return f"Mask({len(self.sites)} matrices, kept {self.n_kept}/{self.n_total} = {self.kept_fraction:.4%})"

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
        return {l: k / n for l, (k, n) in sorted(out.items())}

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
    def apply(self, model: Any, complement: bool = False):
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
        return sum(torch.sigmoid(self.temperature * s).sum() for s in self.logits) / total

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
        """Undecided soft masks as a fraction of all maskable weights (logged, not the stop rule)."""
        return self.soft_counts(band)[0] / sum(s.size for s in self.sites)

    def decided(self, stop: float = 0.01, band: tuple[float, float] = (0.1, 0.9)) -> bool:
        """The stopping rule: fewer undecided masks than ``stop`` times the kept ones
        (never true while nothing is kept above the band)."""
        return should_stop(*self.soft_counts(band), stop)

    def hard(self, meta: dict | None = None) -> Mask:
        return Mask(
            self.sites, {s.key: (p.detach() > 0) for s, p in zip(self.sites, self.logits)}, meta
        )


@dataclass
class MaskTraining:
    """What :func:`train_mask` returns: the hard mask, the logits and the training log."""

    mask: Mask
    logits: MaskLogits
    log: list[dict]
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
    frozen = [p for p in root.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    history: list[dict] = []
    state = {"steps": 0, "early": False}
    module_total = sum(s.size for s in sites)

    def loss_fn(module: MaskLogits, tokens: torch.Tensor) -> torch.Tensor:
        tokens = tokens.to(_device(root))
        if isinstance(target_fn, str):
            if target_fn != "self":
                raise ValueError(f"target_fn must be a callable or 'self', got {target_fn!r}")
            with torch.no_grad(), module.unmasked():
                target = F.softmax(logits_of(root(tokens)).float(), dim=-1)
        else:
            target = target_fn(tokens).to(_device(root))
        task = soft_cross_entropy(logits_of(root(tokens)), target)
        density = module.soft_density()
        module._last = (task.item(), density.item())
        return task + cfg.lam * density

    def on_step(step: int, module: MaskLogits) -> None:
        module.temperature *= cfg.temperature_growth
        state["steps"] = step + 1
        if step % cfg.check_every == 0 or step == cfg.steps - 1:
            und, kept = module.soft_counts(cfg.undecided_band)
            task, density = getattr(module, "_last", (math.nan, math.nan))
            history.append(
                {
                    "step": step,
                    "task_loss": task,
                    "soft_density": density,
                    "undecided": und / module_total,
                    "undecided_per_kept": und / kept if kept else None,
                    "n_undecided": und,
                    "n_soft_kept": kept,
                    "temperature": module.temperature,
                }
            )
            if should_stop(und, kept, cfg.undecided_stop):
                state["early"] = True
                raise _Decided

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
    try:
        with masked(model, sites, logits.mask):
            try:
                train(
                    logits,
                    batch_fn,
                    loss_fn,
                    tcfg,
                    params=list(logits.parameters()),
                    desc=desc,
                    on_step=on_step,
                )
            except _Decided:
                pass
    finally:
        for p in frozen:
            p.requires_grad_(True)
    logits.eval()
    meta = {
        **cfg.model_dump(mode="json"),
        "steps_run": state["steps"],
        "stopped_early": state["early"],
        "final_temperature": logits.temperature,
    }
    return MaskTraining(logits.hard(meta), logits, history, state["steps"], state["early"])


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
    "MATRICES",
]
