"""Performance benchmark: every target of ../shared/PERFORMANCE.md, measured as a ratio.

Each item times variants side by side in this one process, interleaved (A B A B ...,
``repeats`` rounds after a warm-up round), and reports the median of the per-round
ratios (paired rounds cancel most of the drift of a shared, noisy machine) next to the
median times. Every target becomes a ``claim`` criterion whose value is the measured
ratio and whose threshold is the target; a target that cannot be measured here (no
CUDA device, a module that does not exist) is listed with value ``None`` and the reason
in its description, so metrics.json always names every target. ``metrics["table"]``
holds the rows that the log prints.

Items (``only`` selects some; ``interp bench NAME`` runs one):

- ``collection``: ``collect`` of chosen hooks vs a bare forward of the same plain
  module, vs TransformerLens ``run_with_cache`` (``names_filter`` and all hooks), vs
  nnsight saves; compute-bound and overhead-bound batches; a transformer and an RNN.
- ``memory``: peak memory held while collecting vs the bytes of the selected
  activations (peak RSS in a fresh subprocess, less the same forward loop's peak).
- ``early_stop``: capturing up to layer ``l`` vs a full forward.
- ``disk``: collection to a sharded store on disk vs in memory.
- ``sae``: SAE training from a stored activation set vs from tensors in memory.
- ``fixed_points``, ``knockout``, ``attribution``: the targets of modules other parts of
  interp provide (measured when they exist).
- ``import``: ``interp --help`` wall time (median of fresh subprocesses).
"""

from __future__ import annotations

import gc
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Literal, Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from interp.analyses import register
from interp.results import Result

log = logging.getLogger(__name__)

# Every fixed target of PERFORMANCE.md: criterion name -> (op, threshold). Early stop adds
# ``early_stop_layer{l}_over_full`` (<= (l+1)/L + 0.05) per measured layer.
TARGETS: dict[str, tuple[str, float]] = {
    "collect_over_bare_transformer_compute": ("<=", 1.05),
    "collect_over_tl_filtered_transformer_compute": ("<=", 1.0),
    "collect_over_bare_rnn_compute": ("<=", 1.05),
    "collect_over_tl_filtered_rnn_compute": ("<=", 1.0),
    "collect_over_bare_transformer_overhead": ("<=", 1.10),
    "tl_filtered_over_collect_transformer_overhead": (">=", 1.5),
    "tl_all_over_collect_transformer_overhead": (">=", 2.0),
    "collect_over_bare_rnn_overhead": ("<=", 1.10),
    "tl_filtered_over_collect_rnn_overhead": (">=", 1.5),
    "tl_all_over_collect_rnn_overhead": (">=", 2.0),
    "cuda_collect_to_host_over_bare": ("<=", 1.10),
    "memory_held_over_selected_bytes": ("<=", 1.05),
    "disk_rate_over_memory_rate": (">=", 0.8),
    "sae_store_rate_over_memory_rate": (">=", 0.8),
    "fixed_point_iteration_over_fwd_bwd": ("<=", 1.1),
    "fixed_point_iterations_per_host_sync": (">=", 50.0),
    "jacobian_batched_speedup": (">=", 50.0),
    "eigvals_speedup_over_numpy": (">=", 2.0),
    "knockout_sweep_over_clean_forward": ("<=", 2.0),
    "knockout_speedup_over_full_recompute": (">=", 10.0),
    "knockout_max_abs_logit_error": ("<=", 1e-5),
    "attribution_patching_over_forward": ("<=", 4.5),
    "import_seconds_interp_help": ("<", 1.0),
}

ITEMS = ("collection", "memory", "early_stop", "disk", "sae", "fixed_points", "knockout", "attribution", "import")


