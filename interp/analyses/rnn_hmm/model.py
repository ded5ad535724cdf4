"""The analysed RNN and its HMM: checks, runs on fresh noise, Jacobian spectra and unit
ablations."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from jaxtyping import Complex, Float

from interp.analyses.rnn_hmm.config import Config
from interp.analyses.rnn_hmm.types import Rollout
from interp.data.rnn_hmm import HMMSpec, make_hmm
from interp.methods.fixed_points import eigenvalues_by_modulus, jacobians
from interp.models.recipes.rnn_hmm import HMMRecipe, recipe_config
from interp.tracing.trace import edit_heads, trace

if TYPE_CHECKING:
    from interp.models.hmm_rnn import HMMRNN
    from interp.tracing.model import Model

REQUIRED_HOOKS = ("rnn.hook_pre", "rnn.hook_h", "hook_logits")
BURN = 20  # orbit steps left out (the start from h = 0)


def check_model(m: Model) -> None:
    """Raise a clear error unless ``m`` is a noise-driven RNN with the needed hooks and methods."""
    names = set(m.hook_names) if m.backend == "tl" else set()
    missing = [h for h in REQUIRED_HOOKS if h not in names]
    if missing:
        raise ValueError(
            f"rnn_hmm needs an RNN with hooks {list(REQUIRED_HOOKS)}; {m.model_id} lacks "
            f"{missing} (use a zoo:hmm-* model or an interp.models.hmm_rnn.HMMRNN)"
        )
    for attr in ("cell", "noise", "sample_outputs"):
        if not callable(getattr(m.module, attr, None)):
            raise ValueError(
                f"rnn_hmm needs a noise-driven RNN module with .{attr}(); {m.model_id} "
                f"({type(m.module).__name__}) has none"
            )


def resolve_hmm(config: Config) -> tuple[HMMSpec, int, HMMRecipe | None]:
    """The HMM, the training sequence length and the zoo recipe (None for other models)."""
    rc = recipe_config(config.model) if config.model.startswith("zoo:") else None
    kind = config.hmm_kind or (rc.hmm_kind if rc else None)
    M = config.n_states or (rc.n_states if rc else None)
    T = config.T or (rc.T if rc else None)
    if kind is None or T is None or (kind == "chain" and M is None):
        raise ValueError(f"{config.model} is not an HMM zoo recipe: give hmm_kind, n_states and T")
    return make_hmm(kind, M or 3), T, rc


def rollout(
    m: Model,
    n: int,
    T: int,
    seed: int,
    edits: dict[str, Callable[..., Any]] | None = None,
    h_capture: bool = True,
) -> Rollout:
    """Run the RNN on fresh noise (seeded): noise, hidden states (if captured), logits and
    sampled outputs."""
    g = torch.Generator().manual_seed(seed)
    x = m.module.noise(n, T, g)
    name = m.hook("rnn.hook_h")
    out, acts = trace(m, x, capture=[name] if h_capture else [], edits=edits)
    with torch.no_grad():
        y = m.module.sample_outputs(x, generator=g, logits=out).argmax(-1)
    return Rollout(noise=x, hidden=acts.get(name), logits=out, outputs=y)


def jacobian_spectra(
    module: HMMRNN, H: Float[torch.Tensor, "n d"], X: Float[torch.Tensor, "n d_in"]
) -> Complex[np.ndarray, "n d"]:
    """Eigenvalues (by decreasing modulus) of dF/dh at states ``H`` with inputs ``X``."""
    return eigenvalues_by_modulus(jacobians(lambda h, x: module.cell(h, x), H.detach(), X.detach()))


def ablate_units(units: Sequence[int]) -> Callable[[torch.Tensor], torch.Tensor]:
    """An edit of ``rnn.hook_h`` ``[batch, d_hidden]`` that zeroes the given units."""
    return edit_heads(list(units), torch.zeros_like, head_dim=1)
