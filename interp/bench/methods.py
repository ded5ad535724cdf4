"""Items of the other parts: SAE training from a store, the fixed-point finder, attention
knockout, attribution patching, and import time."""

from __future__ import annotations

import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

import interp
from interp.bench.core import (
    TARGETS,
    Bench,
    Config,
    _hf_causal,
    _tokens,
    resid_store,
)
from interp.methods import fixed_points as fp
from interp.methods import knockout as ko
from interp.methods import patching
from interp.methods.circuits.attribution import edge_attribution
from interp.methods.circuits.forward import build_graph
from interp.sae.model import SAEConfig
from interp.sae.train import SAETrainConfig, train_sae
from interp.tracing.gradients import metric_grads_batch
from interp.utils import interleaved, paired_ratio

log = logging.getLogger("interp.bench")


# ----------------------------------------------------------------- SAE
def bench_sae(
    b: Bench,
    config: Config,
    tf,
    *,
    name: str = "sae_store_rate_over_memory_rate",
    target: tuple[str, float] | None = None,
) -> None:
    """SAE training steps/s from a stored activation set on disk vs from the same activations in
    memory (``name`` and ``target`` let the real-model item reuse it)."""
    desc = (
        "SAE training steps/s reading a stored activation set from disk / on tensors already in "
        "memory"
    )
    root = Path(tempfile.mkdtemp(prefix="interp-bench-sae-"))
    try:
        hook, store = resid_store(config, tf, root)
        mem = store[hook].clone()
        sae_cfg = SAEConfig(d_in=tf.cfg.d_model, d_sae=4 * tf.cfg.d_model, init_seed=config.seed)
        tc = SAETrainConfig(
            steps=config.sae_steps,
            batch_size=config.sae_batch,
            resample_every=0,
            log_every=10**9,
            seed=config.seed,
        )

        def from_store():
            train_sae(interp.ActivationStore.open(root / "s"), sae_cfg, tc, hook=hook)

        times = interleaved(
            {"memory": lambda: train_sae(mem, sae_cfg, tc), "store": from_store}, config.repeats
        )
    except Exception as e:  # noqa: BLE001 - another part's API may change under us; say so
        b.not_measured(name, desc, f"{type(e).__name__}: {e}")
        return
    finally:
        shutil.rmtree(root, ignore_errors=True)
    b.times(
        "sae", f"{config.sae_steps} steps x {config.sae_batch} rows (interp.sae.train_sae)", times
    )
    b.target(
        name,
        paired_ratio(times, "memory", "store"),
        desc
        + f" (interp.sae.train_sae on {tf.model_id}; the store opened with checksum verification)",
        **({} if target is None else {"op": target[0], "threshold": target[1]}),
    )


# ----------------------------------------------------------------- fixed points
FIXED_POINT_TARGETS = [
    (
        "fixed_point_iteration_over_fwd_bwd",
        "one finder iteration / one batched forward+backward of the cell",
    ),
    ("fixed_point_iterations_per_host_sync", "finder iterations per host sync"),
    ("jacobian_batched_speedup", "per-point Jacobian loop / batched Jacobians"),
    ("eigvals_speedup_over_numpy", "numpy eig / the finder's eigenvalue step"),
]


def bench_fixed_points(b: Bench, config: Config, rnn) -> None:
    """The fixed-point finder on the bench RNN's cell (``config.fp_states`` random states, no
    input): an iteration vs a plain Adam forward+backward, iterations per host sync, batched vs
    per-point Jacobians, and torch's eigenvalues vs numpy's. A target whose part fails is
    reported as not measured, with the error."""
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
    try:
        _time_finder(b, config, F, h0, x_in)
        _time_jacobians(b, config, F, h0, x_in)
    except Exception as e:  # noqa: BLE001 - another part's API may change under us; say so
        for name, desc in FIXED_POINT_TARGETS:
            if not any(c["name"] == name for c in b.result.metrics["criteria"]):
                b.not_measured(name, desc, f"{type(e).__name__}: {e}")
    finally:
        for p in cell.parameters():
            p.requires_grad_(True)


