"""``ActivationStore``: activations collected by :func:`interp.collect`, in memory or on disk.

On-disk layout (one directory)::

    <dir>/manifest.json                     pydantic Manifest (below), written atomically
    <dir>/<hook>/shard_00000.npy            items [0, shard_size) of that hook
    <dir>/<hook>/shard_00001.npy            items [shard_size, 2 * shard_size) ...
    <dir>/_tokens/shard_00000.npy           the input tokens [n, T] (token input only)

Each hook's directory name is the hook name with characters outside ``[A-Za-z0-9._-]``
replaced by ``_`` (hook names are dotted identifiers, so usually unchanged). Every shard
is a plain ``.npy`` file written atomically, with its sha256 in the manifest (computed
from the bytes in memory as they are written, not by reading the file back). A shard's
``file`` may lie in a subdirectory: a multi-process collection
(:mod:`interp.tracing.distributed`) lists every rank's ``rank<r>/<hook>/shard_*.npy``
in one merged manifest.

dtypes: activations keep their torch dtype. ``bfloat16`` has no numpy dtype, so it is
stored bit-exactly as ``int16`` (same bytes, no precision lost) and viewed back as
``torch.bfloat16`` on read; the manifest records both (``dtype`` and ``storage_dtype``).

Reading: ``store[name]`` builds a tensor from ``np.load(mmap_mode="c")`` shards: a
single shard becomes a tensor on the memory map itself (no copy; copy-on-write, so
writing to it never changes the file); several shards are concatenated (one copy).
``store.iter_shards(name)`` streams shard by shard without concatenating;
``store.shard_bounds(name)`` and ``store.shard(name, i)`` read one shard at a time in any order
(the SAE trainer visits them shuffled, a few at a time).
"""

from __future__ import annotations

import functools
import hashlib
import re
import shutil
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict

from interp.utils import atomic_path, read_json, unknown_name_error, write_json

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
TOKENS_DIR = "_tokens"


class StoreCorruptedError(ValueError):
    """A shard file is missing or its checksum does not match the manifest."""


class ShardInfo(BaseModel):
    """One ``.npy`` file holding items ``[start, stop)`` of one array."""

    model_config = ConfigDict(extra="forbid")

    file: str  # relative to the store directory
    start: int
    stop: int
    sha256: str
    nbytes: int


class ArrayInfo(BaseModel):
    """One stored array (a hook, or the tokens): per-item shape, dtypes, shards."""

    model_config = ConfigDict(extra="forbid")

    dir: str  # directory (relative to the store) holding the shards
    shape: list[int]  # per item, i.e. without the leading N
    dtype: str  # torch dtype name: "float32", "bfloat16", "int64", ...
    storage_dtype: str  # numpy dtype of the files ("int16" for bfloat16)
    shards: list[ShardInfo] = []


class Manifest(BaseModel):
    """What a store holds and how it was made; resuming compares these fields."""

    model_config = ConfigDict(extra="forbid")

    format_version: int = FORMAT_VERSION
    model_id: str
    hooks: list[str]
    arrays: dict[str, ArrayInfo]  # hook name -> array
    tokens: Optional[ArrayInfo] = None
    positions: str  # "all", "last", "mean", an int ("3") or a slice ("slice(0, 8, None)")
    dtype: Optional[str] = None  # requested cast (None: kept as computed)
    n_items: int
    n_tokens: int  # token positions processed (padding excluded when lengths are known)
    shard_size: int
    dataset_sha256: str = ""  # fingerprint of the input data, to refuse resuming on other data
    weights_sha256: str = ""  # fingerprint of the model's weights, to refuse mixing two models
    complete: bool = False

    def items_done(self) -> int:
        """Items covered by consecutive complete shards from the start (all arrays agree)."""
        done = self.n_items
        for info in [*self.arrays.values(), *([self.tokens] if self.tokens else [])]:
            stop = 0
            for s in sorted(info.shards, key=lambda s: s.start):
                if s.start != stop:
                    break
                stop = s.stop
            done = min(done, stop)
        return done