class Config(BaseModel):
    """What to measure and at which sizes (quick: minutes on a shared CPU)."""

    model_config = ConfigDict(extra="forbid")

    model: str = "spec"  # "spec": untrained models built from the sizes below; or a zoo name / directory
    n_layers: int = 4  # the transformer (PERFORMANCE.md: 4 layers, d_model 256)
    d_model: int = 256
    n_heads: int = 4
    n_ctx: int = 128
    d_vocab: int = 512
    rnn_cell: Literal["tanh", "relu", "gru", "lstm"] = "gru"  # the RNN (fixed points: GRU, 128 units)
    rnn_hidden: int = 128
    only: list[str] = Field(default_factory=list)  # items to run (empty: all); see ITEMS
    repeats: int = 5  # interleaved timing rounds after one warm-up round
    overhead_repeats: int = 11  # rounds at the overhead-bound batch (short calls: more rounds, steadier medians)
    compute_batch: tuple[int, int] = (16, 128)  # [batch, pos]: compute-bound
    overhead_batch: tuple[int, int] = (1, 8)  # [batch, pos]: overhead-bound (like a fast GPU)
    compute_batches: int = 2  # batches per timed call, compute-bound
    overhead_batches: int = 32  # batches per timed call, overhead-bound
    memory_items: int = 128  # sequences of compute_batch's length for memory / disk / early stop
    sae_steps: int = 100
    sae_batch: int = 1024
    fp_states: int = 256  # fixed-point finder: initial states of the RNN cell
    fp_iters: int = 100
    import_runs: int = 5
    seed: int = 0


# ----------------------------------------------------------------- timing
def interleaved(variants: dict[str, Callable[[], Any]], repeats: int, warmup: int = 1) -> dict[str, list[float]]:
    """Seconds per call of each variant, rounds interleaved: A B C, A B C, ..."""
    for _ in range(warmup):
        for fn in variants.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            gc.collect()
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def paired_ratio(times: dict[str, list[float]], a: str, b: str) -> float:
    """Median over rounds of ``time(a) / time(b)`` (same round: same machine load)."""
    return float(statistics.median(x / y for x, y in zip(times[a], times[b])))


class Bench:
    """Collects rows (printed table) and criteria (metrics.json) of one benchmark run."""

    def __init__(self, result: Result):
        self.result = result
        self.rows: list[dict] = []

    def times(self, item: str, label: str, times: dict[str, list[float]]) -> None:
        for name, ts in times.items():
            self.rows.append({"item": item, "case": label, "variant": name, "median_ms": 1e3 * statistics.median(ts)})

    def target(self, name: str, value: Optional[float], description: str, *, op: Optional[str] = None,
               threshold: Optional[float] = None) -> None:
        """Record ``value`` against the target ``name`` (op and threshold from :data:`TARGETS`)."""
        if op is None or threshold is None:
            op, threshold = TARGETS[name]
        self.result.add_criterion(name, value, op, threshold, kind="claim", description=description)
        shown = "not measured" if value is None else f"{value:.3f}"
        log.info("%-48s %12s %2s %-8.3g %s", name, shown, op, threshold, description[:90])

    def not_measured(self, name: str, description: str, why: str) -> None:
        self.target(name, None, f"{description} [not measured: {why}]")


# ----------------------------------------------------------------- models
def _models(config: Config):
    """(transformer Model, rnn Model) for the benchmark."""
    import torch

    import interp
    from interp.models.rnn import HookedRNN, RNNSpec
    from interp.models.transformer import TransformerSpec, build_transformer
    from interp.tracing.model import Model

    if config.model != "spec":
        tf = interp.load_model(config.model, device="cpu")
    else:
        spec = TransformerSpec(n_layers=config.n_layers, d_model=config.d_model, n_heads=config.n_heads,
                               n_ctx=config.n_ctx, d_vocab=config.d_vocab, init_seed=config.seed)
        tf = Model(build_transformer(spec), backend="tl", kind="transformer", model_id="bench-transformer",
                   spec={"builder": "transformer", "spec": spec.model_dump(mode="json")})
    rnn_spec = RNNSpec(cell=config.rnn_cell, d_hidden=config.rnn_hidden, d_vocab=config.d_vocab, init_seed=config.seed)
    rnn = interp.wrap(HookedRNN(rnn_spec), model_id="bench-rnn")
    for m in (tf, rnn):
        m.module.eval()
    torch.manual_seed(config.seed)
    return tf, rnn


def _tokens(vocab: int, shape: tuple[int, ...], seed: int):
    import torch

    return torch.randint(0, vocab, shape, generator=torch.Generator().manual_seed(seed))