def _time_finder(b: Bench, config: Config, F, h0, x_in) -> None:
    """A finder iteration vs an Adam step on the speed of the same states, and the finder's
    iterations per host sync."""
    n_it = config.fp_iters

    def finder(iters: int = n_it):
        return fp.find_fixed_points(
            F,
            h0,
            x_in,
            max_iters=iters,
            fixed_tol=0.0,
            slow_tol=float("inf"),
            newton_steps=0,
            compute_jacobians=False,
            lr=1e-3,
        )

    def fwd_bwd():
        h = h0.clone().requires_grad_(True)
        opt = torch.optim.Adam([h], lr=1e-3)
        for _ in range(n_it):
            opt.zero_grad(set_to_none=True)
            fp.speed(F, h, x_in).sum().backward()
            opt.step()
        return h

    (name, desc), (sync_name, sync_desc) = FIXED_POINT_TARGETS[:2]
    times = interleaved({"finder": finder, "adam_fwd_bwd": fwd_bwd}, config.repeats)
    b.times(
        "fixed_points", f"{config.fp_states} states x {n_it} iterations, GRU {h0.shape[1]}", times
    )
    b.target(
        name,
        paired_ratio(times, "finder", "adam_fwd_bwd"),
        desc + " (Adam step included in both; finder also dedups and labels)",
    )
    # syncs per iteration: the difference between runs of n and 2n iterations
    # (the bookkeeping after the loop is the same in both)
    (s1, it1), (s2, it2) = (_count_host_syncs(lambda k=k: finder(k)) for k in (n_it, 2 * n_it))
    b.target(
        sync_name,
        (it2 - it1) / max(s2 - s1, 1),
        f"{sync_desc}: {s2 - s1} more syncs (item/tolist/bool/float/int/cpu/numpy outside "
        f"torch.optim) in {it2 - it1} more iterations",
    )


def _time_jacobians(b: Bench, config: Config, F, h0, x_in) -> None:
    """Batched Jacobians vs one autograd Jacobian per point, and the eigenvalues of all of them
    by torch (float64) vs numpy."""
    (jac_name, jac_desc), (eig_name, eig_desc) = FIXED_POINT_TARGETS[2:]
    H = h0.shape[1]
    pts = h0[: min(32, len(h0))]

    def per_point():
        return [torch.autograd.functional.jacobian(lambda hi: F(hi[None], x_in)[0], p) for p in pts]

    jt = interleaved(
        {"loop": per_point, "batched": lambda: fp.jacobians(F, pts, x_in)}, config.repeats
    )
    b.times("fixed_points", f"Jacobians of {len(pts)} points", jt)
    b.target(jac_name, paired_ratio(jt, "loop", "batched"), jac_desc)
    J = fp.jacobians(F, h0, x_in).detach().double()
    Jn = J.numpy()
    et = interleaved(
        {"numpy": lambda: np.linalg.eigvals(Jn), "torch": lambda: torch.linalg.eigvals(J)},
        config.repeats,
    )
    b.times("fixed_points", f"eigenvalues of {len(J)}x{H}x{H}", et)
    b.target(
        eig_name,
        paired_ratio(et, "numpy", "torch"),
        eig_desc + " (torch.linalg.eigvals, float64, on all points: dedup only shrinks it)",
    )


def _count_host_syncs(fn: Callable[[], Any]) -> tuple[int, int]:
    """(calls that make the host wait for tensor data, iterations) while ``fn()`` runs.

    Counted: ``item``/``tolist``/``bool``/``float``/``int``/``cpu``/``numpy`` on tensors,
    except from ``torch.optim`` (Adam reads its step counter, a host tensor, every step)."""
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
KNOCKOUT_TARGETS = [
    (
        "knockout_sweep_over_clean_forward",
        "attention-knockout sweep of four edges (image, question, "
        "last, all -> last) over every 1-layer window / one clean forward (T >= 32)",
    ),
    (
        "knockout_speedup_over_full_recompute",
        "one full forward per window and edge / the last-row sweep",
    ),
    (
        "knockout_max_abs_logit_error",
        "max |last-row logits - full recompute logits| over the windows",
    ),
]
KNOCKOUT_HF = (
    "gpt2",
    "llama",
)  # Hugging Face shapes measured besides the bench transformer: suffix of the names


