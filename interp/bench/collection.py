"""Collection items: ``collect`` vs bare forwards, TransformerLens and nnsight; memory held;
early stop; disk vs memory; the SAE feature-page pass vs one plain read of the store."""

from __future__ import annotations

import gc
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from nnsight import NNsight

import interp
from interp.bench.core import (
    TARGETS,
    Bench,
    Config,
    _hf_causal,
    _models,
    _resid_hooks,
    _tf_hooks,
    _tokens,
    resid_store,
)
from interp.sae.features import dense_density, feature_pages
from interp.sae.model import SAE, SAEConfig
from interp.tracing import adapters
from interp.tracing.runners import PlainRunner, Reducer, make_runner
from interp.utils import interleaved, paired_ratio

log = logging.getLogger("interp.bench")


def _regimes(config: Config) -> tuple[tuple[str, tuple[int, int], int, int], ...]:
    """(regime, (batch, length), number of batches, rounds) of the two timed regimes: large
    batches (compute-bound) and small ones (per-call overhead dominates)."""
    return (
        ("compute", config.compute_batch, config.compute_batches, config.repeats),
        ("overhead", config.overhead_batch, config.overhead_batches, config.overhead_repeats),
    )


def _collect_trace_gap(m, hooks: list[str], x) -> float:
    """max |collect - trace| over ``hooks`` on ``x``: the timed path computes the right values."""
    got = interp.collect(m, x, hooks, batch_size=2)
    _, want = interp.trace(m, x, capture=hooks)
    return max(float((got[h] - want[h]).abs().max()) for h in hooks)


# ----------------------------------------------------------------- collection
def bench_collection(b: Bench, config: Config, tf, rnn) -> None:
    """``collect`` of the bench's hooks on a transformer and an RNN vs a bare forward of the same
    plain module, TransformerLens ``run_with_cache`` (filtered; all hooks and the bridge in the
    overhead regime) and nnsight saves, in both regimes; then the CUDA item."""
    native = adapters.plain_module(tf)
    tf_hooks = _tf_hooks(tf)
    rnn_hooks = [rnn.module.rnn.hook_h.name]  # the cell's hidden state, stacked over time
    nn_tf, nn_rnn = NNsight(native), NNsight(rnn.module)
    # (which, model, hooks, its bare forward, its nnsight saves of the same activations)
    cases = (
        ("transformer", tf, tf_hooks, native, lambda xb: _nnsight_tf_saves(nn_tf, xb, tf.n_layers)),
        ("rnn", rnn, rnn_hooks, rnn.module, lambda xb: _nnsight_rnn_saves(nn_rnn, xb)),
    )
    for which, m, hooks, _, _ in cases:
        x = _tokens(config.d_vocab, (3, min(8, tf.cfg.n_ctx)), config.seed)
        b.result.add_criterion(
            f"collect_equals_trace_{which}",
            _collect_trace_gap(m, hooks, x),
            "<=",
            1e-4,
            kind="sanity",
            description=f"max |collect - trace| over {len(hooks)} hooks (the timed path is right)",
        )
    for regime, (B, T), n_batches, rounds in _regimes(config):
        for which, m, hooks, bare, nn_saves in cases:
            vocab = tf.cfg.d_vocab if which == "transformer" else config.d_vocab
            x = _tokens(vocab, (B * n_batches, min(T, tf.cfg.n_ctx)), config.seed)
            variants = _collection_variants(which, regime, m, hooks, bare, nn_saves, x, B)
            with torch.no_grad():
                times = interleaved(variants, rounds)
            case = f"{which} {regime} {n_batches}x[{B}x{x.shape[1]}]"
            b.times("collection", case, times)
            _collection_targets(
                b, which, regime, f"{which}, {case}: collect {len(hooks)} hooks", times
            )
    bench_cuda_collect(b, config, tf, native, tf_hooks)


