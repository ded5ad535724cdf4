"""Questions about the module a TransformerLens bridge wraps, answered here so that analyses
never read the bridge's internals (``Model.module.original_model``) themselves:

    final_norm_in_base_model(m)   # is the final norm part of Hugging Face's base model?
    cast_wrapped(m, torch.float64)  # the bridge and everything the wrapped module holds

The wrapped module can hold parameters the bridge does not list (a VLM's image projector),
and only the wrapped module knows which of its parts Hugging Face calls the base model.
"""

from __future__ import annotations

import torch

from interp.tracing.model import Model


def final_norm_in_base_model(m: Model) -> bool:
    """Whether the bridge's final norm (``ln_final``) is a module of the wrapped Hugging Face
    model's base model (GPT-2's ``ln_f``: the base model's last hidden state is after it), not
    of a head (BERT's MLM transform). False for a model without a final norm or without a
    wrapped Hugging Face model."""
    norm = getattr(m.module, "ln_final", None)
    wrapped = getattr(m.module, "original_model", None)
    base = getattr(wrapped, "base_model", None)
    if norm is None or not isinstance(base, torch.nn.Module):
        return False
    return any(mod is norm for mod in base.modules())


def cast_wrapped(m: Model, dtype: torch.dtype) -> None:
    """Cast the bridge and the module it wraps, in place, to ``dtype``: the wrapped module's
    parameters outside the bridge's components (a VLM's projector) are cast too. A model that
    wraps nothing is cast as it is."""
    m.module.to(dtype)
    wrapped = getattr(m.module, "original_model", None)
    if isinstance(wrapped, torch.nn.Module):
        wrapped.to(dtype)


__all__ = ["final_norm_in_base_model", "cast_wrapped"]
