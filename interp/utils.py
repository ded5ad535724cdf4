"""Shared helpers: device and dtype choice, seeding, atomic file writes, paths, labels, timing.

One device helper, one seeding helper, one atomic writer: everything imports these. The
module imports nothing from ``interp``, so any layer may use it (docs/architecture.md).
"""

from __future__ import annotations

import contextlib
import difflib
import gc
import hashlib
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

import platformdirs
from filelock import FileLock, Timeout

# torch, numpy and tqdm are imported inside the helpers that use them: every module imports this
# one, light entry points included (the CLI's start, the registries, the zoo's listing).

REPO_ROOT = Path(__file__).resolve().parents[1]  # the source checkout (experiments/, app/)


def cache_dir() -> Path:
    """Where trained zoo models live: ``$INTERP_CACHE``, else this user's cache folder
    (``platformdirs.user_cache_dir("interp")``, e.g. ``~/.cache/interp`` on Linux), never
    the installed package's folder."""
    path = Path(os.environ.get("INTERP_CACHE") or _user_dir("user_cache_dir"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def runs_dir() -> Path:
    """Where run directories go: ``$INTERP_RUNS``, else ``runs/`` in this user's data folder
    (``platformdirs.user_data_dir("interp")``, e.g. ``~/.local/share/interp/runs`` on Linux).
    ``make demo`` and ``make app`` set ``INTERP_RUNS=runs`` and ``INTERP_CACHE=data/cache`` in the
    source checkout."""
    return Path(os.environ.get("INTERP_RUNS") or Path(_user_dir("user_data_dir")) / "runs")


def _user_dir(kind: str) -> str:
    return getattr(platformdirs, kind)("interp", appauthor=False)


class ConfigError(ValueError):
    """A config value that only the loaded model shows to be wrong (e.g. longer than its context),
    or a model file that cannot serve. The CLI reports it like a validation error (exit 2), naming
    the field or file. Defined here so that models and tracing can raise it; ``interp.fields``
    re-exports it."""


def memory_bytes() -> int | None:
    """This machine's physical memory in bytes (None where the OS does not say)."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):  # not POSIX
        return None


def gb(n: float) -> str:
    return f"{n / 2**30:.1f} GB"


def check_fits(parts: dict[str, int], fix: str) -> None:
    """:class:`ConfigError` when the buffers ``parts`` (description -> bytes) that a run is about
    to allocate together exceed this machine's memory; ``fix`` says which setting to lower."""
    total, limit = sum(parts.values()), memory_bytes()
    if limit is not None and total > limit:
        shown = ", ".join(f"{k}: {gb(v)}" for k, v in parts.items())
        raise ConfigError(
            f"this would allocate {gb(total)} ({shown}); this machine has "
            f"{gb(limit)} of memory. {fix}"
        )


def resolve_device(device: Any = "auto"):
    """Return a ``torch.device``: "auto" picks cuda > mps > cpu."""
    import torch

    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"unknown device {device!r}: {e}") from None
    _check_available(dev)
    return dev


def _check_available(dev: Any) -> None:
    """``ValueError`` naming what this machine has when ``dev`` is not there (no CUDA build, no
    such GPU index, no MPS), instead of torch's assertion deep inside the first ``.to``."""
    import torch

    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            why = "a CPU-only build" if torch.version.cuda is None else "no GPU visible"
            raise ValueError(
                f"device {str(dev)!r}: this torch has no CUDA device ({why}); "
                "valid here: 'auto', 'cpu'"
            )
        if dev.index is not None and dev.index >= n:
            raise ValueError(
                f"device {str(dev)!r}: this machine has {n} CUDA device(s); "
                f"valid: cuda:0..cuda:{n - 1}"
            )
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(
                f"device {str(dev)!r}: MPS is not available here; valid here: 'auto', 'cpu'"
            )


_DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "float": "float32",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float64": "float64",
    "double": "float64",
}


def resolve_dtype(dtype: Any):
    """Accept a torch dtype, a string ("bf16", "float32", ...) or None."""
    import torch

    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    key = str(dtype).replace("torch.", "").lower()
    if key not in _DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; valid: {sorted(set(_DTYPES))}")
    return getattr(torch, _DTYPES[key])


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices) from one integer."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def close_matches(name: str, valid: Iterable[str], n: int = 5) -> list[str]:
    """The valid names closest to ``name`` (for error messages)."""
    valid = list(valid)
    matches = difflib.get_close_matches(name, valid, n=n, cutoff=0.5)
    if not matches:  # fall back to shared suffix/prefix pieces
        tail = name.split(".")[-1]
        matches = [v for v in valid if v.endswith(tail)][:n]
    return matches