def _collection_variants(
    which: str, regime: str, m, hooks: list[str], bare, nn_saves, x, B: int
) -> dict[str, Callable[[], Any]]:
    """The timed variants of one (model, regime) case, each over the same batches of ``x``."""
    batches = list(x.split(B))
    names = set(hooks)
    variants: dict[str, Callable[[], Any]] = {
        "bare": lambda: [bare(xb) for xb in batches],
        "collect": lambda: interp.collect(m, x, hooks, batch_size=B),
        "tl_filtered": lambda: [
            m.module.run_with_cache(xb, names_filter=lambda n: n in names) for xb in batches
        ],
    }
    if regime == "overhead":  # all-hooks caching has a target only here; it is slow at 16x128
        variants["tl_all"] = lambda: [m.module.run_with_cache(xb) for xb in batches]
        if which == "transformer":
            variants["bridge"] = lambda: [m.module(xb) for xb in batches]
    variants["nnsight"] = lambda: [nn_saves(xb) for xb in batches]
    return variants


def _collection_targets(
    b: Bench, which: str, regime: str, what: str, times: dict[str, list[float]]
) -> None:
    """The metrics and targets of one (model, regime) case from its interleaved times."""
    vs_bare = paired_ratio(times, "collect", "bare")
    vs_filt = paired_ratio(times, "tl_filtered", "collect")
    for other in ("bridge", "nnsight"):
        if other in times:
            b.result.metrics[f"{which}_{regime}_{other}_over_bare"] = paired_ratio(
                times, other, "bare"
            )
    b.result.metrics[f"{which}_{regime}_nnsight_over_collect"] = paired_ratio(
        times, "nnsight", "collect"
    )
    if regime == "compute":
        b.target(
            f"collect_over_bare_{which}_compute",
            vs_bare,
            f"{what} / bare forward of the plain module (collect stops after its last hook; "
            "the bare forward runs on to the logits)",
        )
        b.target(
            f"collect_over_tl_filtered_{which}_compute",
            1.0 / vs_filt,
            f"{what} / TL run_with_cache(names_filter): no slower",
        )
        return
    b.target(
        f"collect_over_bare_{which}_overhead", vs_bare, f"{what} / bare forward of the plain module"
    )
    b.target(
        f"tl_filtered_over_collect_{which}_overhead",
        vs_filt,
        f"TL run_with_cache(names_filter) / {what}: speed-up",
    )
    b.target(
        f"tl_all_over_collect_{which}_overhead",
        paired_ratio(times, "tl_all", "collect"),
        f"TL run_with_cache(all hooks) / {what}: speed-up",
    )


# ----------------------------------------------------------------- Hugging Face collection
# GPT-2- and Llama-shaped (grouped-query, rotary): suffix of the target names
HF_COLLECT = ("gpt2", "llama")
HF_COLLECT_TARGETS = [  # (name, base target in TARGETS, regime)
    ("collect_over_bare_hf_{arch}_compute", "collect_over_bare_transformer_compute", "compute"),
    ("collect_over_bare_hf_{arch}_overhead", "collect_over_bare_transformer_overhead", "overhead"),
    (
        "tl_filtered_over_collect_hf_{arch}_overhead",
        "tl_filtered_over_collect_transformer_overhead",
        "overhead",
    ),
]