def bench_knockout(b: Bench, config: Config, tf) -> None:
    """The last-row knockout sweep vs one clean forward and vs a full recompute per window, on the
    bench transformer and on GPT-2- and Llama-shaped (grouped-query, rotary) Hugging Face models
    of the same size with random weights, loaded from a local directory (T >= 32 for those)."""
    _knockout_case(
        b, config, tf, "", min(max(32, config.compute_batch[1]), tf.cfg.n_ctx), "bridge forward"
    )
    root = Path(tempfile.mkdtemp(prefix="interp-bench-knockout-"))
    try:
        for arch in KNOCKOUT_HF:
            T = max(32, config.compute_batch[1])
            try:
                m = _hf_causal(config, arch, root / arch, T)
            except Exception as e:  # noqa: BLE001 - loading is another part's API; say what failed
                for name, desc in KNOCKOUT_TARGETS:
                    b.not_measured(
                        f"{name}_{arch}",
                        f"{desc} [{arch}-shaped]",
                        f"{type(e).__name__}: {str(e)[:200]}",
                    )
                continue
            _knockout_case(
                b,
                config,
                m,
                f"_{arch}",
                T,
                f"{arch}-shaped Hugging Face model, its own key/value cache",
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _knockout_case(b: Bench, config: Config, m, suffix: str, T: int, what: str) -> None:
    """The three knockout targets on one model, suffixed with ``suffix``."""
    targets = [(name + suffix, desc) for name, desc in KNOCKOUT_TARGETS]
    B = config.compute_batch[0]
    x = _tokens(m.cfg.d_vocab, (B, T), config.seed)
    pos = torch.arange(T)
    # the paper's sweep: four edges into the last position (image, question, last itself,
    # everything)
    groups = {
        "image": (pos < T // 2).expand(B, T),
        "question": ((pos >= T // 2) & (pos < T - 1)).expand(B, T),
        "last": (pos == T - 1).expand(B, T),
        "all": torch.ones(B, T, dtype=torch.bool),
    }
    answer = _tokens(m.cfg.d_vocab, (B,), config.seed + 1)
    edges = [("image", "last"), ("question", "last"), ("last", "last"), ("all", "last")]
    try:
        why = ko.supports_fast_path(m)
        if why:
            raise NotImplementedError(why)
        with torch.no_grad():
            times = interleaved(
                {
                    "clean_forward": lambda: m.module(x),
                    "sweep_last_row": lambda: ko.sweep(m, x, groups, edges, answer, fast=True),
                    "sweep_full": lambda: ko.sweep(m, x, groups, edges, answer, fast=False),
                },
                config.repeats,
            )
            err = _last_row_error(m, x, groups, edges)
    except Exception as e:  # noqa: BLE001 - another part's API may change under us; say so
        for name, desc in targets:
            b.not_measured(name, desc, f"{type(e).__name__}: {str(e)[:200]}")
        return
    b.times(
        "knockout",
        f"{suffix[1:] or 'transformer'} [{B}x{T}], {m.n_layers} windows, "
        f"{len(edges)} edges into last",
        times,
    )
    values = [
        paired_ratio(times, "sweep_last_row", "clean_forward"),
        paired_ratio(times, "sweep_full", "sweep_last_row"),
        err,
    ]
    notes = [f" (interp.methods.knockout.sweep, fast=True; {what})", f" ({what})", f" ({what})"]
    for (name, desc), (base, _), value, note in zip(
        targets, KNOCKOUT_TARGETS, values, notes, strict=True
    ):
        op, threshold = TARGETS[base]
        b.target(name, value, desc + note, op=op, threshold=threshold)


def _last_row_error(m, x, groups: dict, edges: list[tuple[str, str]]) -> float:
    """max |last-row knockout logits - full recompute's last row| over every 1-layer window and
    every edge's source group (the edges all end at the last position)."""
    cache = ko.clean_cache(m, x)
    errors = []
    for layer in range(m.n_layers):
        for src, _ in edges:
            fast = ko.last_row_knockout(m, cache, groups[src], [layer])
            block = ko.edge_block(groups["last"], groups[src])
            full = ko.knockout_logits(m, x, block, [layer])[:, -1]
            errors.append(float((fast - full).abs().max()))
    return max(errors)


def bench_attribution(b: Bench, config: Config, tf) -> None:
    """Attribution patching (one forward and backward on each input) vs one forward."""
    name, desc = (
        "attribution_patching_over_forward",
        "attribution patching / one forward on the same batch",
    )
    B, T = config.compute_batch
    clean = _tokens(tf.cfg.d_vocab, (B, min(T, tf.cfg.n_ctx)), config.seed)
    corrupt = _tokens(tf.cfg.d_vocab, (B, min(T, tf.cfg.n_ctx)), config.seed + 1)
    answer = clean[:, -1]

    def metric(
        logits, idx
    ):  # interp.methods.patching's metric: (logits [b, pos, vocab], idx [b]) -> [b]
        return logits[torch.arange(len(logits)), -1, answer[idx]]

    try:
        times = interleaved(
            {
                "forward": lambda: tf.module(clean),
                "attribution": lambda: patching.attribution_patching(
                    tf, clean, metric, corrupt=corrupt
                ),
            },
            config.repeats,
        )
    except Exception as e:  # noqa: BLE001 - another part's API; say what failed
        b.not_measured(name, desc, f"{type(e).__name__}: {str(e)[:200]}")
        return
    b.times("attribution", f"[{B}x{clean.shape[1]}]", times)
    b.target(name, paired_ratio(times, "attribution", "forward"), desc + " (bridge forward)")


EAP_IG_STEPS = 5  # Hanna et al.'s m; the target is m + 1 forward+backward passes


def bench_circuits(b: Bench, config: Config, tf) -> None:
    """EAP over every edge of the graph and EAP-IG with 5 steps against one plain forward and
    backward of the same batch (interp.methods.circuits)."""
    targets = [
        ("eap_over_fwd_bwd", "EAP over all edges / one forward+backward of the batch"),
        (
            "eap_ig_over_fwd_bwd",
            f"EAP-IG ({EAP_IG_STEPS} steps) / one forward+backward of the batch",
        ),
    ]
    B, T = config.compute_batch
    clean = _tokens(tf.cfg.d_vocab, (B, min(T, tf.cfg.n_ctx)), config.seed)
    corrupt = _tokens(tf.cfg.d_vocab, (B, min(T, tf.cfg.n_ctx)), config.seed + 1)
    answer = clean[:, -1]

    def metric(logits, idx):
        return logits[torch.arange(len(logits)), -1, answer[idx]]

    try:
        g = build_graph(tf)
        first = tf.hook("resid_pre", 0)
        times = interleaved(
            {
                "fwd_bwd": lambda: metric_grads_batch(tf, clean, metric, [first]),
                "eap": lambda: edge_attribution(tf, clean, corrupt, metric, graph=g, batch_size=B),
                "eap_ig": lambda: edge_attribution(
                    tf,
                    clean,
                    corrupt,
                    metric,
                    method="eap-ig",
                    steps=EAP_IG_STEPS,
                    graph=g,
                    batch_size=B,
                ),
            },
            config.repeats,
        )
    except Exception as e:  # noqa: BLE001 - another part's API; say what failed
        for name, desc in targets:
            b.not_measured(name, desc, f"{type(e).__name__}: {str(e)[:200]}")
        return
    b.times("circuits", f"[{B}x{clean.shape[1]}], {g.n_edges} edges", times)
    for (name, desc), variant in zip(targets, ("eap", "eap_ig"), strict=True):
        b.target(name, paired_ratio(times, variant, "fwd_bwd"), desc + f" ({g.n_edges} edges)")


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
    b.target(
        "import_seconds_interp_help",
        statistics.median(times),
        f"`interp --help` wall seconds, median of {len(times)} fresh processes",
    )
