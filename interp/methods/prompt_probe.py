"""Everything the live explorer shows about one prompt, computed in one place.

Not a registered analysis: the dashboard's "Explore a model" page and notebooks call
:func:`probe_prompt` on a loaded model. Returns plain data (numpy arrays, lists).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch


@dataclass
class PromptProbe:
    """What a model does with one prompt (all arrays on the CPU)."""

    tokens: list[str]  # [pos]
    top_tokens: list[str]  # [k] predictions at the last position
    top_probs: np.ndarray  # [k]
    target: str  # token whose probability the lens and ablation track
    target_id: int
    patterns: Optional[np.ndarray]  # [layer, head, query, key]
    lens_probs: Optional[np.ndarray]  # [layer + 1, pos] probability of the next token (row 0 = embedding)
    lens_target_prob: Optional[np.ndarray]  # [layer + 1] probability of the target at the last position
    lens_top: Optional[list[list[str]]]  # [layer + 1][pos] top-1 token of the lens
    head_effect: Optional[np.ndarray]  # [layer, head] change in the target's logit when the head is zeroed


def probe_prompt(m, prompt: str, target: Optional[str] = None, top_k: int = 10, ablate: bool = True) -> PromptProbe:
    """Tokens, next-token predictions, attention, logit lens and per-head ablation for ``prompt``.

    ``target``: a string whose first token is tracked (default: the model's top prediction).
    Transformers get every panel; other models get tokens and predictions only.
    """
    from interp.tracing.trace import trace, zero_heads

    if not prompt:
        raise ValueError("type a prompt first")
    tokens = m.to_tokens(prompt)
    if m.cfg is not None and tokens.shape[1] > m.cfg.n_ctx:
        raise ValueError(f"the prompt has {tokens.shape[1]} tokens; this model's context is {m.cfg.n_ctx}")
    is_tf = m.kind == "transformer" and m.n_layers > 0
    L = m.n_layers if is_tf else 0
    resid = ["blocks.0.hook_resid_pre"] + [f"blocks.{l}.hook_resid_post" for l in range(L)]
    pats = [f"blocks.{l}.attn.hook_pattern" for l in range(L)]
    out, acts = trace(m, tokens, capture=[*resid, *pats] if is_tf else [])
    probs = out[0, -1].float().softmax(-1)
    top = probs.topk(top_k)
    if target:
        ids = m.tokenizer.encode(target, add_special_tokens=False)
        if not ids:
            raise ValueError(f"target {target!r} has no tokens")
        target_id = ids[0]
    else:
        target_id = int(top.indices[0])
    str_tokens = m.to_str_tokens(tokens[0])
    probe = PromptProbe(str_tokens, m.to_str_tokens(top.indices), top.values.cpu().numpy(),
                        m.tokenizer.decode([target_id]), target_id, None, None, None, None, None)
    if not is_tf:
        return probe
    probe.patterns = torch.stack([acts[p][0] for p in pats]).float().cpu().numpy()
    with torch.no_grad():
        lens = torch.stack([m.module.unembed(m.module.ln_final(acts[r]))[0] for r in resid]).float().softmax(-1)
    nxt = tokens[0, 1:]
    probe.lens_probs = np.concatenate(
        [lens[:, :-1].gather(-1, nxt.expand(L + 1, -1).unsqueeze(-1)).squeeze(-1).cpu().numpy(),
         np.full((L + 1, 1), np.nan)], axis=1)
    probe.lens_target_prob = lens[:, -1, target_id].cpu().numpy()
    probe.lens_top = [m.to_str_tokens(lens[j].argmax(-1)) for j in range(L + 1)]
    if ablate:
        clean = out[0, -1, target_id].item()
        effect = np.zeros((L, m.cfg.n_heads))
        for l in range(L):
            for h in range(m.cfg.n_heads):
                o, _ = trace(m, tokens, edits={f"blocks.{l}.attn.hook_z": zero_heads([h])})
                effect[l, h] = o[0, -1, target_id].item() - clean
        probe.head_effect = effect
    return probe