def bench_hf_collection(b: Bench, config: Config) -> None:
    """``collect`` of every block's ``resid_post`` on GPT-2- and Llama-shaped Hugging Face models
    of the bench's sizes (random weights, saved and loaded from a directory) vs a bare forward of
    the model body (``base_model``: the same work without the unembedding that collect skips), the
    bridge's ``run_with_cache(names_filter=...)`` and nnsight on the same plain tree."""
    root = Path(tempfile.mkdtemp(prefix="interp-bench-hf-"))
    try:
        for arch in HF_COLLECT:
            try:
                m = _hf_causal(config, arch, root / arch, config.n_ctx)
            except Exception as e:  # noqa: BLE001 - loading is another part's API; say what failed
                for name, _base, _ in HF_COLLECT_TARGETS:
                    b.not_measured(
                        name.format(arch=arch),
                        f"[{arch}-shaped]",
                        f"{type(e).__name__}: {str(e)[:200]}",
                    )
                continue
            _hf_collection_case(b, config, m, arch)
            del m
            gc.collect()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _hf_collection_case(b: Bench, config: Config, m, arch: str) -> None:
    """One Hugging Face model: collect == trace (sanity), both regimes timed, then the targets."""
    hooks = _resid_hooks(m)
    plain = adapters.plain_module(m)
    routes = adapters.hf_routes(m, plain)
    path = (
        "plain modules"
        if isinstance(make_runner(m, hooks, Reducer("all", None, None)), PlainRunner)
        else "bridge hooks"
    )
    b.result.metrics[f"hf_{arch}_collect_path"] = path
    b.result.metrics[f"hf_{arch}_routed_hooks"] = [len(routes), len(m.hook_names)]
    x = _tokens(m.cfg.d_vocab, (3, min(8, m.cfg.n_ctx)), config.seed)
    b.result.add_criterion(
        f"collect_equals_trace_hf_{arch}",
        _collect_trace_gap(m, hooks, x),
        "<=",
        1e-5,
        kind="sanity",
        description=f"max |collect - trace| over {len(hooks)} resid_post hooks on the "
        f"{arch}-shaped model (collect took the {path} path)",
    )
    nn_model = NNsight(plain)
    envoys = [(_envoy(nn_model, routes[h].path), routes[h].index) for h in hooks if h in routes]
    values: dict[str, float] = {}
    for regime, (B, T), n_batches, rounds in _regimes(config):
        xs = _tokens(m.cfg.d_vocab, (B * n_batches, min(T, m.cfg.n_ctx)), config.seed)
        variants = _hf_variants(m, hooks, plain.base_model, nn_model, envoys, xs, B)
        with torch.no_grad():
            times = interleaved(variants, rounds)
        b.times("hf_collection", f"hf {arch} {regime} {n_batches}x[{B}x{xs.shape[1]}]", times)
        for name, (a, ref) in {
            f"collect_over_bare_hf_{arch}_{regime}": ("collect", "bare_body"),
            f"tl_filtered_over_collect_hf_{arch}_{regime}": ("tl_filtered", "collect"),
        }.items():
            values[name] = paired_ratio(times, a, ref)
        if "nnsight" in times:
            b.result.metrics[f"hf_{arch}_{regime}_nnsight_over_collect"] = paired_ratio(
                times, "nnsight", "collect"
            )
        b.result.metrics[f"hf_{arch}_{regime}_tl_filtered_over_collect"] = values[
            f"tl_filtered_over_collect_hf_{arch}_{regime}"
        ]
        b.result.metrics[f"hf_{arch}_{regime}_collect_over_bare"] = values[
            f"collect_over_bare_hf_{arch}_{regime}"
        ]
    shape = (
        f"{arch}-shaped, {m.n_layers} layers, d {m.cfg.d_model}; "
        f"collect {len(hooks)} resid_post ({path})"
    )
    _hf_collection_targets(b, arch, shape, values)


def _hf_variants(
    m, hooks: list[str], body, nn_model, envoys: list, xs, B: int
) -> dict[str, Callable[[], Any]]:
    """The timed variants of one Hugging Face case: the model body's bare forward (the work of
    collect without the unembedding it skips), collect, the bridge's filtered run_with_cache and,
    when every hook has a plain-module route, nnsight saves of the same outputs."""
    batches = list(xs.split(B))
    names = set(hooks)
    variants: dict[str, Callable[[], Any]] = {
        "bare_body": lambda: [body(xb, use_cache=False) for xb in batches],
        "collect": lambda: interp.collect(m, xs, hooks, batch_size=B),
        "tl_filtered": lambda: [
            m.module.run_with_cache(xb, names_filter=lambda n: n in names) for xb in batches
        ],
    }
    if len(envoys) == len(hooks):
        variants["nnsight"] = lambda: [_nnsight_saves(nn_model, envoys, xb) for xb in batches]
    return variants


