"""The noise-driven ReLU RNN that learns to emulate an HMM (Torre et al. 2025).

A :class:`~interp.models.rnn.HookedRNN` with a ReLU cell, no biases, ``h0 = 0`` and a
linear readout, driven by Gaussian noise ``x_t ~ N(0, I_d)``. Each step it emits a hard
one-hot sample of ``softmax(logits)`` drawn with the Gumbel trick; the gradient passes
straight through the soft sample. It is trained by a distribution distance between whole
sequences: the debiased Sinkhorn divergence (geomloss) between a batch of flattened
one-hot RNN sequences and a batch of HMM sequences.

Hooks (inherited): ``hook_embed`` (the noise), per step ``rnn.hook_pre`` and
``rnn.hook_h`` [batch, d_hidden], ``hook_logits`` [batch, time, d_out].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict

from interp.models.rnn import HookedRNN, RNNSpec

# geomloss (the Sinkhorn loss) is imported inside sinkhorn_loss: only training needs it.

BUILDER = "hmm_rnn"


class HMMRNNSpec(BaseModel):
    """Architecture: hidden size, noise dimension ``d_input`` and number of outputs."""

    model_config = ConfigDict(extra="forbid")

    d_hidden: int = 50
    d_input: int = 10
    d_out: int = 3
    init_seed: int = 0


class HMMRNN(HookedRNN):
    """Noise -> ReLU RNN (no bias) -> linear readout -> straight-through Gumbel one-hot outputs."""

    def __init__(self, spec: HMMRNNSpec):
        self.hmm_spec = spec
        super().__init__(
            RNNSpec(
                cell="relu",
                d_hidden=spec.d_hidden,
                d_input=spec.d_input,
                d_out=spec.d_out,
                bias=False,
                init_seed=spec.init_seed,
            )
        )

    # ----------------------------------------------------------------- dynamics
    @property
    def W_hh(self) -> torch.Tensor:
        return self.rnn.W_hh

    @property
    def W_ih(self) -> torch.Tensor:
        return self.rnn.W_ih

    @property
    def W_out(self) -> torch.Tensor:
        return self.readout.weight

    def cell(self, h: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        """One step ``F(h, x) = relu(W_hh h + W_ih x)`` (``x=None``: no input). Same maths as the
        hooked forward, without hooks, for fixed-point search and Jacobians."""
        pre = h @ self.rnn.W_hh.T
        if x is not None:
            pre = pre + x @ self.rnn.W_ih.T
        return torch.relu(pre)

    def noise(self, n: int, T: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Input noise ``[n, T, d_input]`` ~ N(0, 1)."""
        x = torch.randn(n, T, self.hmm_spec.d_input, generator=generator)
        return x.to(self.rnn.W_hh.device)

    # ------------------------------------------------------------------ outputs
    def sample_outputs(
        self,
        x: torch.Tensor,
        generator: torch.Generator | None = None,
        tau: float = 1.0,
        logits: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One-hot outputs ``[n, T, d_out]`` sampled from ``softmax(logits)`` (hard Gumbel-softmax,
        straight-through gradient). ``logits`` may be passed when already computed."""
        if logits is None:
            logits = self(x)
        u = torch.rand(logits.shape, generator=generator).to(logits.device).clamp(1e-10, 1 - 1e-10)
        g = -torch.log(-torch.log(u))
        soft = F.softmax((logits + g) / tau, dim=-1)
        hard = F.one_hot(soft.argmax(-1), logits.shape[-1]).to(soft.dtype)
        return hard - soft.detach() + soft


def build_hmm_rnn(spec: dict, tokenizer=None) -> HMMRNN:
    """The ``hmm_rnn`` row of :data:`interp.models.builders.BUILDERS`."""
    return HMMRNN(HMMRNNSpec(**spec))


def sinkhorn_loss(blur: float = 0.2, p: int = 2):
    """Debiased Sinkhorn divergence between two batches of flattened sequences (geomloss,
    tensorized backend: runs on CPU without pykeops)."""
    from geomloss import SamplesLoss

    loss = SamplesLoss("sinkhorn", p=p, blur=blur, debias=True, backend="tensorized")

    def fn(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return loss(a.reshape(a.shape[0], -1).float(), b.reshape(b.shape[0], -1).float())

    return fn
