"""LSTM language models with optional hard-wired n-gram layers (Akyurek et al. 2024, sec. 6).

An n-gram layer of order ``m`` attends from query ``i`` to every key ``j <= i`` whose ``m``
preceding tokens equal the ``m`` tokens ending at ``i``::

    A_ij = 1[x_{j-1-k} = x_{i-k} for k = 0..m-1]   (j <= i), rows normalised (all-zero if no match)
    y    = W0 (A h) + W1 h

so ``m = 1`` is an exact 2-gram head: it reads the state just after earlier occurrences of
the current token. The paper normalises over ``j < i``; we keep ``j = i`` too (it is a
causal, legitimate match when ``x_{i-1} = x_i``).

Architecture: embedding -> ``n_layers`` LSTM layers (the cell of :mod:`interp.models.rnn`,
unrolled with per-step hooks) -> n-gram layers in order -> linear readout. Hook names::

    hook_embed                    [batch, time, d_hidden]
    blocks.{l}.rnn.hook_gates     [batch, 4 * d_hidden]     per step
    blocks.{l}.rnn.hook_c         [batch, d_hidden]         per step
    blocks.{l}.rnn.hook_h         [batch, d_hidden]         per step
    blocks.{l}.hook_out           [batch, time, d_hidden]   layer output
    ngram.{k}.hook_pattern        [batch, 1, query, key]    the hard-wired pattern A
    ngram.{k}.hook_out            [batch, time, d_hidden]
    hook_logits                   [batch, time, d_vocab]

Speed: when no per-step hook is in use, the LSTM layers run through torch's fused
``torch.lstm`` with the same weights (identical outputs up to float rounding; tested), so
training does not pay for the Python unroll.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn
from transformer_lens.hook_points import HookPoint
from transformer_lens.HookedRootModule import HookedRootModule

from interp.data.ngram_heads import ngram_pattern  # the pattern is a function of the tokens alone
from interp.models.rnn import RNNCell, RNNSpec


class NgramLSTMSpec(BaseModel):
    """Architecture of an LSTM LM with optional n-gram layers (``ngram_orders``: the ``m`` of
    each)."""

    model_config = ConfigDict(extra="forbid")

    d_vocab: int
    d_hidden: int = 128
    n_layers: int = 1
    ngram_orders: list[int] = []
    init_seed: int = 0


class NgramLayer(nn.Module):
    """``y = W0 (A h) + W1 h`` with the hard-wired pattern ``A`` of order ``m``."""

    def __init__(self, d: int, m: int):
        super().__init__()
        self.m = m
        self.W0 = nn.Linear(d, d, bias=False)
        self.W1 = nn.Linear(d, d)
        self.hook_pattern = HookPoint()  # [batch, 1, query, key] (one "head")
        self.hook_out = HookPoint()  # [batch, time, d]

    def forward(self, h: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        A = self.hook_pattern(ngram_pattern(tokens, self.m)[:, None])  # [batch, 1, query, key]
        return self.hook_out(self.W0(A[:, 0] @ h) + self.W1(h))


class LSTMBlock(nn.Module):
    """One LSTM layer: the hooked cell of :mod:`interp.models.rnn`, with a fused fast path."""

    def __init__(self, d_in: int, d_hidden: int, vocab: int):
        super().__init__()
        self.rnn = RNNCell(RNNSpec(cell="lstm", d_hidden=d_hidden, d_vocab=vocab), d_in)
        self.hook_out = HookPoint()  # [batch, time, d_hidden]

    def _hooked(self) -> bool:
        return any(
            len(hp._forward_hooks) for hp in (self.rnn.hook_gates, self.rnn.hook_c, self.rnn.hook_h)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._hooked():
            hs = self.rnn(x)  # unrolled: per-step hooks fire and edits feed the next step
        else:
            r = self.rnn
            B, H = x.shape[0], r.W_hh.shape[1]
            h0 = x.new_zeros(1, B, H)
            params = [r.W_ih, r.W_hh] + ([r.b_ih, r.b_hh] if r.b_ih is not None else [])
            hs = torch.lstm(
                x, (h0, h0), params, r.b_ih is not None, 1, 0.0, self.training, False, True
            )[0]
        return self.hook_out(hs)


class NgramLSTM(HookedRootModule):
    """Embedding -> LSTM layers -> n-gram layers -> readout (see the module docstring)."""

    def __init__(self, spec: NgramLSTMSpec):
        super().__init__()
        self.spec = spec
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(spec.init_seed)
            H = spec.d_hidden
            self.embed = nn.Embedding(spec.d_vocab, H)
            self.hook_embed = HookPoint()  # [batch, time, d_hidden]
            self.blocks = nn.ModuleList(
                [LSTMBlock(H, H, spec.d_vocab) for _ in range(spec.n_layers)]
            )
            self.ngram = nn.ModuleList([NgramLayer(H, m) for m in spec.ngram_orders])
            self.readout = nn.Linear(H, spec.d_vocab)
            self.hook_logits = HookPoint()  # [batch, time, d_vocab]
        self.setup()

    def forward(self, tokens: torch.Tensor, return_hidden: bool = False):
        if tokens.dtype.is_floating_point:
            raise TypeError("NgramLSTM takes token ids (LongTensor [batch, time])")
        h = self.hook_embed(self.embed(tokens))
        for block in self.blocks:
            h = block(h)
        for layer in self.ngram:
            h = layer(h, tokens)
        logits = self.hook_logits(self.readout(h))
        return (logits, h) if return_hidden else logits


def build_ngram_lstm(spec: dict, tokenizer=None) -> NgramLSTM:
    return NgramLSTM(NgramLSTMSpec(**spec))
