"""Performance benchmark: every performance target (docs/performance.md), measured as a ratio.

Each item times variants side by side in this one process, interleaved (A B A B ...,
``repeats`` rounds after a warm-up round), and reports the median of the per-round
ratios (paired rounds cancel most of the drift of a shared, noisy machine) next to the
median times. Every target becomes a ``target`` criterion (not a paper's claim) whose value is
the measured ratio and whose threshold is the target; a target that cannot be measured here (no
CUDA device, a method whose call fails) is listed with value ``None`` and the reason
in its description, so metrics.json always names every target. ``metrics["table"]``
holds the rows that the log prints.

Items (``only`` selects some; ``interp bench NAME`` runs one):

- ``collection``: ``collect`` of chosen hooks vs a bare forward of the same plain
  module, vs TransformerLens ``run_with_cache`` (``names_filter`` and all hooks), vs
  nnsight saves; compute-bound and overhead-bound batches; a transformer and an RNN.
- ``hf_collection``: the same on GPT-2- and Llama-shaped Hugging Face models (random weights).
- ``memory``: peak memory held while collecting vs the bytes of the selected
  activations (peak RSS in a fresh subprocess, less the same forward loop's peak).
- ``early_stop``: capturing up to layer ``l`` vs a full forward.
- ``disk``: collection to a sharded store on disk vs in memory.
- ``sae``: SAE training from a stored activation set vs from tensors in memory.
- ``features``: the SAE feature-page pass over a store vs one plain read that encodes it.
- ``fixed_points``, ``knockout``, ``attribution``, ``circuits``: the targets of the methods
  (``interp.methods``), each call guarded so that one failing method is reported, not fatal.
- ``real_model``: collect, memory and SAE training on the real pretrained model.
- ``generation``: ``interp.generate`` with an edit vs the Hugging Face model's own ``generate``.
- ``import``: ``interp --help`` wall time (median of fresh subprocesses).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from interp.bench.collection import (
    bench_collection,
    bench_disk,
    bench_early_stop,
    bench_features,
    bench_hf_collection,
    bench_memory,
    memory_probe,
)
from interp.bench.core import ITEMS, TARGETS, Bench, Config, _models
from interp.bench.generation import bench_generation
from interp.bench.methods import (
    bench_attribution,
    bench_circuits,
    bench_fixed_points,
    bench_import,
    bench_knockout,
    bench_sae,
)
from interp.bench.real import REAL_TARGETS, bench_real_model
from interp.results import Result
from interp.runs import config_from_presets, experiments_dir, write_run
from interp.utils import interleaved, paired_ratio, seed_everything

log = logging.getLogger("interp.bench")

__all__ = [
    "Config",
    "ITEMS",
    "REAL_TARGETS",
    "TARGETS",
    "interleaved",
    "memory_probe",
    "paired_ratio",
    "run",
    "run_bench",
]


def _table(rows: list[dict]) -> str:
    lines = [f"{'item':<13} {'case':<48} {'variant':<14} {'median':>12}"]
    for r in rows:
        unit = "MiB" if r["variant"].endswith("MiB") else "ms"
        lines.append(
            f"{r['item']:<13} {r['case'][:48]:<48} {r['variant']:<14} {r['median_ms']:>9.2f} {unit}"
        )
    return "\n".join(lines)


def run(config: Config) -> Result:
    """Collection, memory, disk, SAE, fixed-point and import benchmarks as ratios vs targets."""
    seed_everything(config.seed)
    items = [i for i in ITEMS if not config.only or i in config.only]
    result = Result("bench")
    b = Bench(result)
    result.metrics.update(
        {
            "torch_threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
            "load_average": list(os.getloadavg()),
            "items": items,
            "note": "ratios of interleaved, paired rounds in one process on a shared machine",
        }
    )
    tf, rnn = _models(config)
    log.info(
        "bench items %s; transformer %s, rnn %s; torch threads %d, load %s",
        items,
        tf.model_id,
        rnn.model_id,
        torch.get_num_threads(),
        os.getloadavg(),
    )
    steps = {
        "collection": lambda: bench_collection(b, config, tf, rnn),
        "hf_collection": lambda: bench_hf_collection(b, config),
        "memory": lambda: bench_memory(b, config),
        "early_stop": lambda: bench_early_stop(b, config, tf),
        "disk": lambda: bench_disk(b, config, tf),
        "sae": lambda: bench_sae(b, config, tf),
        "features": lambda: bench_features(b, config, tf),
        "fixed_points": lambda: bench_fixed_points(b, config, rnn),
        "knockout": lambda: bench_knockout(b, config, tf),
        "attribution": lambda: bench_attribution(b, config, tf),
        "circuits": lambda: bench_circuits(b, config, tf),
        "generation": lambda: bench_generation(b, config),
        "import": lambda: bench_import(b, config),
        "real_model": lambda: bench_real_model(b, config, tf),
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


def presets() -> dict[str, dict]:
    """The benchmark's presets (``experiments/benchmarks/bench.yaml``)."""
    path = experiments_dir() / "benchmarks" / "bench.yaml"
    return (yaml.safe_load(path.read_text()) or {}).get("presets") or {}


def run_bench(preset: str = "quick", overrides: Any = None, *, root: Path | None = None) -> Path:
    """Run the benchmark with a preset plus ``--set`` overrides; write
    ``runs/bench/<stamp>-<hash>/``."""
    cfg = config_from_presets(Config, presets(), preset, overrides, what="the benchmark")
    return write_run("bench", preset, overrides, cfg, run, "bench", root=root)