def _tf_hooks(m) -> list[str]:
    """The benchmark's chosen hooks: resid_post and hook_z of every layer."""
    return [f"blocks.{l}.{h}" for l in range(m.n_layers) for h in ("attn.hook_z", "hook_resid_post")]


# ----------------------------------------------------------------- collection
def bench_collection(b: Bench, config: Config, tf, rnn) -> None:
    import torch

    import interp
    from interp.tracing.adapters import plain_module

    native = plain_module(tf)
    tf_hooks = _tf_hooks(tf)
    nn_tf = _nnsight(native)
    nn_rnn = _nnsight(rnn.module)
    for which, m, hooks in (("transformer", tf, tf_hooks), ("rnn", rnn, ["rnn.hook_h"])):
        x = _tokens(config.d_vocab, (3, min(8, tf.cfg.n_ctx)), config.seed)
        got = interp.collect(m, x, hooks, batch_size=2)
        _, want = interp.trace(m, x, capture=hooks)
        gap = max(float((got[h] - want[h]).abs().max()) for h in hooks)
        b.result.add_criterion(f"collect_equals_trace_{which}", gap, "<=", 1e-4, kind="sanity",
                               description=f"max |collect - trace| over {len(hooks)} hooks (the timed path is right)")
    for regime, (B, T), n_batches, rounds in (
            ("compute", config.compute_batch, config.compute_batches, config.repeats),
            ("overhead", config.overhead_batch, config.overhead_batches, config.overhead_repeats)):
        for which, m, hooks in (("transformer", tf, tf_hooks), ("rnn", rnn, ["rnn.hook_h"])):
            vocab = tf.cfg.d_vocab if which == "transformer" else config.d_vocab
            x = _tokens(vocab, (B * n_batches, min(T, tf.cfg.n_ctx)), config.seed)
            batches = list(x.split(B))
            names = set(hooks)
            bare = native if which == "transformer" else m.module
            variants = {
                "bare": lambda bare=bare: [bare(xb) for xb in batches],
                "collect": lambda m=m, hooks=hooks: interp.collect(m, x, hooks, batch_size=B),
                "tl_filtered": lambda m=m: [m.module.run_with_cache(xb, names_filter=lambda n: n in names)
                                            for xb in batches],
            }
            if regime == "overhead":  # all-hooks caching has a target only here; it is slow at 16x128
                variants["tl_all"] = lambda m=m: [m.module.run_with_cache(xb) for xb in batches]
            if which == "transformer":
                if regime == "overhead":
                    variants["bridge"] = lambda: [tf.module(xb) for xb in batches]
                variants["nnsight"] = lambda: [_nnsight_tf_saves(nn_tf, xb, tf.n_layers) for xb in batches]
            else:
                variants["nnsight"] = lambda: [_nnsight_rnn_saves(nn_rnn, xb) for xb in batches]
            with torch.no_grad():
                times = interleaved(variants, rounds)
            case = f"{which} {regime} {n_batches}x[{B}x{x.shape[1]}]"
            b.times("collection", case, times)
            vs_bare = paired_ratio(times, "collect", "bare")
            vs_filt = paired_ratio(times, "tl_filtered", "collect")
            for other in ("bridge", "nnsight"):
                if other in times:
                    b.result.metrics[f"{which}_{regime}_{other}_over_bare"] = paired_ratio(times, other, "bare")
            b.result.metrics[f"{which}_{regime}_nnsight_over_collect"] = paired_ratio(times, "nnsight", "collect")
            what = f"{which}, {case}: collect {len(hooks)} hooks"
            if regime == "compute":
                b.target(f"collect_over_bare_{which}_compute", vs_bare,
                         f"{what} / bare forward of the plain module (collect stops after its last hook; the "
                         "bare forward runs on to the logits)")
                b.target(f"collect_over_tl_filtered_{which}_compute", 1.0 / vs_filt,
                         f"{what} / TL run_with_cache(names_filter): no slower")
            else:
                b.target(f"collect_over_bare_{which}_overhead", vs_bare,
                         f"{what} / bare forward of the plain module")
                b.target(f"tl_filtered_over_collect_{which}_overhead", vs_filt,
                         f"TL run_with_cache(names_filter) / {what}: speed-up")
                b.target(f"tl_all_over_collect_{which}_overhead", paired_ratio(times, "tl_all", "collect"),
                         f"TL run_with_cache(all hooks) / {what}: speed-up")
    b.not_measured("cuda_collect_to_host_over_bare",
                   "collect to host memory on CUDA (pinned double buffers, side-stream copies) / bare forward",
                   "no CUDA device here; tests/tracing/test_collect.py::test_cuda_pipeline_equals_cpu checks it on one")


