"""Token windows for training and evaluating an SAE on a language model's activations.

Training windows come from the corpus's train split and evaluation windows from its held-out
split, so FVU and the loss recovered are measured on text the SAE never saw."""

from __future__ import annotations

import torch

from interp.data.corpus import load_corpus


def token_windows(
    tokenizer,
    corpus: str,
    split: str,
    n: int,
    seq_len: int,
    seed: int,
    max_chars: int = 400_000,
    start_token: int | None = None,
) -> torch.Tensor:
    """``[n, seq_len]`` random windows of ``corpus``'s ``split`` ("train" or "heldout"), each
    after ``start_token`` (default: the tokenizer's BOS; pass ``Model.start_token_id``)."""
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    docs = getattr(load_corpus(corpus, max_chars=max_chars, seed=0), split)
    stream = torch.tensor(
        tokenizer("\n".join(docs), add_special_tokens=False)["input_ids"], dtype=torch.long
    )
    if len(stream) < seq_len:
        raise ValueError(f"the {split} text of {corpus!r} has {len(stream)} tokens; need {seq_len}")
    g = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, len(stream) - seq_len + 2, (n,), generator=g).tolist()
    body = torch.stack([stream[s : s + seq_len - 1] for s in starts])  # [n, seq_len - 1]
    bos = start_token if start_token is not None else tokenizer.bos_token_id
    bos = bos if bos is not None else int(stream[0])
    return torch.cat([torch.full((n, 1), bos, dtype=torch.long), body], dim=1)
