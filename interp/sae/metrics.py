"""What SAE users look at first: how much of the model's loss survives the SAE in the forward pass.

    loss_recovered(m, sae, "blocks.1.hook_resid_post", tokens)
    # {"ce_clean": 2.1, "ce_spliced": 2.3, "ce_zero": 5.0, "loss_recovered": 0.93, "l0": 31.2}

``loss_recovered = (ce_zero - ce_spliced) / (ce_zero - ce_clean)``: 1 when splicing the SAE's
reconstruction in costs nothing, 0 when it is as bad as zero-ablating the activation (the
convention of SAELens's evaluations). Cross-entropy is the next-token loss over every position.

The reconstruction and sparsity measures, streamed over chunks of rows (memory bounded by a chunk)::

    latent_stats(sae, [x[:4096], x[4096:]], dense_above=0.1)
    # {"fvu": 0.04, "l0": 32.0, "dead_frac": 0.01, "dense_frac": 0.19,
    #  "density": array([...]), "n_rows": 8192}

FVU is the summed squared reconstruction error over the rows' total variance about their mean;
L0 the mean number of active latents per row; a latent is dead when it fires on none of the rows
and dense when it fires on more than ``dense_above`` of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Float, Int

from interp.sae.splice import spliced
from interp.tracing.trace import trace


def _next_token_ce(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Summed cross-entropy of ``logits[:, :-1]`` against ``tokens[:, 1:]`` (float64)."""
    return F.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]).double(),
        tokens[:, 1:].reshape(-1),
        reduction="sum",
    )


@torch.no_grad()
def loss_recovered(
    m: Any,
    sae: Any,
    hook: str,
    tokens: Int[torch.Tensor, "n pos"],
    *,
    batch_size: int = 32,
    first_position: int = 0,
    max_norm: float | None = None,
) -> dict[str, float]:
    """Clean, spliced and zero-ablated next-token cross-entropy (nats per token) with ``sae``
    spliced in at ``hook`` (no error term), the loss recovered, and the mean L0 of the latents.

    ``first_position``: the SAE replaces (and the ablation zeroes) the activation from this
    position on; earlier positions stay clean. An SAE trained without the first position (an
    attention sink, whose norm can be 100x the others') is judged where it was trained.
    ``max_norm``: positions whose activation norm exceeds it (sinks an SAE was trained without,
    see :class:`~interp.sae.SAETrainConfig`'s ``max_norm_ratio``) stay clean too, and their
    latents are not counted in the L0."""
    if tokens.ndim != 2 or tokens.shape[1] < 2:
        raise ValueError(f"tokens must be [n, pos] with pos >= 2, got {list(tokens.shape)}")
    if not 0 <= first_position < tokens.shape[1]:
        raise ValueError(f"first_position must lie in [0, {tokens.shape[1]}), got {first_position}")
    m.check_names([hook])
    if max_norm is not None and not max_norm > 0:
        raise ValueError(f"max_norm must be positive (or None), got {max_norm}")
    if first_position or max_norm is not None:
        return _loss_recovered_from(m, sae, hook, tokens, batch_size, first_position, max_norm)
    sums = {"clean": 0.0, "spliced": 0.0, "zero": 0.0}
    l0, n_tok = 0.0, 0
    acts_name = f"{hook}.hook_sae_acts_post"
    for i in range(0, len(tokens), batch_size):
        x = tokens[i : i + batch_size].to(m.device)
        clean, _ = trace(m, x)
        zero, _ = trace(m, x, edits={hook: torch.zeros_like})
        with spliced(m, {hook: sae}, error_term=False):
            out, acts = trace(m, x, capture=[acts_name])
        assert clean is not None and zero is not None and out is not None  # trace never stops early
        sums["clean"] += float(_next_token_ce(clean, x))
        sums["zero"] += float(_next_token_ce(zero, x))
        sums["spliced"] += float(_next_token_ce(out, x))
        l0 += float((acts[acts_name] > 0).sum())
        n_tok += x.numel()
    return _summary(sums, l0, n_tok, tokens)


