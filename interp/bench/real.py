"""The real-model item (``interp bench real_model``): collection, memory and SAE training on a
pretrained LM (default ``pretrained:smollm2-135m``: 30 layers, d 576, grouped-query heads).

- ``real_collect_{4,all}_layers_over_bare_body``: ``collect`` of ``resid_post`` at 4 layers
  spread over the depth (the last one included, so no early stop helps) and at every layer,
  against a bare forward of the model body (``base_model(x, use_cache=False)``: the same work
  without the unembedding that collect skips), interleaved rounds, median of paired ratios.
- ``real_memory_held_over_weights_and_selected``: in a fresh process, (weights + the rise of
  peak resident memory while collecting every layer) / (weights + the selected activations).
  Computing the full logits (8 x 128 x 49,152 floats = 192 MiB) would show here.
- ``real_sae_store_rate_over_memory_rate``: SAE training read from a disk store of the real
  model's activations / the same steps on tensors in memory.
- metric ``real_collect_tokens_per_s``: collection throughput of every layer.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import subprocess
import sys

import torch

import interp
from interp.bench.collection import _status_kib
from interp.bench.core import Bench, Config, _models, _tokens
from interp.bench.methods import bench_sae
from interp.tracing import adapters
from interp.utils import interleaved, paired_ratio

REAL_TARGETS = {
    "real_collect_4_layers_over_bare_body": ("<=", 1.05),
    "real_collect_all_layers_over_bare_body": ("<=", 1.05),
    "real_memory_held_over_weights_and_selected": ("<=", 1.05),
    "real_sae_store_rate_over_memory_rate": (">=", 0.8),
}


def load_real(config: Config, tf=None):
    """The real model (``tf``, the bench transformer, when ``real_model`` is "spec")."""
    if config.real_model == "spec":
        return tf
    return interp.load_model(config.real_model, device="cpu").eval()


def spread_layers(n_layers: int, k: int = 4) -> list[int]:
    """``k`` layers spread over the depth, the last one included."""
    return sorted({-(-(i + 1) * n_layers // k) - 1 for i in range(k)})  # ceil((i+1) L / k) - 1


def bench_real_model(b: Bench, config: Config, tf=None) -> None:
    """``collect`` of four spread layers and of every layer on the real model vs a bare forward
    of its body; memory held while collecting (a fresh process); SAE training from a store."""
    try:
        m = load_real(config, tf)
    except (FileNotFoundError, ValueError) as e:  # not installed: every target says why
        for name in REAL_TARGETS:
            b.target(name, None, f"real model [not measured: {e}]", **_op(name))
        return
    B, T = config.real_batch
    L = m.n_layers
    four = [m.hook("resid_post", layer) for layer in spread_layers(L)]
    every = [m.hook("resid_post", layer) for layer in range(L)]
    plain = adapters.plain_module(m)
    body = getattr(plain, "base_model", None) if plain is not None else None
    x = _tokens(int(m.d_vocab), (B, min(T, m.cfg.n_ctx)), config.seed)
    # not a Hugging Face model (the tiny test's bench transformer): its native forward (a tiny
    # vocabulary: the unembedding is cheap)
    native = body is None or body is plain
    variants = {
        "bare_body": (lambda: plain(x)) if native else (lambda: body(x, use_cache=False)),
        "collect_4": lambda: interp.collect(m, x, four, batch_size=B),
        "collect_all": lambda: interp.collect(m, x, every, batch_size=B),
    }
    with torch.no_grad():
        times = interleaved(variants, config.repeats)
    case = f"{m.model_id} [{B}x{x.shape[1]}]"
    b.times("real_model", case, times)
    shape = f"{m.model_id}, {L} layers, d {m.cfg.d_model}, {B}x{x.shape[1]} tokens"
    b.target(
        "real_collect_4_layers_over_bare_body",
        paired_ratio(times, "collect_4", "bare_body"),
        f"collect resid_post of layers {spread_layers(L)} / bare forward of the body ({shape})",
        **_op("real_collect_4_layers_over_bare_body"),
    )
    b.target(
        "real_collect_all_layers_over_bare_body",
        paired_ratio(times, "collect_all", "bare_body"),
        f"collect resid_post of all {L} layers / bare forward of the body ({shape})",
        **_op("real_collect_all_layers_over_bare_body"),
    )
    b.result.metrics["real_collect_tokens_per_s"] = x.numel() / statistics.median(
        times["collect_all"]
    )
    b.result.metrics["real_bare_tokens_per_s"] = x.numel() / statistics.median(times["bare_body"])
    _memory(b, config)
    bench_sae(
        b,
        config,
        m,
        name="real_sae_store_rate_over_memory_rate",
        target=REAL_TARGETS["real_sae_store_rate_over_memory_rate"],
    )
    if m is not tf:
        del m
        gc.collect()


def _op(name: str) -> dict:
    op, threshold = REAL_TARGETS[name]
    return {"op": op, "threshold": threshold}


def _memory(b: Bench, config: Config) -> None:
    name = "real_memory_held_over_weights_and_selected"
    code = (
        "from interp.bench.real import real_memory_probe; "
        f"real_memory_probe({json.dumps(config.model_dump_json())})"
    )
    env = {
        **os.environ,
        "INTERP_QUIET": "1",
        "MALLOC_MMAP_THRESHOLD_": "65536",
        "MALLOC_TRIM_THRESHOLD_": "0",
    }
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=900, env=env
    )
    if out.returncode != 0:
        b.target(
            name,
            None,
            f"memory held while collecting [not measured: probe failed: "
            f"{out.stderr.strip()[-300:]}]",
            **_op(name),
        )
        return
    got = json.loads(out.stdout.strip().splitlines()[-1])
    b.result.metrics["real_memory"] = got
    ratio = (got["weight_bytes"] + got["collect_peak_rise"]) / (
        got["weight_bytes"] + got["selected_bytes"]
    )
    b.target(
        name,
        ratio,
        f"(weights {got['weight_bytes'] / 2**20:.0f} MiB + peak RSS rise while collecting "
        f"{got['hooks']} resid_post) / "
        f"(weights + selected {got['selected_bytes'] / 2**20:.0f} MiB); fresh process",
        **_op(name),
    )


def real_memory_probe(config_json: str) -> None:
    """Run in a fresh process: print the weights' bytes and the peak-RSS rise of ``collect``."""
    config = Config.model_validate_json(config_json)
    tf = _models(config)[0] if config.real_model == "spec" else None
    m = load_real(config, tf)
    B, T = config.real_batch
    x = _tokens(int(m.d_vocab), (B, min(T, m.cfg.n_ctx)), config.seed)
    hooks = [m.hook("resid_post", layer) for layer in range(m.n_layers)]
    weights = sum(p.numel() * p.element_size() for p in m.module.parameters())
    with torch.no_grad():
        interp.collect(m, x[:1, :8], hooks)  # warm the code paths (the route probe, the plain tree)
        gc.collect()
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        start = _status_kib("VmRSS") * 1024
        store = interp.collect(m, x, hooks, batch_size=B)
        rise = _status_kib("VmHWM") * 1024 - start
    selected = sum(store[h].numel() * store[h].element_size() for h in hooks)
    print(
        json.dumps(
            {
                "weight_bytes": weights,
                "collect_peak_rise": rise,
                "selected_bytes": selected,
                "hooks": len(hooks),
            }
        )
    )