def unknown_name_error(kind: str, name: str, valid: Iterable[str]) -> KeyError:
    valid = list(valid)
    close = close_matches(name, valid)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    shown = ", ".join(valid[:12]) + (" ..." if len(valid) > 12 else "")
    return KeyError(f"unknown {kind} {name!r}.{hint} Valid {kind}s ({len(valid)}): {shown}")


_T = TypeVar("_T")
_F = TypeVar("_F", bound=Callable[..., Any])


class Registry(Generic[_T]):
    """The members of one method family by name (steering methods, circuit scorers, knockout
    modes, SAE-code head scorers): :meth:`add` refuses a taken name, :meth:`get` answers an
    unknown one with the close and the valid names. Each family's module exposes
    ``register``, ``names`` and ``get`` from its registry."""

    def __init__(self, kind: str, *, ordered: bool = False) -> None:
        self.kind = kind  # what a member is called in messages ("knockout mode")
        self.ordered = ordered  # names() in registration order (else sorted)
        self._items: dict[str, _T] = {}

    def add(self, name: str, item: _T) -> _T:
        """Register ``item`` as ``name`` (``ValueError`` if the name is taken)."""
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} registered twice")
        self._items[name] = item
        return item

    def register(self, name: str) -> Callable[[_F], _F]:
        """Decorator: register the decorated function itself as ``name``."""

        def deco(fn: _F) -> _F:
            self.add(name, fn)  # type: ignore[arg-type]  # a family's members are its functions
            return fn

        return deco

    def names(self) -> list[str]:
        """The registered names (sorted, or in registration order when ``ordered``)."""
        return list(self._items) if self.ordered else sorted(self._items)

    def get(self, name: str) -> _T:
        """The member registered as ``name`` (``KeyError`` listing close and valid names)."""
        if name not in self._items:
            raise unknown_name_error(self.kind, name, self.names())
        return self._items[name]

    def items(self) -> list[tuple[str, _T]]:
        """``(name, member)`` pairs in :meth:`names` order."""
        return [(n, self._items[n]) for n in self.names()]


