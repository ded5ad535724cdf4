"""Everything the live explorer shows about one prompt, computed in one place.

Not a registered analysis: the dashboard's "Explore a model" page and notebooks call
:func:`probe_prompt` on a loaded model. Returns plain data (numpy arrays, lists).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from interp.methods.lens import LogitLens
    from interp.tracing.model import Model


@dataclass
class PromptProbe:
    """What a model does with one prompt (all arrays on the CPU)."""

    tokens: list[str]  # [pos]
    top_tokens: list[str]  # [k] predictions at the last position
    top_probs: np.ndarray  # [k]
    target: str  # token whose probability the lens and ablation track
    target_id: int
    patterns: np.ndarray | None  # [layer, head, query, key]
    lens_probs: (
        np.ndarray | None
    )  # [layer + 1, pos] probability of the next token (row 0 = embedding)
    lens_target_prob: (
        np.ndarray | None
    )  # [layer + 1] probability of the target at the last position
    lens_top: list[list[str]] | None  # [layer + 1][pos] top-1 token of the lens
    head_effect: (
        np.ndarray | None
    )  # [layer, head] change in the target's logit when the head is zeroed


def probe_prompt(
    m: Model, prompt: str, target: str | None = None, top_k: int = 10, ablate: bool = True
) -> PromptProbe:
    """Tokens, next-token predictions, attention, logit lens and per-head ablation for ``prompt``.

    ``target``: a string whose first token is tracked (default: the model's top prediction).
    Transformers get every panel; other models get tokens and predictions only.
    """
    from interp.methods.lens import logit_lens
    from interp.tracing.trace import trace

    if not prompt:
        raise ValueError("type a prompt first")
    tokens = m.to_tokens(prompt)
    if m.cfg is not None and tokens.shape[1] > m.cfg.n_ctx:
        raise ValueError(
            f"the prompt has {tokens.shape[1]} tokens; this model's context is {m.cfg.n_ctx}"
        )
    is_tf = m.kind == "transformer" and m.n_layers > 0
    lens = logit_lens(m, tokens) if is_tf else None
    out = lens.output if lens is not None else trace(m, tokens)[0]
    probs = out[0, -1].float().softmax(-1)
    top = probs.topk(top_k)
    target_id = _target_id(m, target) if target else int(top.indices[0])
    probe = PromptProbe(
        m.to_str_tokens(tokens[0]),
        m.to_str_tokens(top.indices),
        top.values.cpu().numpy(),
        m.tokenizer.decode([target_id]),
        target_id,
        None,
        None,
        None,
        None,
        None,
    )
    if lens is None:
        return probe
    probe.patterns = attention_patterns(m, tokens)
    probe.lens_probs, probe.lens_target_prob, probe.lens_top = _lens_readout(
        m, lens, tokens, target_id
    )
    if ablate:
        probe.head_effect = head_effects(m, tokens, target_id, float(out[0, -1, target_id]))
    return probe


def _target_id(m: Model, target: str) -> int:
    ids = m.tokenizer.encode(target, add_special_tokens=False)
    if not ids:
        raise ValueError(f"target {target!r} has no tokens")
    return int(ids[0])


def attention_patterns(m: Model, tokens: torch.Tensor) -> np.ndarray:
    """``[layer, head, query, key]`` attention patterns of the first prompt in ``tokens``."""
    from interp.tracing.trace import trace

    names = [m.hook("pattern", layer) for layer in range(m.n_layers)]
    _, acts = trace(m, tokens, capture=names)
    return torch.stack([acts[n][0] for n in names]).float().cpu().numpy()


def _lens_readout(
    m: Model, lens: LogitLens, tokens: torch.Tensor, target_id: int
) -> tuple[np.ndarray, np.ndarray, list[list[str]]]:
    """Lens probability of each next token ``[R, pos]`` (NaN at the last position), of the
    target at the last position ``[R]``, and the lens's top-1 token ``[R][pos]``."""
    probs = lens.probs()[:, 0]  # [R, pos, vocab]
    R = probs.shape[0]
    nxt = tokens[0, 1:]
    next_prob = probs[:, :-1].gather(-1, nxt.expand(R, -1).unsqueeze(-1)).squeeze(-1).cpu().numpy()
    lens_probs = np.concatenate([next_prob, np.full((R, 1), np.nan)], axis=1)
    return (
        lens_probs,
        probs[:, -1, target_id].cpu().numpy(),
        [m.to_str_tokens(probs[j].argmax(-1)) for j in range(R)],
    )


def head_effects(m: Model, tokens: torch.Tensor, target_id: int, clean: float) -> np.ndarray:
    """``[layer, head]`` change of the target's last-position logit when one head's ``z`` is
    zeroed."""
    from interp.tracing.trace import trace, zero_heads

    effect = np.zeros((m.n_layers, m.cfg.n_heads))
    for layer in range(m.n_layers):
        for h in range(m.cfg.n_heads):
            o, _ = trace(m, tokens, edits={m.hook("z", layer): zero_heads([h])})
            effect[layer, h] = o[0, -1, target_id].item() - clean
    return effect