def _summary(
    sums: dict[str, float], l0: float, n_tok: int, tokens: torch.Tensor
) -> dict[str, float]:
    """Per-token cross-entropies from summed ones, the loss recovered, and the mean L0."""
    n_pred = len(tokens) * (tokens.shape[1] - 1)
    ce = {k: v / n_pred for k, v in sums.items()}
    gap = ce["zero"] - ce["clean"]
    return {
        "ce_clean": ce["clean"],
        "ce_spliced": ce["spliced"],
        "ce_zero": ce["zero"],
        "loss_recovered": (ce["zero"] - ce["spliced"]) / gap if abs(gap) > 1e-12 else float("nan"),
        "l0": l0 / n_tok if n_tok else float("nan"),  # nan: every position was a sink
    }


def _loss_recovered_from(
    m: Any,
    sae: Any,
    hook: str,
    tokens: torch.Tensor,
    batch_size: int,
    p: int,
    max_norm: float | None = None,
) -> dict[str, float]:
    """:func:`loss_recovered` with the SAE and the ablation applied from position ``p`` on, sinks
    (norm above ``max_norm``) excepted (edits, not a splice: a splice replaces every position)."""
    sums = {"clean": 0.0, "spliced": 0.0, "zero": 0.0}
    l0, n_tok = 0.0, 0

    def tail(fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
        def edit(a: torch.Tensor) -> torch.Tensor:
            rest = a[:, p:]
            new = fn(rest).to(a.dtype)
            if max_norm is not None:
                sink = rest.float().norm(dim=-1, keepdim=True) > max_norm
                new = torch.where(sink, rest, new)
            return torch.cat([a[:, :p], new], dim=1)

        return edit

    for i in range(0, len(tokens), batch_size):
        x = tokens[i : i + batch_size].to(m.device)
        clean, acts = trace(m, x, capture=[hook])
        zero, _ = trace(m, x, edits={hook: tail(torch.zeros_like)})
        out, _ = trace(
            m, x, edits={hook: tail(lambda a: sae.decode(sae.encode(a.to(sae.W_dec.dtype))))}
        )
        assert clean is not None and zero is not None and out is not None  # a model with logits
        sums["clean"] += float(_next_token_ce(clean, x))
        sums["zero"] += float(_next_token_ce(zero, x))
        sums["spliced"] += float(_next_token_ce(out, x))
        rest = acts[hook][:, p:]
        if max_norm is not None:
            rest = rest[rest.float().norm(dim=-1) <= max_norm]  # [rows, d]
        codes = sae.encode(rest.to(sae.W_dec.dtype)).reshape(-1, sae.cfg.d_sae)
        l0 += float((codes > 0).sum())
        n_tok += codes.shape[0]
    return _summary(sums, l0, n_tok, tokens)


@torch.no_grad()
def latent_stats(
    sae: Any, chunks: Iterable[Float[torch.Tensor, "n d_in"]], *, dense_above: float = 0.1
) -> dict[str, Any]:
    """FVU, L0, dead and dense fractions and per-latent density of ``sae`` on the rows of ``chunks``
    (raw inputs, one ``[n, d_in]`` tensor at a time; see the module docstring)."""
    dtype = sae.W_dec.dtype
    err, l0, n = 0.0, 0.0, 0
    fired = torch.zeros(sae.cfg.d_sae, dtype=torch.float64)
    sum_x = torch.zeros(sae.cfg.d_in, dtype=torch.float64)
    sum_sq = 0.0
    for xb in chunks:
        xb = xb.to(dtype)
        f = sae.encode(xb)
        err += (sae.decode(f) - xb).pow(2).sum().item()
        active = f != 0
        l0 += active.sum().item()
        fired += active.sum(0).cpu().double()
        x64 = xb.double()
        sum_x += x64.sum(0).cpu()
        sum_sq += x64.pow(2).sum().item()
        n += len(xb)
    if n == 0:
        raise ValueError("latent_stats got no rows")
    # Total variance about the mean, from float64 sums: sum |x|^2 - n |mean|^2.
    total = sum_sq - float(sum_x.pow(2).sum()) / n
    density = (fired / n).numpy().astype(np.float64)
    return {
        "fvu": err / max(total, 1e-12),
        "l0": l0 / n,
        "dead_frac": float((density == 0).mean()),
        "dense_frac": float((density > dense_above).mean()),
        "density": density,
        "n_rows": n,
    }