@contextlib.contextmanager
def atomic_path(
    path: str | os.PathLike, *, replace: bool = True, owned: Callable[[Path], str] | None = None
) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place on success.

    Works for files and directories. A crash leaves only a hidden ``.tmp`` sibling,
    never a half-written ``path``. With ``replace=False`` an existing ``path`` is never
    touched: the rename fails with ``FileExistsError`` instead (run directories use this,
    so one run can never delete another).

    An existing *directory* is replaced only when it is empty or ``owned(path)`` returns "" (the
    caller's proof that interp wrote it and nothing else lives there); otherwise, or without
    ``owned``, it is left as it is and ``FileExistsError`` names it and why. The old tree
    is moved aside, the new one renamed in, and only then the old one deleted.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    target = tmp / path.name
    try:
        yield target
        if not replace:
            if path.exists() or path.is_symlink():
                raise FileExistsError(f"{path} exists already; it is left as it is")
            os.rename(target, path)  # a directory: fails rather than replace a non-empty one
        elif path.is_dir() and not path.is_symlink():
            _replace_owned_dir(path, target, tmp / ".old", owned)
        else:
            os.replace(target, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _replace_owned_dir(
    path: Path, new: Path, aside: Path, owned: Callable[[Path], str] | None
) -> None:
    empty = not any(path.iterdir())  # nothing to lose
    why = "" if empty else "nothing proves interp wrote it" if owned is None else owned(path)
    if why:
        raise FileExistsError(
            f"{path} exists and {why}; it was left as it is. "
            "Choose a new path, or move it away yourself"
        )
    os.rename(path, aside)
    try:
        os.rename(new, path)
    except BaseException:
        os.rename(aside, path)  # put the old tree back
        raise


def foreign_files(root: Path, allowed: Callable[[str], bool]) -> list[str]:
    """Files (and links) under ``root`` whose relative POSIX path ``allowed`` rejects, sorted;
    what :func:`atomic_path` callers use to prove a directory holds only what interp writes."""
    out = []
    for p in root.rglob("*"):
        if p.is_dir() and not p.is_symlink():
            continue
        rel = p.relative_to(root).as_posix()
        if not allowed(rel):
            out.append(rel)
    return sorted(out)


def owned_dir_problem(
    root: Path, what: str, allowed: Callable[[str], bool], marker_ok: Callable[[Path], bool]
) -> str:
    """ "" when ``root`` is an interp ``what`` (``marker_ok``) holding only ``allowed`` files,
    else why not (for :func:`atomic_path`'s ``owned``)."""
    try:
        if not marker_ok(root):
            return f"is not {what} written by interp"
    except (OSError, ValueError, TypeError, AttributeError, KeyError):
        return f"is not {what} written by interp"
    extra = foreign_files(root, allowed)
    if extra:
        shown = ", ".join(extra[:5]) + (" ..." if len(extra) > 5 else "")
        return f"holds files interp did not write ({shown})"
    return ""


LOCK_TIMEOUT_S = 6 * 3600  # longer than any zoo build; INTERP_LOCK_TIMEOUT overrides


@contextlib.contextmanager
def file_lock(
    path: str | os.PathLike, *, timeout: float | None = None, what: str = ""
) -> Iterator[None]:
    """An exclusive lock on ``path`` (created if missing) for the ``with`` block: a second process
    waits until the first is done, at most ``timeout`` seconds (default ``$INTERP_LOCK_TIMEOUT`` or
    :data:`LOCK_TIMEOUT_S`), then raises ``TimeoutError`` naming the lock and ``what`` it guards.
    Uses ``filelock`` (an OS lock, released if the holder dies; works on Windows too)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if timeout is None:
        timeout = float(os.environ.get("INTERP_LOCK_TIMEOUT", LOCK_TIMEOUT_S))
    lock = FileLock(str(path), timeout=timeout)
    try:
        lock.acquire()
    except Timeout:
        guards = f" ({what})" if what else ""
        raise TimeoutError(
            f"waited {timeout:.0f} s for the lock {path}{guards}: another process "
            "holds it. Wait for it to finish, or stop it; set INTERP_LOCK_TIMEOUT "
            "to wait longer"
        ) from None
    try:
        yield
    finally:
        lock.release()


def clean_stale_tmp(directory: str | os.PathLike, max_age_s: float = 24 * 3600) -> list[Path]:
    """Remove hidden ``.*.tmp`` siblings that crashed writes left in ``directory`` more than
    ``max_age_s`` ago (a write under way is younger); return what was removed."""
    directory = Path(directory)
    removed = []
    if not directory.is_dir():
        return removed
    now = time.time()
    for p in directory.glob(".*.tmp"):
        try:
            if now - p.stat().st_mtime > max_age_s:
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink()
                removed.append(p)
        except FileNotFoundError:  # another process cleaned it first
            continue
    return removed


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write JSON atomically (write a sibling, then rename)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, default=_json_default))


def read_object(path: str | os.PathLike) -> dict:
    """A JSON file that must hold an object; ``ValueError`` naming the file otherwise."""
    obj = read_json(path)
    if not isinstance(obj, dict):
        raise ValueError(f"{path} is damaged: a JSON {type(obj).__name__}, not an object")
    return obj


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} does not exist") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e}); the file may be corrupted") from None


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    # a tensor can only exist once torch is imported; never import it here
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(obj, torch.Tensor):
        return obj.detach().cpu().tolist()
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")


def config_hash(obj: Any, n: int = 10) -> str:
    """Stable short hash of a JSON-able object (recipe/config identity)."""
    blob = json.dumps(obj, sort_keys=True, default=_json_default).encode()
    return hashlib.sha256(blob).hexdigest()[:n]


def progress(iterable=None, *, total=None, desc=None, disable=None, **kw):
    """tqdm progress bar, quiet when INTERP_QUIET=1."""
    from tqdm.auto import tqdm

    if disable is None:
        disable = os.environ.get("INTERP_QUIET") == "1"
    return tqdm(iterable, total=total, desc=desc, disable=disable, dynamic_ncols=True, **kw)


def seed_label(values: Sequence[Any]) -> str:
    """``[0, 1, 2]`` -> ``"0-2"``; ``[0, 3]`` -> ``"0,3"``."""
    v = list(values)
    if len(v) > 1 and v == list(range(v[0], v[0] + len(v))):
        return f"{v[0]}-{v[-1]}"
    return ",".join(map(str, v))


# ----------------------------------------------------------------- timing
def interleaved(
    variants: dict[str, Callable[[], Any]], repeats: int, warmup: int = 1
) -> dict[str, list[float]]:
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
    return float(statistics.median(x / y for x, y in zip(times[a], times[b], strict=True)))


def check_disk(folder: Path, nbytes: int, what: str, fix: str) -> None:
    """:class:`ConfigError` when ``folder``'s file system has less free space than ``nbytes``."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:  # the folder does not exist yet, or the OS does not say: the write will tell
        return
    if nbytes > free:
        raise ConfigError(f"{what} needs {gb(nbytes)} on disk; {folder} has {gb(free)} free. {fix}")