def _hf_collection_targets(b: Bench, arch: str, shape: str, values: dict[str, float]) -> None:
    for name, base, regime in HF_COLLECT_TARGETS:
        op, threshold = TARGETS[base]
        name = name.format(arch=arch)
        what = (
            "collect / bare forward of the body"
            if name.startswith("collect")
            else "TL run_with_cache(names_filter) / collect: speed-up"
        )
        b.target(
            name, values[name], f"{what} ({regime} batch; {shape})", op=op, threshold=threshold
        )


def _envoy(nn_model, path: str):
    """The nnsight envoy of the submodule at ``path`` ("model.layers.3")."""
    env = nn_model
    for part in path.split("."):
        env = env[int(part)] if part.isdigit() else getattr(env, part)
    return env


def _nnsight_saves(nn_model, envoys, xb) -> list:
    saved = []
    with nn_model.trace(xb, use_cache=False):
        for env, index in envoys:  # in execution order
            saved.append((env.output[index] if index is not None else env.output).save())
    return saved


def bench_cuda_collect(b: Bench, config: Config, tf, native, hooks: list[str]) -> None:
    """``collect`` on CUDA into host memory (pinned double buffers, copies on a side stream) vs a
    bare forward of the same module on the GPU, both ending in a synchronise; the compute-bound
    batch."""
    name = "cuda_collect_to_host_over_bare"
    desc = (
        "collect to host memory on CUDA (pinned double buffers, side-stream copies) / bare forward"
    )
    if not torch.cuda.is_available():
        b.not_measured(name, desc, "no CUDA device here (scripts/gpu_check.sh measures it on one)")
        return
    B, T = config.compute_batch
    x = _tokens(
        tf.cfg.d_vocab, (B * max(4, config.compute_batches), min(T, tf.cfg.n_ctx)), config.seed
    )
    tf.to("cuda")
    try:
        xg = x.cuda()
        batches = list(xg.split(B))

        def bare():
            with torch.no_grad():
                for xb in batches:
                    native(xb)
            torch.cuda.synchronize()

        def collect():
            interp.collect(tf, x, hooks, batch_size=B, device="cuda")
            torch.cuda.synchronize()

        times = interleaved({"bare": bare, "collect": collect}, config.repeats)
    finally:
        tf.to("cpu")
    b.times(
        "cuda",
        f"transformer [{B}x{x.shape[1]}] x {len(batches)} batches, {len(hooks)} hooks",
        times,
    )
    b.target(
        name, paired_ratio(times, "collect", "bare"), desc + f" ({torch.cuda.get_device_name(0)})"
    )


def _nnsight_tf_saves(nn_model, xb, n_layers: int) -> list:
    saved = []
    with nn_model.trace(xb):
        for layer in range(n_layers):  # in execution order: hook_z (input of o), then resid_post
            saved.append(nn_model.layers[layer].attn.o.input.save())
            saved.append(nn_model.layers[layer].output[0].save())
    return saved


def _nnsight_rnn_saves(nn_model, xb) -> Any:
    with nn_model.trace(xb):
        h = nn_model.rnn.output.save()  # the stacked hidden states, as rnn.hook_h
    return h


# ----------------------------------------------------------------- memory
def bench_memory(b: Bench, config: Config) -> None:
    B, T = config.compute_batch
    spec = {"config": config.model_dump(mode="json"), "n": config.memory_items, "B": B, "T": T}
    code = f"from interp.bench import memory_probe; memory_probe({json.dumps(json.dumps(spec))})"
    # glibc returns blocks above the mmap threshold to the system when freed: resident
    # memory then follows live memory instead of the allocator's high-water mark
    env = {
        **os.environ,
        "INTERP_QUIET": "1",
        "MALLOC_MMAP_THRESHOLD_": "65536",
        "MALLOC_TRIM_THRESHOLD_": "0",
    }
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=600, env=env
    )
    if out.returncode != 0:
        b.not_measured(
            "memory_held_over_selected_bytes",
            "peak memory held while collecting / bytes of the selected activations",
            f"probe failed: {out.stderr.strip()[-300:]}",
        )
        return
    got = json.loads(out.stdout.strip().splitlines()[-1])
    b.result.metrics["memory"] = got
    b.rows.append(
        {
            "item": "memory",
            "case": f"{config.memory_items}x{T} tokens",
            "variant": "selected MiB",
            "median_ms": got["selected_bytes"] / 2**20,
        }
    )
    b.target(
        "memory_held_over_selected_bytes",
        got["held_bytes"] / got["selected_bytes"],
        "(rise of peak RSS while collecting - rise while running the same bare forward loop) / "
        f"bytes of {got['hooks']} hooks "
        f"({got['selected_bytes'] / 2**20:.0f} MiB); fresh subprocess, glibc mmap threshold 64 KiB",
    )