def _nnsight(module):
    from nnsight import NNsight

    return NNsight(module)


def _nnsight_tf_saves(nn_model, xb, n_layers: int) -> list:
    saved = []
    with nn_model.trace(xb):
        for l in range(n_layers):  # in execution order: hook_z (input of o), then resid_post
            saved.append(nn_model.layers[l].attn.o.input.save())
            saved.append(nn_model.layers[l].output[0].save())
    return saved


def _nnsight_rnn_saves(nn_model, xb) -> Any:
    with nn_model.trace(xb):
        h = nn_model.rnn.output.save()  # the stacked hidden states, as rnn.hook_h
    return h


# ----------------------------------------------------------------- memory
def bench_memory(b: Bench, config: Config) -> None:
    B, T = config.compute_batch
    spec = {"config": config.model_dump(mode="json"), "n": config.memory_items, "B": B, "T": T}
    code = f"from interp.analyses.bench import memory_probe; memory_probe({json.dumps(json.dumps(spec))})"
    # glibc returns blocks above the mmap threshold to the system when freed: resident
    # memory then follows live memory instead of the allocator's high-water mark
    env = {**os.environ, "INTERP_QUIET": "1", "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, env=env)
    if out.returncode != 0:
        b.not_measured("memory_held_over_selected_bytes", "peak memory held while collecting / "
                       "bytes of the selected activations", f"probe failed: {out.stderr.strip()[-300:]}")
        return
    got = json.loads(out.stdout.strip().splitlines()[-1])
    b.result.metrics["memory"] = got
    b.rows.append({"item": "memory", "case": f"{config.memory_items}x{T} tokens", "variant": "selected MiB",
                   "median_ms": got["selected_bytes"] / 2**20})
    b.target("memory_held_over_selected_bytes", got["held_bytes"] / got["selected_bytes"],
             f"(rise of peak RSS while collecting - rise while running the same bare forward loop) / bytes of "
             f"{got['hooks']} hooks "
             f"({got['selected_bytes'] / 2**20:.0f} MiB); fresh subprocess, glibc mmap threshold 64 KiB")


def memory_probe(spec_json: str) -> None:
    """Run in a fresh process: print peak-RSS figures of a bare loop, then of ``collect``."""

    import torch

    import interp
    from interp.tracing.adapters import plain_module

    spec = json.loads(spec_json)
    cfg = Config(**spec["config"])
    tf, _ = _models(cfg)
    x = _tokens(tf.cfg.d_vocab, (spec["n"], min(spec["T"], tf.cfg.n_ctx)), cfg.seed)
    hooks = [f"blocks.{l}.hook_resid_post" for l in range(tf.n_layers)]
    native = plain_module(tf)

    def reset_peak() -> int:  # Linux: clear the peak resident set (VmHWM); return resident bytes now
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
    print(json.dumps({"bare_peak_rise": bare_rise, "collect_peak_rise": collect_rise,
                      "held_bytes": collect_rise - bare_rise, "selected_bytes": selected, "hooks": len(hooks)}))


def _status_kib(field: str) -> int:
    """A ``/proc/self/status`` figure in KiB (VmRSS: resident now; VmHWM: peak since reset)."""
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


# ----------------------------------------------------------------- early stop
def bench_early_stop(b: Bench, config: Config, tf) -> None:
    import torch

    import interp
    from interp.tracing.adapters import plain_module

    native = plain_module(tf)
    B, T = config.compute_batch
    x = _tokens(tf.cfg.d_vocab, (B * config.compute_batches, min(T, tf.cfg.n_ctx)), config.seed)
    L = tf.n_layers
    layers = sorted({0, L // 2 - 1} - {-1})
    variants: dict[str, Callable] = {"full": lambda: [native(xb) for xb in x.split(B)]}
    for l in layers:
        variants[f"upto_{l}"] = lambda l=l: interp.collect(tf, x, [f"blocks.{l}.hook_resid_post"], batch_size=B)
    with torch.no_grad():
        times = interleaved(variants, config.repeats)
    b.times("early_stop", f"{len(x)}x{x.shape[1]}", times)
    for l in layers:
        b.target(f"early_stop_layer{l}_over_full", paired_ratio(times, f"upto_{l}", "full"),
                 f"collect blocks.{l}.hook_resid_post / full bare forward ({L} layers; target (l+1)/L + 0.05)",
                 op="<=", threshold=(l + 1) / L + 0.05)


# ----------------------------------------------------------------- disk
def bench_disk(b: Bench, config: Config, tf) -> None:
    import torch

    import interp

    B, T = config.compute_batch
    x = _tokens(tf.cfg.d_vocab, (config.memory_items, min(T, tf.cfg.n_ctx)), config.seed)
    hooks = [f"blocks.{l}.hook_resid_post" for l in range(tf.n_layers)]
    root = Path(tempfile.mkdtemp(prefix="interp-bench-disk-"))
    shard = max(1, config.memory_items // 4)
    count = iter(range(10**6))
    try:
        def to_disk():
            out = root / f"s{next(count)}"
            interp.collect(tf, x, hooks, batch_size=B, out=out, shard_size=shard)
            shutil.rmtree(out)

        with torch.no_grad():
            times = interleaved({"memory": lambda: interp.collect(tf, x, hooks, batch_size=B), "disk": to_disk},
                                config.repeats)
        with torch.no_grad():
            mem = interp.collect(tf, x, hooks, batch_size=B)
            interp.collect(tf, x, hooks, batch_size=B, out=root / "check", shard_size=shard)
            gap = max(float((mem[h] - interp.ActivationStore.open(root / "check")[h]).abs().max()) for h in hooks)
        b.result.add_criterion("disk_store_equals_memory", gap, "==", 0.0, kind="sanity",
                               description="max |store on disk (reopened, checksums verified) - in memory|")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    b.times("disk", f"{len(x)}x{x.shape[1]}, {len(hooks)} hooks, shards of {shard}", times)
    b.target("disk_rate_over_memory_rate", paired_ratio(times, "memory", "disk"),
             "items/s collecting to a sharded store on disk / items/s in memory")


# ----------------------------------------------------------------- SAE
def bench_sae(b: Bench, config: Config, tf) -> None:
    import torch

    import interp

    name = "sae_store_rate_over_memory_rate"
    desc = "SAE training steps/s reading a stored activation set from disk / on tensors already in memory"
    from interp.sae.model import SAEConfig
    from interp.sae.train import SAETrainConfig, train_sae

    B, T = config.compute_batch
    hook = f"blocks.{tf.n_layers - 1}.hook_resid_post"
    x = _tokens(tf.cfg.d_vocab, (max(1, config.memory_items // 2), min(T, tf.cfg.n_ctx)), config.seed)
    root = Path(tempfile.mkdtemp(prefix="interp-bench-sae-"))
    try:
        with torch.no_grad():
            store = interp.collect(tf, x, [hook], batch_size=B, out=root / "s", shard_size=max(1, len(x) // 4))
            mem = store[hook].clone()
        sae_cfg = SAEConfig(d_in=tf.cfg.d_model, d_sae=4 * tf.cfg.d_model, init_seed=config.seed)
        tc = SAETrainConfig(steps=config.sae_steps, batch_size=config.sae_batch, resample_every=0,
                            log_every=10**9, seed=config.seed)

        def from_store():
            train_sae(interp.ActivationStore.open(root / "s"), sae_cfg, tc, hook=hook)

        times = interleaved({"memory": lambda: train_sae(mem, sae_cfg, tc), "store": from_store}, config.repeats)
    except Exception as e:  # noqa: BLE001 - another part's API may change under us; say so
        b.not_measured(name, desc, f"{type(e).__name__}: {e}")
        return
    finally:
        shutil.rmtree(root, ignore_errors=True)
    b.times("sae", f"{config.sae_steps} steps x {config.sae_batch} rows (interp.sae.train_sae)", times)
    b.target(name, paired_ratio(times, "memory", "store"),
             desc + " (interp.sae.train_sae; the store opened with checksum verification)")


# ----------------------------------------------------------------- fixed points
def bench_fixed_points(b: Bench, config: Config, rnn) -> None:
    import torch

    targets = [("fixed_point_iteration_over_fwd_bwd", "one finder iteration / one batched forward+backward of "
                "the cell"),
               ("fixed_point_iterations_per_host_sync", "finder iterations per host sync"),
               ("jacobian_batched_speedup", "per-point Jacobian loop / batched Jacobians"),
               ("eigvals_speedup_over_numpy", "numpy eig / the finder's eigenvalue step")]
    from interp.analyses import fixed_points as fp

    cell = rnn.module.rnn
    H = cell.W_hh.shape[1]
    g = torch.Generator().manual_seed(config.seed)
    h0 = torch.randn(config.fp_states, H, generator=g) * 0.5
    x_in = torch.zeros(cell.W_ih.shape[1])

    def F(h, x):
        xw = (x @ cell.W_ih.T + (cell.b_ih if cell.b_ih is not None else 0)).expand(h.shape[0], -1)
        return cell.step(x.expand(h.shape[0], -1), h, None, xw)[0]

    for p in cell.parameters():
        p.requires_grad_(False)
    n_it = config.fp_iters

    def finder(iters: int = n_it):
        return fp.find_fixed_points(F, h0, x_in, max_iters=iters, fixed_tol=0.0, slow_tol=float("inf"),
                                    newton_steps=0, compute_jacobians=False, lr=1e-3)

    def fwd_bwd():
        h = h0.clone().requires_grad_(True)
        opt = torch.optim.Adam([h], lr=1e-3)
        for _ in range(n_it):
            opt.zero_grad(set_to_none=True)
            fp.speed(F, h, x_in).sum().backward()
            opt.step()
        return h

    try:
        times = interleaved({"finder": finder, "adam_fwd_bwd": fwd_bwd}, config.repeats)
        b.times("fixed_points", f"{config.fp_states} states x {n_it} iterations, GRU {H}", times)
        b.target(targets[0][0], paired_ratio(times, "finder", "adam_fwd_bwd"),
                 targets[0][1] + " (Adam step included in both; finder also dedups and labels)")
        # syncs per iteration: the difference between runs of n and 2n iterations
        # (the bookkeeping after the loop is the same in both)
        (s1, it1), (s2, it2) = (_count_host_syncs(lambda k=k: finder(k)) for k in (n_it, 2 * n_it))
        per_sync = (it2 - it1) / max(s2 - s1, 1)
        b.target(targets[1][0], per_sync,
                 f"{targets[1][1]}: {s2 - s1} more syncs (item/tolist/bool/float/int/cpu/numpy outside torch.optim) "
                 f"in {it2 - it1} more iterations")
        pts = h0[: min(32, len(h0))]

        def per_point():
            return [torch.autograd.functional.jacobian(lambda hi: F(hi[None], x_in)[0], p) for p in pts]

        jt = interleaved({"loop": per_point, "batched": lambda: fp.jacobians(F, pts, x_in)}, config.repeats)
        b.times("fixed_points", f"Jacobians of {len(pts)} points", jt)
        b.target(targets[2][0], paired_ratio(jt, "loop", "batched"), targets[2][1])
        J = fp.jacobians(F, h0, x_in).detach().double()
        Jn = J.numpy()
        et = interleaved({"numpy": lambda: np.linalg.eigvals(Jn), "torch": lambda: torch.linalg.eigvals(J)},
                         config.repeats)
        b.times("fixed_points", f"eigenvalues of {len(J)}x{H}x{H}", et)
        b.target(targets[3][0], paired_ratio(et, "numpy", "torch"),
                 targets[3][1] + " (torch.linalg.eigvals, float64, on all points: dedup only shrinks it)")
    except Exception as e:  # noqa: BLE001 - another part's API may change under us; say so
        for name, desc in targets:
            if not any(c["name"] == name for c in b.result.metrics["criteria"]):
                b.not_measured(name, desc, f"{type(e).__name__}: {e}")
    finally:
        for p in cell.parameters():
            p.requires_grad_(True)


def _count_host_syncs(fn: Callable[[], Any]) -> tuple[int, int]:
    """(calls that make the host wait for tensor data, iterations) while ``fn()`` runs.

    Counted: ``item``/``tolist``/``bool``/``float``/``int``/``cpu``/``numpy`` on tensors,
    except from ``torch.optim`` (Adam reads its step counter, a host tensor, every step)."""
    import torch

    count = 0
    names = ("item", "tolist", "__bool__", "__float__", "__int__", "cpu", "numpy")
    saved = {n: getattr(torch.Tensor, n) for n in names}

    def counting(real):
        def wrapper(self, *a, **k):
            nonlocal count
            if "torch/optim" not in sys._getframe(1).f_code.co_filename.replace(os.sep, "/"):
                count += 1
            return real(self, *a, **k)
        return wrapper

    try:
        for n in names:
            setattr(torch.Tensor, n, counting(saved[n]))
        out = fn()
    finally:
        for n, f in saved.items():
            setattr(torch.Tensor, n, f)
    return count, int(out.meta.get("iterations", 0))


# ----------------------------------------------------------------- knockout / attribution
def bench_knockout(b: Bench, config: Config, tf) -> None:
    import torch

    targets = [("knockout_sweep_over_clean_forward", "attention-knockout sweep onto the last position, every "
                "1-layer window / one clean forward (T >= 32)"),
               ("knockout_speedup_over_full_recompute", "one full forward per window / the last-row sweep"),
               ("knockout_max_abs_logit_error", "max |last-row logits - full recompute logits| over the windows")]
    from interp.tracing import knockout as ko

    B, T = config.compute_batch[0], min(max(32, config.compute_batch[1]), tf.cfg.n_ctx)
    x = _tokens(tf.cfg.d_vocab, (B, T), config.seed)
    pos = torch.arange(T)
    groups = {"context": (pos < T // 2).expand(B, T), "last": (pos == T - 1).expand(B, T)}
    answer = _tokens(tf.cfg.d_vocab, (B,), config.seed + 1)
    edges = [("context", "last")]
    try:
        why = ko.supports_fast_path(tf)
        if why:
            raise NotImplementedError(why)
        with torch.no_grad():
            times = interleaved({"clean_forward": lambda: tf.module(x),
                                 "sweep_last_row": lambda: ko.sweep(tf, x, groups, edges, answer, fast=True),
                                 "sweep_full": lambda: ko.sweep(tf, x, groups, edges, answer, fast=False)},
                                config.repeats)
            cache = ko.clean_cache(tf, x)
            err = max(float((ko.last_row_knockout(tf, cache, groups["context"], [l])
                             - ko.knockout_logits(tf, x, ko.edge_block(groups["last"], groups["context"]), [l])[:, -1]
                             ).abs().max()) for l in range(tf.n_layers))
    except Exception as e:  # noqa: BLE001 - another part's API may change under us; say so
        for name, desc in targets:
            b.not_measured(name, desc, f"{type(e).__name__}: {str(e)[:200]}")
        return
    b.times("knockout", f"[{B}x{T}], {tf.n_layers} windows, edge context->last", times)
    b.target(targets[0][0], paired_ratio(times, "sweep_last_row", "clean_forward"),
             targets[0][1] + " (interp.tracing.knockout.sweep, fast=True; bridge forward)")
    b.target(targets[1][0], paired_ratio(times, "sweep_full", "sweep_last_row"), targets[1][1])
    b.target(targets[2][0], err, targets[2][1])


def bench_attribution(b: Bench, config: Config, tf) -> None:
    import torch

    name, desc = "attribution_patching_over_forward", "attribution patching / one forward on the same batch"
    from interp.tracing import patching

    B, T = config.compute_batch
    clean = _tokens(tf.cfg.d_vocab, (B, min(T, tf.cfg.n_ctx)), config.seed)
    corrupt = _tokens(tf.cfg.d_vocab, (B, min(T, tf.cfg.n_ctx)), config.seed + 1)
    answer = clean[:, -1]

    def metric(logits, idx):  # interp.tracing.patching's metric: (logits [b, pos, vocab], idx [b]) -> [b]
        return logits[torch.arange(len(logits)), -1, answer[idx]]

    try:
        times = interleaved({"forward": lambda: tf.module(clean),
                             "attribution": lambda: patching.attribution_patching(tf, clean, metric, corrupt=corrupt)},
                            config.repeats)
    except Exception as e:  # noqa: BLE001 - another part's API; say what failed
        b.not_measured(name, desc, f"{type(e).__name__}: {str(e)[:200]}")
        return
    b.times("attribution", f"[{B}x{clean.shape[1]}]", times)
    b.target(name, paired_ratio(times, "attribution", "forward"), desc + " (bridge forward)")


# ----------------------------------------------------------------- import time
def bench_import(b: Bench, config: Config) -> None:
    exe = Path(sys.executable).with_name("interp")
    cmd = [str(exe), "--help"] if exe.exists() else [sys.executable, "-m", "interp.cli", "--help"]
    times = []
    for _ in range(config.import_runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True, timeout=120)
        times.append(time.perf_counter() - t0)
    b.times("import", "interp --help", {"subprocess": times})
    b.target("import_seconds_interp_help", statistics.median(times),
             f"`interp --help` wall seconds, median of {len(times)} fresh processes")


# ----------------------------------------------------------------- run
def _table(rows: list[dict]) -> str:
    lines = [f"{'item':<13} {'case':<48} {'variant':<14} {'median':>12}"]
    for r in rows:
        unit = "MiB" if r["variant"].endswith("MiB") else "ms"
        lines.append(f"{r['item']:<13} {r['case'][:48]:<48} {r['variant']:<14} {r['median_ms']:>9.2f} {unit}")
    return "\n".join(lines)


@register("bench", Config, title="Performance benchmark (ratios vs PERFORMANCE.md targets)")
def run(config: Config) -> Result:
    """Collection, memory, disk, SAE, fixed-point and import benchmarks as ratios vs targets."""
    import torch

    from interp.utils import seed_everything

    unknown = sorted(set(config.only) - set(ITEMS))
    if unknown:
        raise ValueError(f"unknown benchmark items {unknown}; valid: {', '.join(ITEMS)}")
    seed_everything(config.seed)
    items = [i for i in ITEMS if not config.only or i in config.only]
    result = Result("bench")
    b = Bench(result)
    result.metrics.update({"torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
                           "load_average": list(os.getloadavg()), "items": items,
                           "note": "ratios of interleaved, paired rounds in one process on a shared machine"})
    tf, rnn = _models(config)
    log.info("bench items %s; transformer %s, rnn %s; torch threads %d, load %s", items, tf.model_id,
             rnn.model_id, torch.get_num_threads(), os.getloadavg())
    steps = {
        "collection": lambda: bench_collection(b, config, tf, rnn),
        "memory": lambda: bench_memory(b, config),
        "early_stop": lambda: bench_early_stop(b, config, tf),
        "disk": lambda: bench_disk(b, config, tf),
        "sae": lambda: bench_sae(b, config, tf),
        "fixed_points": lambda: bench_fixed_points(b, config, rnn),
        "knockout": lambda: bench_knockout(b, config, tf),
        "attribution": lambda: bench_attribution(b, config, tf),
        "import": lambda: bench_import(b, config),
    }
    quiet = os.environ.get("INTERP_QUIET")
    os.environ["INTERP_QUIET"] = "1"  # no progress bars inside timed calls
    try:
        for item in items:
            t0 = time.perf_counter()
            steps[item]()
            log.info("%s done in %.1f s", item, time.perf_counter() - t0)
    finally:
        if quiet is None:
            os.environ.pop("INTERP_QUIET", None)
        else:
            os.environ["INTERP_QUIET"] = quiet
    result.metrics["table"] = b.rows
    result.arrays["median_ms"] = np.array([r["median_ms"] for r in b.rows])
    log.info("timings (medians of interleaved rounds)\n%s", _table(b.rows))
    log.info("targets\n%s", result.summary())
    return result
