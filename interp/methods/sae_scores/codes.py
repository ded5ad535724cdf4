"""Head features and their discrete SAE codes: where a head's output is read
(:func:`select_positions`), one SAE shared by all heads and its argmax codes (:func:`sae_codes`),
and multi-slot codes as rows (:func:`pool_positions`)."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
from jaxtyping import Bool, Float, Int

from interp.sae.model import SAEConfig
from interp.sae.train import SAETrainConfig, train_sae

FEATURES = ("mean", "answer", "position")  # where a head's output is read (see select_positions)


def select_positions(
    x: Float[torch.Tensor, "n pos heads d"],
    mode: str,
    answer_pos: Int[torch.Tensor, " n"],
    reduce: Literal["mean", "sum"] = "mean",
) -> Float[torch.Tensor, "n slots heads d"]:
    """Head vectors read where ``mode`` says: ``"mean"`` over positions (the paper's features;
    ``reduce="sum"`` sums instead, which is what a gradient w.r.t. that mean feature needs),
    at the ``"answer"`` position, or every ``"position"`` kept apart. ``[n, slots, heads, d]``
    with ``slots`` = 1, 1, ``pos``."""
    if mode == "mean":
        return x.mean(1, keepdim=True) if reduce == "mean" else x.sum(1, keepdim=True)
    if mode == "answer":
        return x[torch.arange(len(x)), torch.as_tensor(answer_pos, dtype=torch.long)][:, None]
    if mode == "position":
        return x
    raise ValueError(f"unknown feature mode {mode!r}: one of {FEATURES}")


def sae_codes(
    features: Float[torch.Tensor, "n *slots heads d"],
    sae_cfg: SAEConfig | dict[str, Any] | None = None,
    train_cfg: SAETrainConfig | dict[str, Any] | None = None,
    train_rows: Int[np.ndarray, " rows"] | None = None,
    train_on: Float[torch.Tensor, "n *other_slots heads d"] | None = None,
) -> tuple[Int[np.ndarray, "n *slots heads"], dict[str, Any]]:
    """Train one SAE (shared by all heads, and positions) on the prompts ``features[train_rows]``
    (all prompts when None) and return the argmax codes of *all* prompts ``[n, ..., heads]``
    and the SAE's report: FVU etc. on its training vectors, and ``fvu_heldout`` on the prompts
    it did not train on (NaN when there are none).

    ``train_on``: other vectors of the same prompts to train on instead (e.g. every position's
    head outputs when ``features`` holds only the answer position's: one vector per prompt and
    head is fewer training vectors than latents, and such an SAE does not generalise). The codes
    and ``fvu_heldout`` are still those of ``features``."""
    from interp.sae.train import evaluate_sae

    n, d = features.shape[0], features.shape[-1]
    cfg = SAEConfig.model_validate(
        {
            "d_in": d,
            **(
                dict(sae_cfg)
                if isinstance(sae_cfg, dict)
                else (sae_cfg.model_dump() if sae_cfg is not None else {})
            ),
        }
    )
    rows = torch.arange(n) if train_rows is None else torch.as_tensor(train_rows, dtype=torch.long)
    source = features if train_on is None else train_on
    if source.shape[0] != n or source.shape[-1] != d:
        raise ValueError(
            f"train_on has shape {tuple(source.shape)}: it needs the same prompts ({n}) and "
            f"width ({d}) as features {tuple(features.shape)}"
        )
    sae, report = train_sae(source[rows].reshape(-1, d), cfg, train_cfg)
    held = torch.ones(n, dtype=torch.bool)
    held[rows] = False
    report["fvu_heldout"] = (
        evaluate_sae(sae, features[held].reshape(-1, d))["fvu"] if held.any() else float("nan")
    )
    with torch.no_grad():
        f = sae.encode(features.reshape(-1, d).to(sae.W_dec.dtype))  # [n*slots*heads, d_sae]
    codes = f.argmax(-1).view(features.shape[:-1]).cpu().numpy()
    # An input with no active latent gets its own code (-1), not latent 0.
    codes[(f.max(-1).values <= 0).view(features.shape[:-1]).cpu().numpy()] = -1
    report["sae"] = sae
    return codes, report


def pool_positions(
    codes: Int[np.ndarray, "n slots heads"],
    labels: Bool[np.ndarray, " n"],
    pairs: Int[np.ndarray, " n"] | None = None,
) -> tuple[
    Int[np.ndarray, "rows heads"], Bool[np.ndarray, " rows"], Int[np.ndarray, " rows"] | None
]:
    """Codes of every (prompt, slot) as rows for the row-wise scorers, each code keyed by its slot
    (so a latent at position 3 and the same latent at position 5 are different codes):
    ``(codes [n*slots, heads], labels [n*slots], pairs [n*slots])``. A row keeps its prompt's
    pair id, so a null that flips a pair flips all its positions together. One slot: the codes
    are only shifted (by one), which changes no score."""
    n, S, H = codes.shape
    span = int(codes.max()) + 2  # codes run from -1
    keyed = (codes + 1) + span * np.arange(S)[None, :, None]  # [n, slots, heads]

    row_labels = np.repeat(np.asarray(labels, dtype=bool), S)
    row_pairs = None if pairs is None else np.repeat(np.asarray(pairs), S)
    return keyed.reshape(n * S, H), row_labels, row_pairs
