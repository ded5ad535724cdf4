"""Collection across processes: ``torchrun`` ranks each collect a contiguous part of the
dataset into their own shard set of one store; rank 0 then writes the merged manifest.

::

    torchrun --nproc_per_node=4 -m interp.tracing.distributed \\
        --model zoo:code-lm --tokens tokens.npy --hooks blocks.3.hook_resid_post --out acts/run1

    # or from Python, in a script started by torchrun:
    store = collect_distributed(m, tokens, ["blocks.3.hook_resid_post"], out="acts/run1")

Layout of ``out`` (one store; ``ActivationStore.open(out)`` reads it like any other)::

    out/manifest.json                 merged: every rank's shards, offsets made global
    out/rank00000/manifest.json       rank 0's own store: items [0, n/W)
    out/rank00000/<hook>/shard_*.npy
    out/rank00001/...                 rank 1: items [n/W, 2n/W) ...

The directory must be visible to every rank (one machine, or a shared file system).
Each rank's part resumes on its own after an interruption (``collect``'s resume); the
merged manifest is written once every part is complete. The backend is gloo on CPU and
nccl when the ranks have GPUs (``LOCAL_RANK`` picks the device).

Models that do not fit one device (switches, not code paths of their own):

- several GPUs in one process: ``interp.load_model("hf:<name>", device_map="auto")``, or
  ``n_devices=N`` (TransformerLens splits the blocks over the GPUs; both keyword
  arguments pass through to ``TransformerBridge.boot_transformers``); ``collect`` then
  runs with ``device="auto"`` (inputs go to the first block's device).
- NDIF (remote execution of large open models): nnsight's
  ``LanguageModel("<hub name>").trace(inputs, remote=True)`` with ``.save()`` on the
  activations, the same access pattern as ``interp.trace`` on the nnsight backend; needs
  an NDIF API key and network, so it is documented here and not exercised by the tests.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from interp.tracing.collect import collect, fingerprint, n_tokens, prepare_dataset
from interp.tracing.model import Model
from interp.tracing.store import (
    MANIFEST,
    ActivationStore,
    ArrayInfo,
    Manifest,
    ShardInfo,
    read_manifest,
    write_manifest,
)


def rank_dir(out: str | Path, rank: int) -> Path:
    return Path(out) / f"rank{rank:05d}"


def part(n: int, rank: int, world: int) -> tuple[int, int]:
    """Items ``[start, stop)`` of rank ``rank`` out of ``world``: contiguous, sizes differ by
    <= 1."""
    return rank * n // world, (rank + 1) * n // world


def collect_distributed(
    m: Model,
    dataset: Any,
    hooks: Sequence[str] | str,
    out: str | Path,
    *,
    lengths: Any = None,
    overwrite: bool = False,
    **kwargs: Any,
) -> ActivationStore:
    """``collect`` under ``torchrun``: this rank's part into ``out/rank<r>``, then the merged store.

    Without a process group (a plain ``python`` run) it is one rank of one. ``kwargs`` go
    to :func:`~interp.tracing.collect.collect` (``batch_size``, ``positions``, ``dtype``...).
    Returns the merged store on every rank.
    """
    import torch.distributed as dist

    started = _init_process_group()
    try:
        rank = dist.get_rank() if dist.is_initialized() else 0
        world = dist.get_world_size() if dist.is_initialized() else 1
        x, lens = prepare_dataset(m, dataset, lengths)  # the whole set: same padding on every rank
        a, b = part(len(x), rank, world)
        if b > a:
            collect(
                m,
                x[a:b],
                hooks,
                out=rank_dir(out, rank),
                lengths=None if lens is None else lens[a:b],
                overwrite=overwrite,
                **kwargs,
            )
        _barrier()
        if rank == 0:
            merge(
                out,
                world,
                n_items=len(x),
                n_tokens=n_tokens(x, lens),
                dataset_sha256=fingerprint(x, lens),
            )
        _barrier()
        return ActivationStore.open(out, verify=False)
    finally:
        if started:
            dist.destroy_process_group()


def merge(
    out: str | Path, world: int, *, n_items: int, n_tokens: int, dataset_sha256: str
) -> Manifest:
    """Write ``out/manifest.json`` listing every rank's shards with global item offsets."""
    out = Path(out)
    parts = []
    for r in range(world):
        path = rank_dir(out, r) / MANIFEST
        if path.exists():
            man = read_manifest(path.parent)
            if not man.complete:
                raise ValueError(
                    f"rank {r}'s part {path.parent} is incomplete; run the collection again"
                )
            parts.append((r, man))
    if not parts:
        raise ValueError(f"no rank stores under {out}")
    first = parts[0][1]
    offset = 0
    arrays = {h: _shifted_info(info, []) for h, info in first.arrays.items()}
    tokens = _shifted_info(first.tokens, []) if first.tokens is not None else None
    for r, man in parts:
        if man.hooks != first.hooks or man.positions != first.positions or man.dtype != first.dtype:
            raise ValueError(
                f"rank {r}'s store differs from rank {parts[0][0]}'s (hooks, positions or dtype)"
            )
        prefix = rank_dir(".", r).name
        for h, info in man.arrays.items():
            arrays[h].shards += [_shifted(s, prefix, offset) for s in info.shards]
        if tokens is not None and man.tokens is not None:
            tokens.shards += [_shifted(s, prefix, offset) for s in man.tokens.shards]
        offset += man.n_items
    if offset != n_items:
        raise ValueError(f"the rank stores hold {offset} items, the dataset {n_items}")
    merged = Manifest(
        model_id=first.model_id,
        hooks=first.hooks,
        arrays=arrays,
        tokens=tokens,
        positions=first.positions,
        dtype=first.dtype,
        n_items=n_items,
        n_tokens=n_tokens,
        shard_size=first.shard_size,
        dataset_sha256=dataset_sha256,
        complete=True,
    )
    write_manifest(out, merged)
    return merged


