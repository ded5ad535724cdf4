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
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict

from interp.utils import atomic_path, foreign_files, read_json, unknown_name_error, write_json

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
    tokens: ArrayInfo | None = None
    positions: str  # "all", "last", "mean", an int ("3") or a slice ("slice(0, 8, None)")
    dtype: str | None = None  # requested cast (None: kept as computed)
    n_items: int
    n_tokens: int  # token positions processed (padding excluded when lengths are known)
    shard_size: int
    dataset_sha256: str = ""  # fingerprint of the input data, to refuse resuming on other data
    weights_sha256: str = ""  # fingerprint of the model's weights, to refuse mixing two models
    edits: list[str] = []  # hook names edited while collecting (``collect(..., edits=)``)
    complete: bool = False
    # sha256 of this manifest's own JSON with this field empty: an edit of the file is detected
    manifest_sha256: str = ""

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
        return (
            f"shard file {f} is corrupted: its sha256 does not match the manifest "
            f"(items {s.start}..{s.stop})"
        )
    return ""


def manifest_digest(m: Manifest) -> str:
    """The sha256 a manifest records of itself (its JSON, sorted keys, with the field empty)."""
    import json

    blob = json.dumps(m.model_dump(exclude={"manifest_sha256"}), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()


def write_manifest(root: Path, m: Manifest) -> None:
    """Write ``root/manifest.json`` atomically with its own checksum filled in."""
    m.manifest_sha256 = manifest_digest(m)
    write_json(root / MANIFEST, m.model_dump())


def _npy_header(f: Path) -> tuple[tuple[int, ...], np.dtype]:
    fmt = np.lib.format
    with open(f, "rb") as fh:
        version = fmt.read_magic(fh)
        read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, _, dtype = read(fh)
    return tuple(shape), dtype


def manifest_problem(root: Path, m: Manifest) -> str:
    """What makes manifest ``m`` disagree with itself or with the shard files under ``root``
    ("" when none): its own checksum; every shard path inside the store; each array's shards
    contiguous from item 0 (to ``n_items`` when complete) and numbered in item order; each
    file's item count, per-item shape and dtype as listed. Reads only the ``.npy`` headers."""
    where = root / MANIFEST
    if m.manifest_sha256 and m.manifest_sha256 != manifest_digest(m):
        return f"{where} was edited after it was written (its own checksum does not match)"
    for name, info in [*m.arrays.items(), *([("tokens", m.tokens)] if m.tokens else [])]:
        problem = _array_problem(root, name, info, m.n_items if m.complete else None)
        if problem:
            return problem
    return ""


def _array_problem(root: Path, name: str, info: ArrayInfo, n_items: int | None) -> str:
    where, top = root / MANIFEST, root.resolve()
    stop, index = 0, dict[Path, int]()  # shard files number 0, 1, ... in item order in each folder
    for s in sorted(info.shards, key=lambda s: s.start):
        f = (root / s.file).resolve()
        if Path(s.file).is_absolute() or ".." in Path(s.file).parts or top not in f.parents:
            return f"{where}: shard path {s.file!r} of {name} points outside the store"
        if s.start != stop or s.stop <= s.start:
            return (
                f"{where}: {name} has no shard for items {stop}..{s.start} "
                "(a dropped or moved shard entry)"
            )
        stop = s.stop
        k = index[f.parent] = index.get(f.parent, -1) + 1
        if re.fullmatch(r"shard_\d{5}\.npy", f.name) and f.name != f"shard_{k:05d}.npy":
            return (
                f"{where}: {name}'s items {s.start}..{s.stop} are listed in {s.file}, not "
                f"shard_{k:05d}.npy (shard entries swapped or reordered)"
            )
        if not f.exists():
            continue  # named by the checksum pass (or a resume collects it again)
        try:
            shape, dtype = _npy_header(f)
        except (ValueError, OSError) as e:
            return f"shard file {f} is not a readable .npy file ({e})"
        listed = (s.stop - s.start, *info.shape)
        if tuple(shape) != listed or str(dtype) != info.storage_dtype:
            return (
                f"shard file {f} holds {list(shape)} {dtype}; {where} lists items "
                f"{s.start}..{s.stop} of shape {info.shape} {info.storage_dtype} for {name}"
            )
    if n_items is not None and stop != n_items:
        return f"{where}: {name} covers items 0..{stop}, but the store has n_items={n_items}"
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

    def __init__(
        self,
        manifest: Manifest,
        tensors: dict[str, torch.Tensor] | None = None,
        tokens: torch.Tensor | None = None,
        path: str | Path | None = None,
    ):
        self.manifest = manifest
        self.path = Path(path) if path is not None else None
        self._tensors = dict(tensors or {})
        self._tokens = tokens

    # ------------------------------------------------------------------ open
    @classmethod
    def open(
        cls, path: str | Path, *, verify: bool = True, allow_incomplete: bool = False
    ) -> ActivationStore:
        """Open a store directory written by :func:`interp.collect` or :meth:`save`.

        ``verify=True`` (default) recomputes every shard's sha256 (reads all bytes once:
        instant for small stores, seconds per GB for large ones; pass ``verify=False``
        to skip). Raises :class:`StoreCorruptedError` naming a bad shard file, and
        ``ValueError`` for an unfinished collection unless ``allow_incomplete``.
        """
        path = Path(path)
        if not (path / MANIFEST).exists():
            raise FileNotFoundError(f"{path} is not an activation store (no {MANIFEST})")
        manifest = read_manifest(path)
        if not manifest.complete and not allow_incomplete:
            raise ValueError(
                f"store {path} is incomplete ({manifest.items_done()} of {manifest.n_items} "
                "items): run interp.collect again with the same arguments and out dir to resume, "
                "or open(..., allow_incomplete=True)"
            )
        problem = manifest_problem(path, manifest)  # cheap: the manifest and .npy headers only
        if problem:
            raise StoreCorruptedError(f"{problem}; re-collect into a new directory")
        store = cls(manifest, path=path)
        if verify:
            store.verify()
        return store

    def verify(self) -> None:
        """Check the manifest against itself and the shard files (:func:`manifest_problem`), then
        recompute every shard checksum; raise :class:`StoreCorruptedError` naming the bad file."""
        if self.path is None:
            return
        problem = manifest_problem(self.path, self.manifest)
        if problem:
            raise StoreCorruptedError(f"{problem}; re-collect into a new directory")
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
        """``[(start, stop), ...]`` of ``name``'s shards in item order (one for an in-memory
        store)."""
        if name not in self.manifest.arrays:
            raise unknown_name_error("hook name", name, self.hooks)
        if self.path is None:
            return [(0, len(self))]
        return [
            (s.start, s.stop)
            for s in sorted(self.manifest.arrays[name].shards, key=lambda s: s.start)
        ]

    def shard(self, name: str, index: int) -> torch.Tensor:
        """Shard ``index`` (in item order, as :meth:`shard_bounds`) of ``name``:
        ``[stop - start, ...]``, a memory map of that one file (the whole tensor for an in-memory
        store)."""
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
    def save(self, path: str | Path, *, shard_size: int | None = None) -> ActivationStore:
        """Write this store to directory ``path`` (must be new or empty); return the disk store."""
        path = Path(path)
        if path.exists() and any(path.iterdir()):
            raise ValueError(f"{path} exists and is not empty; choose a new directory")
        m = self.manifest
        n = len(self)
        size = max(1, shard_size or m.shard_size or n)
        arrays = {h: self._save_array(path, sanitize(h), self[h], size) for h in m.hooks}
        tokens = (
            self._save_array(path, TOKENS_DIR, self.tokens, size)
            if self.tokens is not None
            else None
        )
        new = m.model_copy(
            update={"arrays": arrays, "tokens": tokens, "shard_size": size, "complete": True}
        )
        write_manifest(path, new)
        return ActivationStore(new, path=path)

    @staticmethod
    def _save_array(root: Path, name: str, t: torch.Tensor, size: int) -> ArrayInfo:
        shards = []
        for k, a in enumerate(range(0, max(len(t), 1), size)):
            b = min(a + size, len(t))
            shards.append(write_shard(root, shard_file(name, k), t[a:b], a, b))
        return ArrayInfo(
            dir=name,
            shape=list(t.shape[1:]),
            dtype=torch_dtype_name(t.dtype),
            storage_dtype=storage_dtype_name(t.dtype),
            shards=shards,
        )

    def __repr__(self) -> str:
        where = str(self.path) if self.path is not None else "memory"
        shapes = ", ".join(
            f"{h}: {[len(self), *self.manifest.arrays[h].shape]} {self.manifest.arrays[h].dtype}"
            for h in self.hooks
        )
        return (
            f"ActivationStore({where}, model={self.manifest.model_id!r}, n={len(self)}, "
            f"positions={self.manifest.positions!r}, {{{shapes}}})"
        )


def read_manifest(path: Path) -> Manifest:
    """The :class:`Manifest` in ``path/manifest.json``; ``ValueError`` naming the file when it is
    not one of ours (another program's ``manifest.json``, another format version)."""
    from pydantic import ValidationError

    file = path / MANIFEST
    raw = read_json(file)
    if not isinstance(raw, dict) or "arrays" not in raw or "n_items" not in raw:
        raise ValueError(f"{file} is not an interp activation-store manifest")
    if raw.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{file}: format_version {raw.get('format_version')!r}, "
            f"this interp reads {FORMAT_VERSION}"
        )
    try:
        return Manifest.model_validate(raw)
    except ValidationError as e:
        first = e.errors()[0]
        raise ValueError(
            f"{file} is not a valid activation-store manifest: "
            f"{'.'.join(map(str, first['loc']))}: {first['msg']}"
        ) from None


