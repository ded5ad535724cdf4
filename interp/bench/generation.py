"""Benchmark item ``generation``: ``interp.generate`` under an edit vs the Hugging Face model's
own ``generate``, greedy, the same prompts and number of new tokens (docs/performance.md)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import torch

import interp
from interp.bench.core import Bench, Config, _hf_causal
from interp.tracing.generate import hf_cache_kwargs, hf_model
from interp.utils import interleaved, paired_ratio

GEN_NEW_TOKENS = 32
GEN_PROMPTS = (24, 16)  # prompt lengths of the batch (left-padded)


def bench_generation(b: Bench, config: Config) -> None:
    """Greedy generation of :data:`GEN_NEW_TOKENS` tokens after two prompts of different lengths
    on a Llama-shaped model of the bench's sizes: interp's loop with an additive edit at a middle
    layer's ``resid_pre`` (and with none) vs ``generate`` of the Hugging Face model under the
    bridge. Also checks that with no edit the tokens are the same."""
    root = Path(tempfile.mkdtemp(prefix="interp-bench-gen-"))
    try:
        m = _hf_causal(config, "llama", root / "llama", max(GEN_PROMPTS) + GEN_NEW_TOKENS)
        hf = hf_model(m)
        g = torch.Generator().manual_seed(config.seed)
        rows = [torch.randint(5, m.cfg.d_vocab, (n,), generator=g).tolist() for n in GEN_PROMPTS]
        P = max(GEN_PROMPTS)
        x = torch.tensor([[0] * (P - len(r)) + r for r in rows])
        mask = torch.tensor([[0] * (P - len(r)) + [1] * len(r) for r in rows])
        v = 0.1 * torch.randn(m.cfg.d_model, generator=g)
        edits = {m.hook("resid_pre", m.n_layers // 2): lambda a: a + v.to(a.dtype)}

        def ours(e=None):
            return interp.generate(m, rows, GEN_NEW_TOKENS, edits=e, stop_tokens=()).new_tokens

        def theirs():
            with torch.no_grad(), hf_cache_kwargs(m):
                return hf.generate(
                    x,
                    attention_mask=mask,
                    max_new_tokens=GEN_NEW_TOKENS,
                    do_sample=False,
                    pad_token_id=0,
                    eos_token_id=None,
                )[:, P:]

        same = int((ours() != theirs()).sum())
        b.result.add_criterion(
            "generate_equals_hf_generate",
            same,
            "==",
            0,
            kind="sanity",
            description="tokens where interp.generate (no edit) differs from the Hugging Face "
            "model's own greedy generate on the benchmark's Llama-shaped model",
        )
        times = interleaved(
            {"interp_edit": lambda: ours(edits), "interp": ours, "hf_generate": theirs},
            config.repeats,
        )
        label = f"llama-shaped, {len(rows)} prompts {GEN_PROMPTS}, {GEN_NEW_TOKENS} new tokens"
        b.times("generation", label, times)
        b.target(
            "generate_with_edits_over_hf_generate",
            paired_ratio(times, "interp_edit", "hf_generate"),
            f"interp.generate with an edit / HF generate ({label})",
        )
        b.result.metrics["generate_without_edits_over_hf_generate"] = paired_ratio(
            times, "interp", "hf_generate"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
