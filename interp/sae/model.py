"""Sparse autoencoders: one module, several activation kinds, SAELens-style files.

``x_hat = decode(encode(x))`` with a tied pre-bias ``b_dec`` (subtracted before the
encoder, added back after the decoder) and a decoder whose rows (one per latent) have unit
norm, so latent magnitudes carry the scale and an L1 penalty cannot be dodged by shrinking
codes and growing the decoder.

Kinds (registry :data:`KINDS`, extend with :func:`register_kind`):

- ``relu``: ``f = relu(W_enc (x - b_dec) + b_enc)``; sparsity by an L1 penalty (the paper's SAE).
- ``topk``: keep the ``k`` largest pre-activations (after ReLU); sparsity by construction.
- ``jumprelu``: ``f = z * [z > theta]`` with a learned threshold per latent, trained with
  straight-through estimators and an L0 penalty (Rajamanoharan et al. 2024).

``input_scale`` (set by the trainer so that E|x|^2 = 1) multiplies raw inputs; :meth:`SAE.encode`
and :meth:`SAE.decode` use it folded into the weights (:meth:`SAE.folded`), the form SAELens
stores, so a saved and reloaded SAE computes bit for bit what this one does.

On disk (:meth:`SAE.save`, :meth:`SAE.load`, :mod:`interp.sae.files`): SAELens's layout,
``cfg.json`` + ``sae_weights.safetensors`` (``W_enc [d_in, d_sae]``, ``W_dec [d_sae, d_in]``,
``b_enc``, ``b_dec``, and JumpReLU's ``threshold``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import annotated_types as at
import torch
from jaxtyping import Float
from pydantic import BaseModel, ConfigDict, model_validator
from torch import nn

_Pos = Annotated[int, at.Ge(1)]
_PosFloat = Annotated[float, at.Gt(0.0), at.Lt(float("inf"))]  # NaN fails every bound


class SAEConfig(BaseModel):
    """Architecture of an SAE (sizes at least 1; a TopK ``k`` at most ``d_sae``)."""

    model_config = ConfigDict(extra="forbid")

    d_in: _Pos
    d_sae: _Pos = 200
    kind: str = "relu"
    k: _Pos = 8  # topk: active latents per input
    threshold_init: _PosFloat = 0.01  # jumprelu: initial threshold
    bandwidth: _PosFloat = 0.01  # jumprelu: straight-through kernel width
    input_scale: _PosFloat = 1.0  # inputs are multiplied by this before encoding (normalise_scale)
    init_seed: int = 0
    hook_name: str | None = None  # provenance, kept in cfg.json
    apply_b_dec_to_input: bool = (
        True  # subtract b_dec before the encoder (SAELens's flag; off in some files)
    )
    dtype: Literal["float32", "float64"] = "float32"

    @model_validator(mode="after")
    def _k_fits(self) -> SAEConfig:
        if self.kind == "topk" and self.k > self.d_sae:  # all on: the L0 claim would hold trivially
            raise ValueError(
                f"topk k={self.k} is larger than d_sae={self.d_sae}; valid: 1..{self.d_sae}"
            )
        return self


# ------------------------------------------------------------------ kinds
class _Kind:
    """How a kind turns pre-activations into codes, and its sparsity penalty."""

    def __init__(
        self,
        activate: Callable[[SAE, torch.Tensor], torch.Tensor],
        penalty: Callable[[SAE, torch.Tensor, torch.Tensor], torch.Tensor],
        architecture: str | None = None,
    ):
        self.activate = activate
        self.penalty = penalty
        self.architecture = architecture  # SAELens's name for the same math; None: no SAELens file


KINDS: dict[str, _Kind] = {}


Activate = Callable[["SAE", torch.Tensor], torch.Tensor]  # (sae, pre) -> codes
Penalty = Callable[["SAE", torch.Tensor, torch.Tensor], torch.Tensor]  # (sae, pre, codes) -> [b]


def register_kind(
    name: str, activate: Activate, penalty: Penalty, architecture: str | None = None
) -> None:
    """Add an SAE kind: ``activate(sae, pre) -> codes``; ``penalty(sae, pre, codes) -> [batch]``;
    ``architecture``: the SAELens architecture with the same encode/decode (for its files)."""
    if name in KINDS:
        raise ValueError(f"SAE kind {name!r} is registered already; registered: {sorted(KINDS)}")
    KINDS[name] = _Kind(activate, penalty, architecture)


def _relu(sae: SAE, pre: torch.Tensor) -> torch.Tensor:
    return torch.relu(pre)


def _l1(sae: SAE, pre: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    # Decoder rows have unit norm, so |f|_1 is the L1 norm of the decoded contributions.
    return f.abs().sum(-1)


def _topk(sae: SAE, pre: torch.Tensor) -> torch.Tensor:
    # SAELens takes the top k of the pre-activations and then ReLUs them; the codes are the same
    # (a negative pick becomes 0 either way).
    k = min(sae.cfg.k, pre.shape[-1])
    vals, idx = torch.relu(pre).topk(k, dim=-1)
    return torch.zeros_like(pre).scatter(-1, idx, vals)


def _no_penalty(sae: SAE, pre: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    return torch.zeros(f.shape[:-1], device=f.device, dtype=f.dtype)


def _rect(x: torch.Tensor) -> torch.Tensor:
    return ((x > -0.5) & (x < 0.5)).to(x.dtype)


class _JumpReLU(torch.autograd.Function):
    """``z * [z > theta]``; d/dtheta by a rectangle-kernel straight-through estimator."""

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor, theta: torch.Tensor, bandwidth: float) -> torch.Tensor:
        ctx.save_for_backward(z, theta)
        ctx.bandwidth = bandwidth
        return z * (z > theta).to(z.dtype)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None]:
        z, theta = ctx.saved_tensors
        eps = ctx.bandwidth
        gz = g * (z > theta).to(z.dtype)
        gtheta = -(theta / eps) * _rect((z - theta) / eps) * g
        return gz, gtheta.sum(dim=tuple(range(gtheta.ndim - 1))), None


class _Step(torch.autograd.Function):
    """Heaviside ``[z > theta]``; gradient to theta only (straight-through), for the L0 penalty."""

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor, theta: torch.Tensor, bandwidth: float) -> torch.Tensor:
        ctx.save_for_backward(z, theta)
        ctx.bandwidth = bandwidth
        return (z > theta).to(z.dtype)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None]:
        z, theta = ctx.saved_tensors
        eps = ctx.bandwidth
        gtheta = -(1.0 / eps) * _rect((z - theta) / eps) * g
        return torch.zeros_like(z), gtheta.sum(dim=tuple(range(gtheta.ndim - 1))), None


def _jumprelu(sae: SAE, pre: torch.Tensor) -> torch.Tensor:
    # SAELens: relu(pre) * [pre > threshold]; the same for threshold = exp(.) > 0.
    # torch types Function.apply without annotations
    codes: torch.Tensor = _JumpReLU.apply(  # type: ignore[no-untyped-call]
        torch.relu(pre), sae.log_threshold.exp(), sae.cfg.bandwidth
    )
    return codes


def _l0(sae: SAE, pre: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    fired: torch.Tensor = _Step.apply(  # type: ignore[no-untyped-call]  # unannotated in torch
        torch.relu(pre), sae.log_threshold.exp(), sae.cfg.bandwidth
    )
    return fired.sum(-1)


register_kind("relu", _relu, _l1, architecture="standard")
register_kind("topk", _topk, _no_penalty, architecture="topk")
register_kind("jumprelu", _jumprelu, _l0, architecture="jumprelu")


# ------------------------------------------------------------------ module
class SAE(nn.Module):
    """A sparse autoencoder over ``d_in``-dim vectors with ``d_sae`` latents."""

    def __init__(self, cfg: SAEConfig):
        super().__init__()
        if cfg.kind not in KINDS:
            from interp.utils import unknown_name_error

            raise unknown_name_error("SAE kind", cfg.kind, sorted(KINDS))
        self.cfg = cfg
        dtype = getattr(torch, cfg.dtype)
        g = torch.Generator().manual_seed(cfg.init_seed)
        w_dec = torch.randn(cfg.d_sae, cfg.d_in, generator=g, dtype=dtype)
        w_dec = w_dec / w_dec.norm(dim=-1, keepdim=True)
        self.W_dec = nn.Parameter(w_dec)  # [d_sae, d_in], unit-norm rows
        self.W_enc = nn.Parameter(w_dec.T.clone())  # [d_in, d_sae]
        self.b_enc = nn.Parameter(torch.zeros(cfg.d_sae, dtype=dtype))
        self.b_dec = nn.Parameter(torch.zeros(cfg.d_in, dtype=dtype))  # tied pre-bias
        if cfg.kind == "jumprelu":
            self.log_threshold = nn.Parameter(
                torch.full((cfg.d_sae,), math.log(cfg.threshold_init), dtype=dtype)
            )

    @property
    def kind(self) -> _Kind:
        return KINDS[self.cfg.kind]

    def pre_acts(
        self, x: Float[torch.Tensor, "*batch d_in"]
    ) -> Float[torch.Tensor, "*batch d_sae"]:
        """``[..., d_sae]`` pre-activations of inputs ``[..., d_in]`` (already scaled)."""
        xc = x - self.b_dec if self.cfg.apply_b_dec_to_input else x
        return xc @ self.W_enc + self.b_enc

    def folded(self) -> dict[str, torch.Tensor]:
        """``W_enc, b_enc, W_dec, b_dec`` acting on raw inputs: ``input_scale`` folded in
        (SAELens's ``fold_activation_norm_scaling_factor``); the tensors themselves when it is 1."""
        s = self.cfg.input_scale
        if s == 1.0:
            return {
                "W_enc": self.W_enc,
                "b_enc": self.b_enc,
                "W_dec": self.W_dec,
                "b_dec": self.b_dec,
            }
        return {
            "W_enc": self.W_enc * s,
            "b_enc": self.b_enc,
            "W_dec": self.W_dec / s,
            "b_dec": self.b_dec / s,
        }

    def encode(self, x: Float[torch.Tensor, "*batch d_in"]) -> Float[torch.Tensor, "*batch d_sae"]:
        """Codes ``[..., d_sae]`` of raw inputs ``[..., d_in]``."""
        w = self.folded()
        xc = x - w["b_dec"] if self.cfg.apply_b_dec_to_input else x
        return self.kind.activate(self, xc @ w["W_enc"] + w["b_enc"])

    def decode(self, f: Float[torch.Tensor, "*batch d_sae"]) -> Float[torch.Tensor, "*batch d_in"]:
        """Reconstruction ``[..., d_in]`` in the raw input scale."""
        w = self.folded()
        return f @ w["W_dec"] + w["b_dec"]

    def forward(self, x: Float[torch.Tensor, "*batch d_in"]) -> Float[torch.Tensor, "*batch d_in"]:
        """Reconstruction of raw inputs: ``decode(encode(x))``."""
        return self.decode(self.encode(x))

    def loss(
        self, x: Float[torch.Tensor, "batch d_in"], sparsity: float, mse: str = "sum"
    ) -> tuple[Float[torch.Tensor, ""], dict[str, Float[torch.Tensor, ""]]]:
        """Mean over the batch of ``err + sparsity * penalty`` in scaled units; ``err`` is
        ``|x - x_hat|^2`` summed (``mse="sum"``) or averaged (``"mean"``) over features."""
        return self.scaled_loss(x * self.cfg.input_scale, sparsity, mse)

    def scaled_loss(
        self, xs: Float[torch.Tensor, "batch d_in"], sparsity: float, mse: str = "sum"
    ) -> tuple[Float[torch.Tensor, ""], dict[str, Float[torch.Tensor, ""]]]:
        """:meth:`loss` of inputs already multiplied by ``input_scale``."""
        pre = self.pre_acts(xs)
        f = self.kind.activate(self, pre)
        x_hat = f @ self.W_dec + self.b_dec
        err = (x_hat - xs).pow(2)
        rec = err.mean(-1) if mse == "mean" else err.sum(-1)  # [batch]
        pen = self.kind.penalty(self, pre, f)
        return (rec + sparsity * pen).mean(), {"mse": rec.mean(), "penalty": pen.mean()}

    @torch.no_grad()
    def normalise_decoder(self) -> None:
        """Rescale each decoder row to unit norm (and the encoder column inversely, so codes'
        reconstructions are unchanged)."""
        norms = self.W_dec.norm(dim=-1).clamp_min(1e-8)  # [d_sae]
        self.W_dec.div_(norms[:, None])
        self.W_enc.mul_(norms[None, :])
        self.b_enc.mul_(norms)
        if self.cfg.kind == "jumprelu":
            self.log_threshold.add_(norms.log())

    # -------------------------------------------------------------- files
    def save(self, path: str | Path) -> Path:
        """Write SAELens's ``cfg.json`` + ``sae_weights.safetensors`` to the folder ``path``
        (``input_scale`` folded into the weights; see :func:`interp.sae.files.write_saelens`)."""
        from interp.sae.files import write_saelens

        return write_saelens(self, path, KINDS)

    @classmethod
    def load(cls, path: str | Path) -> SAE:
        """Read an SAE folder written by SAELens (any architecture we have a kind for), by
        :meth:`save`, or by this project before it wrote SAELens's layout; see
        :func:`interp.sae.files.read_saelens`."""
        from interp.sae.files import read_saelens

        fields, state = read_saelens(path, KINDS)
        sae = cls(SAEConfig(**fields))
        sae.load_state_dict(state)
        bad = sorted(k for k, v in state.items() if not bool(v.isfinite().all()))
        if bad:
            raise ValueError(
                f"SAE file {Path(path)}: weights {', '.join(bad)} hold NaN or infinite "
                "values "
                "(a diverged training run, or a damaged file)"
            )
        return sae