def store_dir_problem(path: Path) -> str:
    """ "" when ``path`` is an activation store holding only files :func:`interp.collect` writes
    (its manifests and shards, and leftovers of interrupted writes), else why not."""
    try:
        m = read_manifest(path)
    except (ValueError, FileNotFoundError) as e:
        return f"is not an activation store ({e})"
    infos = [*m.arrays.values(), *([m.tokens] if m.tokens else [])]
    dirs = "|".join(re.escape(i.dir) for i in infos) or "(?!)"
    shard = r"shard_\d{5}\.npy"
    pat = re.compile(
        rf"(rank\d{{5}}/)?(manifest\.json|\.manifest\.json\.[^/]+\.tmp/manifest\.json"
        rf"|({dirs})/({shard}|\.{shard}\.[^/]+\.tmp/{shard}))"
    )
    extra = foreign_files(path, lambda rel: bool(pat.fullmatch(rel)))
    if extra:
        more = " ..." if len(extra) > 5 else ""
        return f"holds files interp did not write ({', '.join(extra[:5])}{more})"
    return ""


def remove_store(path: Path) -> None:
    """Delete a store directory: only one whose manifest is ours and that holds nothing but
    the files a collection writes (an empty directory is left in place); otherwise refuse."""
    if not path.exists() or not any(path.iterdir()):
        return
    problem = store_dir_problem(path)
    if problem:
        raise ValueError(f"{path} {problem}; refusing to delete it. Choose a new out directory")
    shutil.rmtree(path)
