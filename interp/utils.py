"""Shared helpers: device and dtype choice, seeding, atomic file writes, paths, labels, timing.

One device helper, one seeding helper, one atomic writer: everything imports these. The
module imports nothing from ``interp``, so any layer may use it (docs/architecture.md).
"""

from __future__ import annotations

import contextlib
import difflib
import gc
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

REPO_ROOT = Path(__file__).resolve().parents[1]


def cache_dir() -> Path:
    """Where trained zoo models live: ``$INTERP_CACHE`` or ``<repo>/data/cache``."""
    path = Path(os.environ.get("INTERP_CACHE", REPO_ROOT / "data" / "cache"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def runs_dir() -> Path:
    """Where run directories go: ``$INTERP_RUNS`` or ``<repo>/runs``."""
    return Path(os.environ.get("INTERP_RUNS", REPO_ROOT / "runs"))


def resolve_device(device: Any = "auto"):
    """Return a ``torch.device``: "auto" picks cuda > mps > cpu."""
    import torch

    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(device)


_DTYPES = {
    "float32": "float32", "fp32": "float32", "float": "float32",
    "float16": "float16", "fp16": "float16", "half": "float16",
    "bfloat16": "bfloat16", "bf16": "bfloat16",
    "float64": "float64", "double": "float64",
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


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, replace: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place on success.

    Works for files and directories. A crash leaves only a hidden ``.tmp`` sibling,
    never a half-written ``path``. With ``replace=False`` an existing ``path`` is never
    touched: the rename fails with ``FileExistsError`` instead (run directories use this,
    so one run can never delete another).
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
        else:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            os.replace(target, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def file_lock(path: str | os.PathLike) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (created if missing), held for the ``with`` block:
    a second process waits until the first is done. No-op where ``fcntl`` is missing (Windows)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on the machines we test
        yield
        return
    with open(path, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


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
    torch = sys.modules.get("torch")  # a tensor can only exist once torch is imported; never import it here
    if torch is not None and isinstance(obj, torch.Tensor):
        return obj.detach().cpu().tolist()
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")


def config_hash(obj: Any, n: int = 10) -> str:
    """Stable short hash of a JSON-able object (recipe/config identity)."""
    import hashlib

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
def interleaved(variants: dict[str, Callable[[], Any]], repeats: int, warmup: int = 1
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
    return float(statistics.median(x / y for x, y in zip(times[a], times[b])))