def memory_probe(spec_json: str) -> None:
    """Run in a fresh process: print peak-RSS figures of a bare loop, then of ``collect``."""

    spec = json.loads(spec_json)
    cfg = Config(**spec["config"])
    tf, _ = _models(cfg)
    x = _tokens(tf.cfg.d_vocab, (spec["n"], min(spec["T"], tf.cfg.n_ctx)), cfg.seed)
    hooks = _resid_hooks(tf)
    native = adapters.plain_module(tf)

    def reset_peak() -> int:
        """Linux: clear the peak resident set (VmHWM); return resident bytes now."""
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _status_kib("VmRSS") * 1024

    with torch.no_grad():
        interp.collect(tf, x[:1], hooks, positions="last")  # warm the code paths; holds ~nothing
        for xb in x.split(spec["B"]):
            native(xb)
        gc.collect()
        start = reset_peak()
        for xb in x.split(spec["B"]):
            native(xb)
        bare_rise = _status_kib("VmHWM") * 1024 - start
        gc.collect()
        start = reset_peak()
        store = interp.collect(tf, x, hooks, batch_size=spec["B"])
        collect_rise = _status_kib("VmHWM") * 1024 - start
    selected = sum(store[h].numel() * store[h].element_size() for h in hooks)
    print(
        json.dumps(
            {
                "bare_peak_rise": bare_rise,
                "collect_peak_rise": collect_rise,
                "held_bytes": collect_rise - bare_rise,
                "selected_bytes": selected,
                "hooks": len(hooks),
            }
        )
    )


def _status_kib(field: str) -> int:
    """A ``/proc/self/status`` figure in KiB (VmRSS: resident now; VmHWM: peak since reset)."""
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


