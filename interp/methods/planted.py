"""A planted sparse subnetwork: a sanity check that mask training finds what is there.

:func:`planted_bigram_model` builds a tiny two-block MLP language model whose bigram behaviour
lives entirely in a known set of ``2 * vocab`` weights: token ``i`` is embedded one-hot, the
planted entry ``W_in[i, i]`` of block 0 fires neuron ``i`` and the planted entry
``W_out[vocab + next(i), i]`` writes ``boost`` onto the logit of its favourite successor
``next(i)`` (a random permutation). Every other weight of both blocks is Gaussian noise that
either does nothing or perturbs the logits, and the embedding -> unembedding path reads
nothing (embeddings live in the first ``vocab`` residual dimensions, the unembedding reads
the last ``vocab``), so with no block weight kept the model predicts uniformly. The target
``P(. | i) = softmax(boost * onehot(next(i)))`` is reproduced exactly by the planted weights
alone; a working mask trainer keeps them and drops the rest.

    res = planted_recovery(seed=0)       # {"iou": ..., "precision": ..., "recall": ..., ...}
    res["iou"] >= PLANTED_IOU            # the trainer works
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from interp.methods.masks import Mask, MaskTrainConfig, Site, find_sites, train_mask

PLANTED_IOU = 0.9  # intersection over union of kept vs planted weights a working trainer reaches
# Settings of the planted training (fixed: the check is of the trainer's code, not of a sweep's
# lambda).
PLANTED_TRAIN = MaskTrainConfig(
    lam=10.0, steps=400, lr=5e-2, init_logit=0.1, temperature_growth=1.02
)


class _Block(nn.Module):
    def __init__(self, d: int, hidden: int):
        super().__init__()
        self.fc_in = nn.Linear(d, hidden, bias=False)  # [hidden, d]
        self.fc_out = nn.Linear(hidden, d, bias=False)  # [d, hidden]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = x + self.fc_out(torch.relu(self.fc_in(x)))
        return out


class PlantedLM(nn.Module):
    """Embedding, two residual MLP blocks (``blocks.{0,1}.fc_in/fc_out``), unembedding."""

    def __init__(self, vocab: int, n_blocks: int = 2):
        super().__init__()
        d = 2 * vocab
        self.embed = nn.Embedding(vocab, d)
        self.layers = [_Block(d, vocab) for _ in range(n_blocks)]  # typed view of self.blocks
        self.blocks = nn.ModuleList(self.layers)
        self.unembed = nn.Linear(d, vocab, bias=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)  # [batch, pos, d]
        for block in self.layers:
            x = block(x)
        logits: torch.Tensor = self.unembed(x)  # [batch, pos, vocab]
        return logits


@dataclass
class Planted:
    """The planted model, its sites, the planted weights as a :class:`Mask` and the target table."""

    model: PlantedLM
    sites: list[Site]
    planted: Mask
    table: torch.Tensor  # [vocab, vocab] P(next | prev)
    successor: torch.Tensor  # [vocab] the favourite next token of each token


@torch.no_grad()
def planted_bigram_model(
    vocab: int = 16, seed: int = 0, noise: float = 0.5, boost: float = 4.0
) -> Planted:
    """The planted model of the module docstring (``noise``: std of the non-planted weights)."""
    if vocab < 2:
        raise ValueError(f"vocab must be at least 2, got {vocab}")
    if noise < 0 or boost <= 0:
        raise ValueError(f"noise must be >= 0 and boost > 0, got noise={noise}, boost={boost}")
    g = torch.Generator().manual_seed(seed)
    m = PlantedLM(vocab)
    d = 2 * vocab
    succ = torch.randperm(vocab, generator=g)
    m.embed.weight.zero_()
    m.embed.weight[:, :vocab] = torch.eye(vocab)
    m.unembed.weight.zero_()
    m.unembed.weight[:, vocab:] = torch.eye(vocab)
    for block in m.layers:
        block.fc_in.weight.copy_(noise * torch.randn(vocab, d, generator=g))
        block.fc_out.weight.copy_(noise * torch.randn(d, vocab, generator=g))
    idx = torch.arange(vocab)
    m.layers[0].fc_in.weight[idx, idx] = 1.0
    m.layers[0].fc_out.weight[vocab + succ, idx] = boost
    for p in m.parameters():
        p.requires_grad_(False)
    sites = find_sites(m)
    vals = {s.key: torch.zeros(s.shape, dtype=torch.bool) for s in sites}
    vals["blocks.0.W_in"][idx, idx] = True
    vals["blocks.0.W_out"][vocab + succ, idx] = True
    table = torch.softmax(boost * torch.eye(vocab)[succ], dim=-1)  # [vocab, vocab]
    return Planted(m, sites, Mask(sites, vals, {"name": "planted"}), table, succ)


def recovery(kept: Mask, planted: Mask) -> dict[str, float]:
    """Precision, recall and intersection over union of the kept weights against the planted
    ones."""
    both = kept.overlap(planted)
    union = kept.n_kept + planted.n_kept - both
    return {
        "precision": both / kept.n_kept if kept.n_kept else 0.0,
        "recall": both / planted.n_kept if planted.n_kept else 0.0,
        "iou": both / union if union else 0.0,
        "n_kept": kept.n_kept,
        "n_planted": planted.n_kept,
    }


def planted_recovery(
    seed: int = 0,
    cfg: MaskTrainConfig | None = None,
    vocab: int = 16,
    batch_size: int = 32,
    seq_len: int = 4,
) -> dict[str, Any]:
    """Train a mask on a planted model (:data:`PLANTED_TRAIN` unless ``cfg``) and measure how well
    the kept weights recover the planted ones (:func:`recovery`), with the steps and wall time."""
    t0 = time.time()
    pl = planted_bigram_model(vocab, seed)
    table = pl.table

    def batch_fn(step: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed * 1_000_003 + step)
        return torch.randint(0, vocab, (batch_size, seq_len), generator=g)

    res = train_mask(
        pl.model,
        batch_fn,
        lambda t: table[t],
        cfg or PLANTED_TRAIN,
        sites=pl.sites,
        desc="planted mask",
    )
    return {
        **recovery(res.mask, pl.planted),
        "steps": res.steps,
        "stopped_early": res.stopped_early,
        "n_maskable": pl.planted.n_total,
        "seconds": time.time() - t0,
    }


__all__ = [
    "PLANTED_IOU",
    "PLANTED_TRAIN",
    "Planted",
    "PlantedLM",
    "planted_bigram_model",
    "planted_recovery",
    "recovery",
]
