"""Reading residual vectors out through the model's own head: its final norm and unembedding.

This is architecture knowledge (which modules end the forward pass, and what they are
called on a TransformerLens bridge), so it lives in the tracing layer beside the
:class:`~interp.tracing.model.Model`, where methods (the logit lens) and the SAE feature
pages (a decoder row's effect on the logits) both ask for it.

    logits = unembed(m, resid)               # [..., d_vocab], through ln_final then unembed
    direct = unembed(m, resid, norm=False)   # the unembedding alone (bias b_U included)
"""

from __future__ import annotations

from typing import Any

import torch


def unembed(m: Any, resid: torch.Tensor, *, norm: bool = True) -> torch.Tensor:
    """Logits ``[..., d_vocab]`` read from residual vectors ``resid [..., d_model]`` through the
    model's final norm (``norm=True``; skipped when False) and its unembedding (no autograd
    graph)."""
    bridge = m.module
    if not (hasattr(bridge, "unembed") and hasattr(bridge, "ln_final")):
        raise TypeError(
            f"the logit lens needs a TransformerLens bridge with ln_final and unembed; "
            f"{getattr(m, 'model_id', type(bridge).__name__)} has none"
        )
    with torch.no_grad():
        logits: torch.Tensor = bridge.unembed(bridge.ln_final(resid) if norm else resid)
        return logits