# ----------------------------------------------------------------- early stop
def bench_early_stop(b: Bench, config: Config, tf) -> None:
    native = adapters.plain_module(tf)
    B, T = config.compute_batch
    x = _tokens(tf.cfg.d_vocab, (B * config.compute_batches, min(T, tf.cfg.n_ctx)), config.seed)
    L = tf.n_layers
    layers = sorted({0, L // 2 - 1} - {-1})
    upto = {layer: tf.hook("resid_post", layer) for layer in layers}
    variants: dict[str, Callable] = {"full": lambda: [native(xb) for xb in x.split(B)]}
    for layer in layers:
        variants[f"upto_{layer}"] = lambda hook=upto[layer]: interp.collect(
            tf, x, [hook], batch_size=B
        )
    with torch.no_grad():
        times = interleaved(variants, config.repeats)
    b.times("early_stop", f"{len(x)}x{x.shape[1]}", times)
    for layer in layers:
        b.target(
            f"early_stop_layer{layer}_over_full",
            paired_ratio(times, f"upto_{layer}", "full"),
            f"collect {upto[layer]} / full bare forward ({L} layers; target (l+1)/L + 0.05)",
            op="<=",
            threshold=(layer + 1) / L + 0.05,
        )


# ----------------------------------------------------------------- disk
def bench_disk(b: Bench, config: Config, tf) -> None:
    B, T = config.compute_batch
    x = _tokens(tf.cfg.d_vocab, (config.memory_items, min(T, tf.cfg.n_ctx)), config.seed)
    hooks = _resid_hooks(tf)
    root = Path(tempfile.mkdtemp(prefix="interp-bench-disk-"))
    shard = max(1, config.memory_items // 4)
    count = iter(range(10**6))
    try:

        def to_disk():
            out = root / f"s{next(count)}"
            interp.collect(tf, x, hooks, batch_size=B, out=out, shard_size=shard)
            shutil.rmtree(out)

        with torch.no_grad():
            times = interleaved(
                {"memory": lambda: interp.collect(tf, x, hooks, batch_size=B), "disk": to_disk},
                config.repeats,
            )
        with torch.no_grad():
            mem = interp.collect(tf, x, hooks, batch_size=B)
            interp.collect(tf, x, hooks, batch_size=B, out=root / "check", shard_size=shard)
            gap = max(
                float((mem[h] - interp.ActivationStore.open(root / "check")[h]).abs().max())
                for h in hooks
            )
        b.result.add_criterion(
            "disk_store_equals_memory",
            gap,
            "==",
            0.0,
            kind="sanity",
            description="max |store on disk (reopened, checksums verified) - in memory|",
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    b.times("disk", f"{len(x)}x{x.shape[1]}, {len(hooks)} hooks, shards of {shard}", times)
    b.target(
        "disk_rate_over_memory_rate",
        paired_ratio(times, "memory", "disk"),
        "items/s collecting to a sharded store on disk / items/s in memory",
    )


# ----------------------------------------------------------------- feature pages
def bench_features(b: Bench, config: Config, tf) -> None:
    """The feature-page pass (:func:`interp.sae.features.feature_pages`) over a sharded store on
    disk vs one plain read of the same store that encodes every batch with the SAE and keeps
    nothing.

    The plain read with the encode is the floor of any feature pass (every token read and encoded
    once); the target bounds what the pass adds on top (densities, histograms, top-k buffers and
    windows, logit effects) at 3x: that bookkeeping is O(tokens x d_sae) against the encode's
    O(tokens x d_in x d_sae). The ratio to a read alone (no encode) is reported as a metric."""
    B, T = config.compute_batch
    root = Path(tempfile.mkdtemp(prefix="interp-bench-features-"))
    try:
        # enough batches that the pass runs in its steady state (few new top-k candidates per batch)
        hook, store = resid_store(config, tf, root, config.feature_items)
        n, T = len(store), store[hook].shape[1]
        sae = SAE(SAEConfig(d_in=tf.cfg.d_model, d_sae=4 * tf.cfg.d_model, init_seed=config.seed))
        # each latent's bias at its 98th percentile: ~2% density, like a trained SAE
        with torch.no_grad():
            first = next(store.iter_shards(hook))[2].reshape(-1, tf.cfg.d_model)  # [items*T, d]
            sae.b_enc.copy_(-sae.pre_acts(first).quantile(0.98, dim=0))

        def read(encode: bool) -> None:
            with torch.no_grad():
                for _, _, shard in interp.ActivationStore.open(root / "s").iter_shards(hook):
                    for a in range(0, len(shard), B):  # the pass's batches, [B, T, d_model]
                        xb = shard[a : a + B].to(sae.W_dec.dtype)
                        (sae.encode(xb) if encode else xb).sum()

        def pages():
            return feature_pages(
                sae, interp.ActivationStore.open(root / "s"), hook, model=tf, batch_size=B
            )

        times = interleaved(
            {"read": lambda: read(False), "read_encode": lambda: read(True), "pages": pages},
            config.repeats,
        )
        got = pages()
        want = dense_density(sae, torch.cat([t for _, _, t in store.iter_shards(hook)]))
        b.result.metrics["features_density_gap"] = float(abs(got.density - want).max())
        b.result.metrics["features_mean_density"] = float(got.density.mean())
    finally:
        shutil.rmtree(root, ignore_errors=True)
    case = f"{n}x{T} tokens, d_sae {sae.cfg.d_sae}, 4 shards"
    b.times("features", case, times)
    b.result.metrics["features_pass_over_plain_read"] = paired_ratio(times, "pages", "read")
    b.target(
        "features_pass_over_read_and_encode",
        paired_ratio(times, "pages", "read_encode"),
        f"feature pages (density, log10 histogram, top-10 contexts, logit effects), {case} / one "
        "plain read of the store that encodes each batch with the SAE (the floor of any feature "
        "pass)",
    )