# ------------------------------------------------------------------- helpers
def sanitize(name: str) -> str:
    """Directory name for a hook: characters outside ``[A-Za-z0-9._-]`` become ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name) or "_"


def shard_file(array_dir: str, index: int) -> str:
    return f"{array_dir}/shard_{index:05d}.npy"


def torch_dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """A CPU numpy view of ``t``; bfloat16 is viewed as int16 (bit-exact)."""
    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    return t.numpy()


@functools.cache
def storage_dtype_name(dtype: torch.dtype) -> str:
    return "int16" if dtype == torch.bfloat16 else str(to_numpy(torch.empty(0, dtype=dtype)).dtype)


def from_numpy(a: np.ndarray, dtype: str) -> torch.Tensor:
    t = torch.from_numpy(a)
    return t.view(torch.bfloat16) if dtype == "bfloat16" else t


def sha256_file(path: Path, chunk: int = 1 << 23) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def shard_problem(root: Path, s: ShardInfo) -> str:
    """What is wrong with shard ``s`` under ``root`` ("" when its size and sha256 match)."""
    f = root / s.file
    if not f.exists():
        return f"shard file {f} is missing (listed in {root / MANIFEST})"
    if f.stat().st_size != s.nbytes or sha256_file(f) != s.sha256:
        return f"shard file {f} is corrupted: its sha256 does not match the manifest (items {s.start}..{s.stop})"
    return ""


def write_shard(root: Path, rel: str, t: torch.Tensor, start: int, stop: int) -> ShardInfo:
    """Write items ``[start, stop)`` (``t``: ``[stop - start, ...]``) to ``root/rel`` atomically."""
    path = root / rel
    arr = np.ascontiguousarray(to_numpy(t))
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, arr)
            size = f.tell()
        # The checksum of what was written, without reading the data back: the .npy
        # header (small) from the file, then the array's bytes from memory.
        with open(tmp, "rb") as f:
            h = hashlib.sha256(f.read(size - arr.nbytes))
        h.update(arr.data.cast("B"))  # C-contiguous (np.ascontiguousarray above)
    return ShardInfo(file=rel, start=start, stop=stop, sha256=h.hexdigest(), nbytes=size)


# --------------------------------------------------------------------- store
class ActivationStore:
    """Named activations ``[N, ...]`` from :func:`interp.collect`, in memory or on disk.

    ``store[name]`` -> tensor ``[N, T, ...]`` (positions "all"/slice) or ``[N, ...]``
    (positions "last"/"mean"/int). ``store.tokens`` -> ``[N, T]`` or None.
    """

    def __init__(self, manifest: Manifest, tensors: dict[str, torch.Tensor] | None = None,
                 tokens: torch.Tensor | None = None, path: str | Path | None = None):
        self.manifest = manifest
        self.path = Path(path) if path is not None else None
        self._tensors = dict(tensors or {})
        self._tokens = tokens

    # ------------------------------------------------------------------ open
    @classmethod
    def open(cls, path: str | Path, *, verify: bool = True, allow_incomplete: bool = False) -> "ActivationStore":
        """Open a store directory written by :func:`interp.collect` or :meth:`save`.

        ``verify=True`` (default) recomputes every shard's sha256 (reads all bytes once:
        instant for small stores, seconds per GB for large ones; pass ``verify=False``
        to skip). Raises :class:`StoreCorruptedError` naming a bad shard file, and
        ``ValueError`` for an unfinished collection unless ``allow_incomplete``.
        """
        path = Path(path)
        if not (path / MANIFEST).exists():
            raise FileNotFoundError(f"{path} is not an activation store (no {MANIFEST})")
        raw = read_json(path / MANIFEST)
        if raw.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{path / MANIFEST}: format_version {raw.get('format_version')!r}, "
                             f"this interp reads {FORMAT_VERSION}")
        manifest = Manifest.model_validate(raw)
        if not manifest.complete and not allow_incomplete:
            raise ValueError(
                f"store {path} is incomplete ({manifest.items_done()} of {manifest.n_items} items): "
                "run interp.collect again with the same arguments and out dir to resume, "
                "or open(..., allow_incomplete=True)")
        store = cls(manifest, path=path)
        if verify:
            store.verify()
        return store

    def verify(self) -> None:
        """Recompute every shard checksum; raise :class:`StoreCorruptedError` naming the bad file."""
        if self.path is None:
            return
        for info in self._infos():
            for s in info.shards:
                problem = shard_problem(self.path, s)
                if problem:
                    raise StoreCorruptedError(f"{problem}; re-collect into a new directory")

    def _infos(self) -> list[ArrayInfo]:
        m = self.manifest
        return [*m.arrays.values(), *([m.tokens] if m.tokens is not None else [])]

    # ----------------------------------------------------------------- access
    @property
    def hooks(self) -> list[str]:
        return list(self.manifest.hooks)

    def __len__(self) -> int:
        return self.manifest.n_items

    def __contains__(self, name: object) -> bool:
        return name in self.manifest.arrays

    def __getitem__(self, name: str) -> torch.Tensor:
        if name not in self.manifest.arrays:
            raise unknown_name_error("hook name", name, self.hooks)
        if name in self._tensors:
            return self._tensors[name]
        t = self._load(self.manifest.arrays[name])
        if len(self.manifest.arrays[name].shards) <= 1:
            self._tensors[name] = t  # a memory map: caching costs no memory
        return t

    @property
    def tokens(self) -> torch.Tensor | None:
        """The input tokens ``[N, T]`` (token or text input), else None."""
        if self._tokens is None and self.manifest.tokens is not None and self.path is not None:
            self._tokens = self._load(self.manifest.tokens)
        return self._tokens

    def iter_shards(self, name: str) -> Iterator[tuple[int, int, torch.Tensor]]:
        """Yield ``(start, stop, tensor [stop - start, ...])`` shard by shard (memory maps)."""
        if name not in self.manifest.arrays:
            raise unknown_name_error("hook name", name, self.hooks)
        if self.path is None:
            yield 0, len(self), self[name]
            return
        info = self.manifest.arrays[name]
        for s in info.shards:
            yield s.start, s.stop, self._load_shard(s, info)

    def shard_bounds(self, name: str) -> list[tuple[int, int]]:
        """``[(start, stop), ...]`` of ``name``'s shards in item order (one for an in-memory store)."""
        if name not in self.manifest.arrays:
            raise unknown_name_error("hook name", name, self.hooks)
        if self.path is None:
            return [(0, len(self))]
        return [(s.start, s.stop) for s in sorted(self.manifest.arrays[name].shards, key=lambda s: s.start)]

    def shard(self, name: str, index: int) -> torch.Tensor:
        """Shard ``index`` (in item order, as :meth:`shard_bounds`) of ``name``: ``[stop - start, ...]``,
        a memory map of that one file (the whole tensor for an in-memory store)."""
        bounds = self.shard_bounds(name)
        if not 0 <= index < len(bounds):
            raise IndexError(f"{name} has {len(bounds)} shards; shard {index} does not exist")
        if self.path is None:
            return self[name]
        info = self.manifest.arrays[name]
        return self._load_shard(sorted(info.shards, key=lambda s: s.start)[index], info)

    def _load_shard(self, s: ShardInfo, info: ArrayInfo) -> torch.Tensor:
        assert self.path is not None, "an in-memory store has no shards"
        return from_numpy(np.load(self.path / s.file, mmap_mode="c"), info.dtype)

    def _load(self, info: ArrayInfo) -> torch.Tensor:
        parts = [self._load_shard(s, info) for s in sorted(info.shards, key=lambda s: s.start)]
        if not parts:
            return torch.empty((0, *info.shape), dtype=getattr(torch, info.dtype))
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    # ------------------------------------------------------------------- save
    def save(self, path: str | Path, *, shard_size: int | None = None) -> "ActivationStore":
        """Write this store to directory ``path`` (must be new or empty); return the disk store."""
        path = Path(path)
        if path.exists() and any(path.iterdir()):
            raise ValueError(f"{path} exists and is not empty; choose a new directory")
        m = self.manifest
        n = len(self)
        size = max(1, shard_size or m.shard_size or n)
        arrays = {h: self._save_array(path, sanitize(h), self[h], size) for h in m.hooks}
        tokens = self._save_array(path, TOKENS_DIR, self.tokens, size) if self.tokens is not None else None
        new = m.model_copy(update={"arrays": arrays, "tokens": tokens, "shard_size": size, "complete": True})
        write_json(path / MANIFEST, new.model_dump())
        return ActivationStore(new, path=path)

    @staticmethod
    def _save_array(root: Path, name: str, t: torch.Tensor, size: int) -> ArrayInfo:
        shards = []
        for k, a in enumerate(range(0, max(len(t), 1), size)):
            b = min(a + size, len(t))
            shards.append(write_shard(root, shard_file(name, k), t[a:b], a, b))
        return ArrayInfo(dir=name, shape=list(t.shape[1:]), dtype=torch_dtype_name(t.dtype),
                         storage_dtype=storage_dtype_name(t.dtype), shards=shards)

    def __repr__(self) -> str:
        where = str(self.path) if self.path is not None else "memory"
        shapes = ", ".join(f"{h}: {[len(self), *self.manifest.arrays[h].shape]} {self.manifest.arrays[h].dtype}"
                           for h in self.hooks)
        return (f"ActivationStore({where}, model={self.manifest.model_id!r}, n={len(self)}, "
                f"positions={self.manifest.positions!r}, {{{shapes}}})")


def remove_store(path: Path) -> None:
    """Delete a store directory (only if it holds a manifest or no files at all)."""
    if not path.exists():
        return
    if not (path / MANIFEST).exists() and any(p.is_file() for p in path.rglob("*")):
        raise ValueError(f"{path} holds files but is not an activation store; refusing to delete it")
    shutil.rmtree(path)
