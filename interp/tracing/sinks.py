"""Where ``collect`` puts activations: preallocated in-memory tensors, or double-buffered
disk shards written by a background thread; on CUDA, pinned staging buffers copied on
a side stream.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

from interp.tracing.store import (
    MANIFEST,
    TOKENS_DIR,
    ActivationStore,
    ArrayInfo,
    Manifest,
    StoreCorruptedError,
    manifest_digest,
    read_manifest,
    remove_store,
    sanitize,
    shard_file,
    shard_problem,
    storage_dtype_name,
    torch_dtype_name,
    write_manifest,
    write_shard,
)

log = logging.getLogger("interp")


# ------------------------------------------------------------------ transfer
class HostTransfer:
    """GPU -> host behind the forward: two pinned staging buffers, copies on a side stream.

    ``put`` starts batch ``i``'s copy into one staging buffer on the copy stream and
    returns at once; the forward of batch ``i+1`` runs meanwhile. Before a staging
    buffer is reused, its copy is awaited and handed to the sink (a host-side memcpy).
    """

    def __init__(self, sink: Sink):
        self.sink = sink
        self.stream = torch.cuda.Stream()  # type: ignore[no-untyped-call]  # torch: unannotated
        self.slots: list[dict[str, torch.Tensor] | None] = [None, None]
        self.pending: list[tuple[int, int, Any] | None] = [None, None]
        self.turn = 0

    def put(self, i: int, batch: dict[str, torch.Tensor]) -> None:
        slot = self.turn
        self.turn ^= 1
        self._drain(slot)
        k = next(iter(batch.values())).shape[0]
        bufs = self.slots[slot]
        if bufs is None or any(
            bufs[h].shape[0] < k or bufs[h].shape[1:] != a.shape[1:] for h, a in batch.items()
        ):
            bufs = {
                h: torch.empty(a.shape, dtype=a.dtype, pin_memory=True) for h, a in batch.items()
            }
            self.slots[slot] = bufs
        self.stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.stream):
            for h, a in batch.items():
                bufs[h][:k].copy_(a, non_blocking=True)
                a.record_stream(self.stream)  # keep the GPU tensor alive until its copy ran
            done = torch.cuda.Event()  # type: ignore[no-untyped-call]  # torch: unannotated
            done.record(self.stream)
        self.pending[slot] = (i, k, done)

    def _drain(self, slot: int) -> None:
        job = self.pending[slot]
        if job is None:
            return
        i, k, done = job
        done.synchronize()
        self.pending[slot] = None
        bufs = self.slots[slot]
        assert bufs is not None  # a pending copy has its staging buffers
        self.sink.put(i, {h: b[:k] for h, b in bufs.items()})

    def flush(self) -> None:
        self._drain(self.turn)  # the older of the two
        self._drain(self.turn ^ 1)


SHARD_BYTES = 256 * 2**20  # default shard size: about this many bytes (all hooks together)


# ------------------------------------------------------------------ sinks
class Sink:
    start = 0

    def __init__(self, ident: dict[str, Any], tokens: torch.Tensor | None):
        self.ident, self.tokens = ident, tokens
        self.bufs: dict[str, torch.Tensor] = {}

    @staticmethod
    def _alloc(rows: int, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {h: torch.empty((rows, *a.shape[1:]), dtype=a.dtype) for h, a in batch.items()}

    def put(self, i: int, batch: dict[str, torch.Tensor]) -> None:
        """Take items ``i:i+k`` of every hook (``batch``: hook -> ``[k, ...]``)."""
        raise NotImplementedError

    def flush(self) -> None:
        """Hand on what is staged (a sink stages nothing; :class:`HostTransfer` does)."""

    def finish(self) -> ActivationStore:
        """The store of everything put."""
        raise NotImplementedError

    def close(self) -> None:
        """Wait for background work (called on success and on errors)."""

    def _arrays(
        self, shapes: dict[str, tuple[int, ...]], dtypes: dict[str, torch.dtype]
    ) -> dict[str, ArrayInfo]:
        dirs = [sanitize(h) for h in self.ident["hooks"]]
        if len(set(dirs)) < len(dirs) or TOKENS_DIR in dirs:
            raise ValueError(f"hook names {self.ident['hooks']} map to clashing directories {dirs}")
        return {
            h: ArrayInfo(
                dir=sanitize(h),
                shape=list(shapes[h]),
                dtype=torch_dtype_name(dtypes[h]),
                storage_dtype=storage_dtype_name(dtypes[h]),
            )
            for h in self.ident["hooks"]
        }

    def _tokens_info(self) -> ArrayInfo | None:
        t = self.tokens
        if t is None:
            return None
        return ArrayInfo(
            dir=TOKENS_DIR,
            shape=list(t.shape[1:]),
            dtype=torch_dtype_name(t.dtype),
            storage_dtype=storage_dtype_name(t.dtype),
        )


class MemorySink(Sink):
    """Fills one preallocated ``[N, ...]`` tensor per hook."""

    def __init__(self, ident: dict[str, Any], tokens: torch.Tensor | None):
        super().__init__(ident, tokens)
        self.chunks: dict[str, tuple[int, tuple[torch.Tensor, ...]]] = {}
        self.heads: dict[str, int] = {}  # name -> d_head of buffers filled flat

    def put(self, i: int, batch: dict[str, torch.Tensor]) -> None:
        for h, a in batch.items():
            self.put_one(i, h, a)

    def put_one(self, i: int, name: str, a: torch.Tensor) -> torch.Tensor:
        """Copy ``a`` ``[k, ...]`` into items ``i:i+k`` of ``name``'s buffer; return that view."""
        k = a.shape[0]
        chunks = self.chunks.get(name)
        if chunks is not None and chunks[0] == k and i % k == 0 and i // k < len(chunks[1]):
            view = chunks[1][i // k]  # views made once per buffer: no slicing per batch
        else:
            if name not in self.bufs:
                self._check_fits(name, a)
                self.bufs[name] = torch.empty((self.ident["n_items"], *a.shape[1:]), dtype=a.dtype)
            if i % k == 0 and self.ident["n_items"] > k:
                self.chunks[name] = (k, torch.split(self.bufs[name], k))
            view = self.bufs[name][i : i + k]
        view.copy_(a)
        return view

    def _check_fits(self, name: str, a: torch.Tensor) -> None:
        """Before ``name``'s ``[N, ...]`` buffer is allocated: it and those before it fit."""
        from interp.utils import check_fits

        n = self.ident["n_items"]
        parts = {f"{h} {list(b.shape)}": b.numel() * b.element_size() for h, b in self.bufs.items()}
        parts[f"{name} {[n, *a.shape[1:]]}"] = n * a[0].numel() * a.element_size()
        check_fits(parts, "Collect to disk (out=<dir>: shards read one at a time) or fewer items.")

    def finish(self) -> ActivationStore:
        bufs = {h: self.bufs[h] for h in self.ident["hooks"]}
        for h, d_head in self.heads.items():  # [N, pos, head * d_head] -> [N, pos, head, d_head]
            bufs[h] = bufs[h].view(*bufs[h].shape[:-1], -1, d_head)
        arrays = self._arrays(
            {h: b.shape[1:] for h, b in bufs.items()}, {h: b.dtype for h, b in bufs.items()}
        )
        manifest = Manifest(
            **self.ident,
            arrays=arrays,
            tokens=self._tokens_info(),
            shard_size=self.ident["n_items"],
            complete=True,
        )
        return ActivationStore(manifest, tensors=bufs, tokens=self.tokens)


class DiskSink(Sink):
    """Fills shard buffers per hook (two sets); a background thread writes each full
    shard and then the manifest, while the next shard fills the other set."""

    def __init__(
        self,
        root: Path,
        ident: dict[str, Any],
        tokens: torch.Tensor | None,
        shard_size: int | None,
        overwrite: bool,
    ):
        super().__init__(ident, tokens)
        self.root, self.shard_size, self.done = root, shard_size, None
        if shard_size is not None and shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, got {shard_size}")
        self.manifest: Manifest | None = None
        self.sets: list[dict[str, torch.Tensor]] = []
        self.writer: ThreadPoolExecutor | None = None
        self.writing: Future[None] | None = None
        if overwrite:
            remove_store(root)
        if (root / MANIFEST).exists():
            old = read_manifest(root)
            if old.manifest_sha256 and old.manifest_sha256 != manifest_digest(old):
                raise StoreCorruptedError(
                    f"{root / MANIFEST} was edited after it was written (its own checksum does not "
                    "match); collect into a new directory, or overwrite=True"
                )
            self._check_same(old)
            if old.complete:
                self.done = ActivationStore(old, path=root)
                self.done.verify()  # a finished store is returned only if every shard checks out
                return
            self.manifest = old
            self.shard_size = old.shard_size
            self.start = old.items_done()
            for info in self._infos():  # resume before the first shard that fails its checksum
                for s in sorted(info.shards, key=lambda s: s.start):
                    if s.stop <= self.start and shard_problem(root, s):
                        log.warning(
                            "%s; collecting again from item %d", shard_problem(root, s), s.start
                        )
                        self.start = min(self.start, s.start)
                        break
            for info in self._infos():  # drop anything past the resume point
                info.shards = [s for s in info.shards if s.stop <= self.start]
        elif root.exists() and any(p.is_file() for p in root.rglob("*")):
            raise ValueError(
                f"{root} holds files but no {MANIFEST}: not an activation store. "
                "Choose a new directory."
            )

    def _check_same(self, old: Manifest) -> None:
        new = dict(self.ident, hooks=sorted(self.ident["hooks"]))
        had = dict(old.model_dump(include=set(self.ident)), hooks=sorted(old.hooks))
        if self.shard_size is not None:
            new["shard_size"], had["shard_size"] = self.shard_size, old.shard_size
        if not old.weights_sha256:  # written before stores kept a weights fingerprint: cannot tell
            log.warning(
                "%s has no weights fingerprint; it is trusted to come from %s",
                self.root,
                old.model_id,
            )
            new.pop("weights_sha256", None)
        diff = [
            f"{k}: store has {had[k]!r}, this call has {new[k]!r}"
            for k in new
            if had.get(k) != new[k]
        ]
        if diff:
            raise ValueError(
                f"{self.root} already holds a different activation store ("
                + "; ".join(
                    "the dataset differs"
                    if d.startswith("dataset_sha256")
                    else "the model's weights differ"
                    if d.startswith("weights_sha256")
                    else d
                    for d in diff
                )
                + "). Use a new out directory, or overwrite=True to replace it."
            )

    def _manifest(self) -> Manifest:
        """The manifest: set by the first batch, or read back when resuming."""
        assert self.manifest is not None, "no batch has been put yet"
        return self.manifest

    def _size(self) -> int:
        """Items per shard: chosen by the first batch unless given."""
        assert self.shard_size is not None, "no batch has been put yet"
        return self.shard_size

    def _infos(self) -> list[ArrayInfo]:
        m = self._manifest()
        return [*m.arrays.values(), *([m.tokens] if m.tokens is not None else [])]

    def _begin(self, batch: dict[str, torch.Tensor]) -> None:
        if self.manifest is None:
            if self.shard_size is None:
                item = sum(a[0].numel() * a.element_size() for a in batch.values())
                self.shard_size = int(
                    max(1, min(self.ident["n_items"], SHARD_BYTES // max(item, 1)))
                )
            arrays = self._arrays(
                {h: a.shape[1:] for h, a in batch.items()}, {h: a.dtype for h, a in batch.items()}
            )
            self.manifest = Manifest(
                **self.ident, arrays=arrays, tokens=self._tokens_info(), shard_size=self.shard_size
            )
            self.root.mkdir(parents=True, exist_ok=True)
            write_manifest(self.root, self.manifest)
        for h, a in batch.items():
            info = self.manifest.arrays[h]
            if list(a.shape[1:]) != info.shape or torch_dtype_name(a.dtype) != info.dtype:
                raise ValueError(
                    f"{h}: got items {list(a.shape[1:])} {a.dtype}, the store in {self.root} "
                    f"has {info.shape} {info.dtype}"
                )
        rows = min(self.shard_size, self.ident["n_items"])
        self.sets = [self._alloc(rows, batch)]
        if self.ident["n_items"] - self.start > rows:  # more than one shard to go: double buffer
            self.sets.append(self._alloc(rows, batch))

    def put(self, i: int, batch: dict[str, torch.Tensor]) -> None:
        if not self.sets:
            self._begin(batch)
        size, n = self._size(), self.ident["n_items"]
        k = next(iter(batch.values())).shape[0]
        off = 0
        while off < k:  # a batch may cross shard boundaries
            item = i + off
            s = item // size
            a, b = s * size, min((s + 1) * size, n)
            take = min(k - off, b - item)
            bufs = self.sets[s % len(self.sets)]
            for h, t in batch.items():
                bufs[h][item - a : item - a + take].copy_(t[off : off + take])
            off += take
            if item + take == b:
                self._submit(s)

    def _submit(self, s: int) -> None:
        """Hand shard ``s`` to the writer; wait for shard ``s-1`` (its buffers fill next)."""
        self._wait()
        if len(self.sets) == 1:
            self._flush(s)
            return
        if self.writer is None:
            self.writer = ThreadPoolExecutor(1, thread_name_prefix="interp-store-writer")
        self.writing = self.writer.submit(self._flush, s)

    def _wait(self) -> None:
        if self.writing is not None:
            job, self.writing = self.writing, None
            job.result()  # re-raises the writer's error here

    def _flush(self, s: int) -> None:
        """Write shard ``s`` of every array, then the manifest (which makes the shard count)."""
        assert self.manifest is not None and self.shard_size is not None  # set by the first batch
        size, n = self.shard_size, self.ident["n_items"]
        a, b = s * size, min((s + 1) * size, n)
        bufs = self.sets[s % len(self.sets)]
        for h, info in self.manifest.arrays.items():
            info.shards.append(
                write_shard(self.root, shard_file(info.dir, s), bufs[h][: b - a], a, b)
            )
        if self.manifest.tokens is not None and self.tokens is not None:
            info = self.manifest.tokens
            info.shards.append(
                write_shard(self.root, shard_file(info.dir, s), self.tokens[a:b], a, b)
            )
        write_manifest(self.root, self.manifest)

    def close(self) -> None:
        if self.writer is not None:
            try:
                self._wait()
            finally:
                self.writer.shutdown(wait=True)
                self.writer = None

    def finish(self) -> ActivationStore:
        self.close()
        assert self.manifest is not None, "no batch has been put"
        self.manifest.complete = True
        write_manifest(self.root, self.manifest)
        return ActivationStore(self.manifest, path=self.root)