def _shifted_info(info: ArrayInfo, shards: list[ShardInfo]) -> ArrayInfo:
    return info.model_copy(update={"shards": shards})


def _shifted(s: ShardInfo, prefix: str, offset: int) -> ShardInfo:
    return s.model_copy(
        update={"file": f"{prefix}/{s.file}", "start": s.start + offset, "stop": s.stop + offset}
    )


def _init_process_group() -> bool:
    """Join the torchrun group if launched by torchrun and not joined yet; True if we joined."""
    import torch.distributed as dist

    if (
        dist.is_initialized()
        or "RANK" not in os.environ
        or int(os.environ.get("WORLD_SIZE", "1")) < 2
    ):
        return False
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if cuda else "gloo")
    return True


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()


def _load_inputs(path: str) -> Any:
    """Token ids from ``.npy`` / ``.pt``, or texts from ``.txt`` (one per line)."""
    import numpy as np

    if path.endswith(".npy"):
        return torch.from_numpy(np.load(path))
    if path.endswith(".pt"):
        return torch.load(path, map_location="cpu", weights_only=True)  # tensors only: never code
    return [line for line in Path(path).read_text().splitlines() if line.strip()]


def main(argv: Sequence[str] | None = None) -> None:
    """``torchrun ... -m interp.tracing.distributed --model M --tokens F --hooks a,b --out D``."""
    from interp.models.load import load_model

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="zoo:<name>, hf:<name> or a model directory")
    p.add_argument(
        "--tokens", required=True, help=".npy / .pt token ids [N, T], or a .txt of texts"
    )
    p.add_argument("--hooks", required=True, help="comma-separated hook names")
    p.add_argument("--out", required=True, help="store directory (shared by the ranks)")
    p.add_argument("--batch-size", default="auto")
    p.add_argument("--positions", default="all", help="all, last, mean or an int")
    p.add_argument("--dtype", default=None)
    p.add_argument("--overwrite", action="store_true")
    args = p.parse_args(argv)
    device = f"cuda:{os.environ.get('LOCAL_RANK', '0')}" if torch.cuda.is_available() else "cpu"
    m = load_model(args.model, device=device)
    positions: Any = int(args.positions) if args.positions.lstrip("-").isdigit() else args.positions
    bs: Any = int(args.batch_size) if args.batch_size != "auto" else "auto"
    store = collect_distributed(
        m,
        _load_inputs(args.tokens),
        args.hooks.split(","),
        args.out,
        batch_size=bs,
        positions=positions,
        dtype=args.dtype,
        overwrite=args.overwrite,
    )
    if int(os.environ.get("RANK", "0")) == 0:
        print(store)


if __name__ == "__main__":
    main()
