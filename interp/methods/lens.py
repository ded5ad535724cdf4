"""The logit lens: the residual stream read out through the model's own final norm and unembedding.

One reader for every caller (the model report, the cross-modal analysis, the bigram
residual maps, the live explorer). It uses the bridge's ``ln_final`` and ``unembed``
components, i.e. the very modules the forward pass ends with, so the lens at the last
residual stream *is* the model's logits on a TransformerLens bridge (zoo transformers, our
VLM, Hugging Face models booted with ``boot_transformers``): bit for bit when read at every
position, up to float rounding (~1e-7) when a few positions are read alone, since the
matrix products then run on other shapes than in the forward.

    stream = residual_stream(m, tokens)              # m.resid_names(), captured in one forward
    logits = lens_logits(m, stream)                  # [L + 1, batch, pos, vocab]
    lens = logit_lens(m, tokens, positions=-1)       # both at once, at the last position
    lens.final_gap                                   # max |lens at the last layer - logits| (0)

Residual streams are ``m.resid_names()``: the embedding (``blocks.0.hook_resid_pre``) then
every block's ``hook_resid_post``, so row 0 of a lens is the embedding and row ``l + 1``
the stream after block ``l``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from interp.tracing.readout import unembed

Positions = None | int | Sequence[int]


@dataclass
class ResidualStream:
    """The residual stream of one batch and the model's own logits, at the chosen positions."""

    names: list[str]  # [R] hook names, embedding first (m.resid_names())
    resid: list[torch.Tensor]  # R x [batch, (pos), d_model]
    output: torch.Tensor  # [batch, (pos), d_vocab] the model's logits at the same positions


def _at(x: torch.Tensor, positions: Positions) -> torch.Tensor:
    """``x [batch, pos, ...]`` at ``positions`` (an int drops the pos axis)."""
    if positions is None:
        return x
    if isinstance(positions, int):
        return x[:, positions]
    return x[:, list(positions)]


def residual_stream(m: Any, inputs: Any, *, positions: Positions = None) -> ResidualStream:
    """One forward of ``inputs`` capturing every residual stream of ``m``; all positions, one
    (``positions=-1``: the last) or a list of them."""
    from interp.tracing.trace import trace

    names = m.resid_names()
    out, acts = trace(m, inputs, capture=names)
    return ResidualStream(names, [_at(acts[n], positions) for n in names], _at(out, positions))


def lens_logits(m: Any, stream: ResidualStream, *, norm: bool = True) -> torch.Tensor:
    """``[R, batch, (pos), d_vocab]`` lens logits of each residual stream (read one by one)."""
    return torch.stack([unembed(m, r, norm=norm) for r in stream.resid])


@dataclass
class LogitLens:
    """Per-residual-stream logits of one batch and the model's own logits."""

    names: list[str]  # [R]
    logits: torch.Tensor  # [R, batch, (pos), d_vocab]
    output: torch.Tensor  # [batch, (pos), d_vocab]

    def probs(self) -> torch.Tensor:
        """``[R, batch, (pos), d_vocab]`` softmax (float32) of :attr:`logits`."""
        return self.logits.float().softmax(-1)

    @property
    def final_gap(self) -> float:
        """max |lens at the last residual stream - the model's logits| (0 up to rounding)."""
        return float((self.logits[-1] - self.output).abs().max())


def logit_lens(
    m: Any,
    inputs: Any,
    *,
    positions: Positions = None,
    norm: bool = True,
    stream: ResidualStream | None = None,
) -> LogitLens:
    """The logit lens of ``inputs`` (or of an already captured ``stream``) over
    ``m.resid_names()``."""
    stream = stream if stream is not None else residual_stream(m, inputs, positions=positions)
    return LogitLens(stream.names, lens_logits(m, stream, norm=norm), stream.output)


__all__ = ["unembed", "residual_stream", "lens_logits", "logit_lens", "ResidualStream", "LogitLens"]
