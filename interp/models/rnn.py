"""Hookable recurrent models: vanilla (tanh/ReLU), GRU and LSTM, as ``HookedRootModule``s.

The cell is unrolled in Python so that an edit at ``rnn.hook_h`` feeds the next step
(fused ``nn.RNN`` kernels cannot be edited per step). Per-step hooks carry
``per_step = True``; captured, they stack to ``[batch, time, ...]``.

Hook names (module tree, TransformerLens style)::

    hook_embed      [batch, time, d_in]     input after embedding (or the raw input)
    rnn.hook_pre    [batch, d_hidden]        per step, pre-activation (vanilla cells)
    rnn.hook_gates  [batch, k * d_hidden]    per step, gate pre-activations (GRU/LSTM)
    rnn.hook_h      [batch, d_hidden]        per step, hidden state
    rnn.hook_c      [batch, d_hidden]        per step, LSTM cell state
    hook_logits     [batch, time, d_out]     readout
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, model_validator
from torch import nn
from transformer_lens.hook_points import HookPoint
from transformer_lens.HookedRootModule import HookedRootModule


class RNNSpec(BaseModel):
    """Architecture of a zoo RNN. Give ``d_vocab`` (token input) or ``d_input`` (vector input)."""

    model_config = ConfigDict(extra="forbid")

    cell: Literal["tanh", "relu", "gru", "lstm"] = "tanh"
    d_hidden: int = 64
    d_vocab: int | None = None
    d_input: int | None = None
    d_embed: int | None = None  # token embedding size; default d_hidden
    d_out: int | None = None  # readout size; default d_vocab
    bias: bool = True
    init_seed: int = 0

    @model_validator(mode="after")
    def _check(self) -> RNNSpec:
        if (self.d_vocab is None) == (self.d_input is None):
            raise ValueError("give exactly one of d_vocab (token input) or d_input (vector input)")
        if self.d_out is None:
            if self.d_vocab is None:
                raise ValueError("d_out is required when the input is a vector (d_input)")
            self.d_out = self.d_vocab
        return self


def _step_hook() -> HookPoint:
    hp = HookPoint()
    hp.per_step = True  # fires once per time step; captures stack along dim 1
    return hp


class RNNCell(nn.Module):
    """One recurrent layer, unrolled over time with per-step hooks."""

    def __init__(self, spec: RNNSpec, d_in: int):
        super().__init__()
        self.cell = spec.cell
        h = spec.d_hidden
        gates = {"tanh": 1, "relu": 1, "gru": 3, "lstm": 4}[spec.cell]
        self.W_ih = nn.Parameter(torch.empty(gates * h, d_in))
        self.W_hh = nn.Parameter(torch.empty(gates * h, h))
        self.b_ih = nn.Parameter(torch.zeros(gates * h)) if spec.bias else None
        self.b_hh = nn.Parameter(torch.zeros(gates * h)) if spec.bias else None
        bound = 1.0 / math.sqrt(h)
        for w in (self.W_ih, self.W_hh):
            nn.init.uniform_(w, -bound, bound)
        if spec.cell in ("tanh", "relu"):
            self.hook_pre = _step_hook()  # [batch, d_hidden]
        else:
            self.hook_gates = _step_hook()  # [batch, gates * d_hidden]
        self.hook_h = _step_hook()  # [batch, d_hidden]
        if spec.cell == "lstm":
            self.hook_c = _step_hook()  # [batch, d_hidden]

    def step(self, x_t: torch.Tensor, h: torch.Tensor, c: torch.Tensor | None, xw: torch.Tensor):
        """One step. ``xw`` = input projection of ``x_t`` (precomputed for the sequence)."""
        hw = h @ self.W_hh.T
        if self.b_hh is not None:
            hw = hw + self.b_hh
        if self.cell in ("tanh", "relu"):
            pre = self.hook_pre(xw + hw)
            h = torch.tanh(pre) if self.cell == "tanh" else torch.relu(pre)
        elif self.cell == "gru":
            H = h.shape[-1]
            gates = self.hook_gates(
                torch.cat([xw[:, : 2 * H] + hw[:, : 2 * H], xw[:, 2 * H :], hw[:, 2 * H :]], -1)
            )
            r, z = torch.sigmoid(gates[:, :H]), torch.sigmoid(gates[:, H : 2 * H])
            n = torch.tanh(gates[:, 2 * H : 3 * H] + r * gates[:, 3 * H :])
            h = (1 - z) * n + z * h
        else:  # lstm
            gates = self.hook_gates(xw + hw)
            i, f, g, o = gates.chunk(4, dim=-1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            c = self.hook_c(c)
            h = torch.sigmoid(o) * torch.tanh(c)
        return self.hook_h(h), c

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None = None) -> torch.Tensor:
        B, T, _ = x.shape
        H = self.W_hh.shape[1]
        xw = x @ self.W_ih.T  # [batch, time, gates * d_hidden]
        if self.b_ih is not None:
            xw = xw + self.b_ih
        h = torch.zeros(B, H, device=x.device, dtype=x.dtype) if h0 is None else h0
        c = torch.zeros_like(h) if self.cell == "lstm" else None
        hs = []
        for t in range(T):
            h, c = self.step(x[:, t], h, c, xw[:, t])
            hs.append(h)
        return torch.stack(hs, dim=1)  # [batch, time, d_hidden]


class HookedRNN(HookedRootModule):
    """Embedding (or vector input) -> one recurrent layer -> linear readout."""

    def __init__(self, spec: RNNSpec):
        super().__init__()
        self.spec = spec
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(spec.init_seed)
            if spec.d_vocab is not None:
                d_in = spec.d_embed or spec.d_hidden
                self.embed = nn.Embedding(spec.d_vocab, d_in)
            else:
                d_in = spec.d_input
                self.embed = None
            self.hook_embed = HookPoint()  # [batch, time, d_in]
            self.rnn = RNNCell(spec, d_in)
            self.readout = nn.Linear(spec.d_hidden, spec.d_out, bias=spec.bias)
            self.hook_logits = HookPoint()  # [batch, time, d_out]
        self.setup()

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None = None, return_hidden: bool = False):
        if self.embed is not None:
            if x.dtype.is_floating_point:
                raise TypeError("this RNN takes token ids (LongTensor [batch, time])")
            e = self.embed(x)
        else:
            if x.ndim != 3 or x.shape[-1] != self.spec.d_input:
                raise ValueError(
                    f"expected input [batch, time, {self.spec.d_input}], got {tuple(x.shape)}"
                )
            e = x
        e = self.hook_embed(e)
        hs = self.rnn(e, h0)  # [batch, time, d_hidden]
        logits = self.hook_logits(self.readout(hs))
        return (logits, hs) if return_hidden else logits


def build_rnn(spec: RNNSpec | dict, tokenizer: Any = None) -> HookedRNN:
    """The ``rnn`` row of :data:`interp.models.builders.BUILDERS`: an untrained
    :class:`HookedRNN`."""
    return HookedRNN(spec if isinstance(spec, RNNSpec) else RNNSpec(**spec))
