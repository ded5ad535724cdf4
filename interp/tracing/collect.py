"""``collect``: stream a dataset through a model in batches, keeping only named activations.

::

    store = interp.collect(m, tokens, hooks=["blocks.0.hook_resid_post", "blocks.0.attn.hook_z"])
    store["blocks.0.hook_resid_post"]          # [N, T, d_model]
    store = interp.collect(m, texts, hooks=[...], positions="last", out="acts/run1")

How it stays fast and small (see PERFORMANCE.md): hooks only on the named activations
(``Model.hooked``); the forward ends (``StopForward``) right after the requested hook
that fires last, unless a per-step (RNN) hook is requested; position selection and the
dtype cast run on the model's device before the copy; in memory, one preallocated
``[N, ...]`` tensor per hook (pinned on CUDA, non-blocking copies); to disk, one reused
shard buffer per hook, each full shard written atomically as ``.npy`` with its sha256
and the manifest rewritten after it, so an interrupted run resumes from the first
missing shard. On out-of-memory the batch is halved and collection goes on.
"""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from interp.tracing.model import Model, StopForward
from interp.tracing.store import (
    MANIFEST, TOKENS_DIR, ActivationStore, ArrayInfo, Manifest, remove_store, sanitize, shard_file,
    storage_dtype_name, to_numpy, torch_dtype_name, write_shard,
)
from interp.utils import progress, read_json, resolve_device, resolve_dtype, write_json

SHARD_BYTES = 256 * 2**20  # default shard size: about this many bytes (all hooks together)


def collect(
    m: Model,
    dataset: Any,
    hooks: Sequence[str] | str,
    *,
    batch_size: int | str = "auto",
    device: Any = "auto",
    dtype: Any = None,
    positions: Any = "all",
    out: str | Path | None = None,
    shard_size: int | None = None,
    lengths: torch.Tensor | Sequence[int] | None = None,
    overwrite: bool = False,
) -> ActivationStore:
    """Run ``m`` over ``dataset`` in batches; return the named activations as a store.

    Args:
        m: a :class:`~interp.tracing.model.Model`.
        dataset: token ids ``LongTensor [N, T]``; a list of strings (tokenised up front
            with ``m.prepare``, right-padded to the longest text); vectors ``[N, T, d]``
            (RNNs with vector input, or any tensor the module takes, ``[N, ...]``); or an
            iterable of such batches (materialised and concatenated on the CPU: inputs
            are small next to activations; tensor batches must share their shape).
        hooks: hook names (``m.hook_names``).
        batch_size: an int, or ``"auto"``: start at ``min(N, 64)`` (256 on CUDA) and halve
            on out-of-memory.
        device: ``"auto"`` runs where the model already is; any other value
            (``"cuda"``, ``"cpu"``, ...) moves the model there first (a side effect).
        dtype: cast activations before storing (``torch.float16``, ``"bf16"``, ...).
        positions: which positions to keep, from dim 1 (query dim 2 for
            ``hook_pattern``/``hook_attn_scores``): ``"all"`` -> ``[N, T, ...]``; a
            ``slice`` -> ``[N, len, ...]``; an int -> ``[N, ...]``; ``"last"`` -> ``[N, ...]``,
            the last non-pad position; ``"mean"`` -> ``[N, ...]``, mean over non-pad positions.
            Padding is known from ``lengths``, or for text input from trailing
            ``tokenizer.pad_token_id`` tokens; otherwise every position counts.
        out: a directory: write a sharded store there (resuming an interrupted one).
        shard_size: items per shard on disk (default: about 256 MiB per shard).
        lengths: ``[N]`` valid (unpadded) length of each item, for right-padded tokens.
        overwrite: replace an existing store in ``out`` instead of resuming it.

    Returns:
        An :class:`ActivationStore`; ``store[name]`` is ``[N, ...]`` as above.
    """
    hooks = [hooks] if isinstance(hooks, str) else list(dict.fromkeys(hooks))
    if not hooks:
        raise ValueError("collect needs at least one hook name (see m.hook_names)")
    m.check_names(hooks)
    pos_key = _positions_key(positions)
    dtype = resolve_dtype(dtype)
    if device is None or device == "auto":
        dev = m.device
    else:
        dev = resolve_device(device)
        m.to(dev)
    x, lens = _prepare_dataset(m, dataset, lengths)
    n = len(x)
    if n == 0:
        raise ValueError("dataset is empty")
    pin = dev.type == "cuda"
    ident = dict(
        model_id=str(m.model_id), hooks=hooks, positions=pos_key,
        dtype=torch_dtype_name(dtype) if dtype is not None else None, n_items=n,
        n_tokens=_n_tokens(x, lens), dataset_sha256=_fingerprint(x, lens),
    )
    tokens = x if not x.dtype.is_floating_point else None
    if out is None:
        sink: _Sink = _MemorySink(ident, tokens, pin)
    else:
        sink = _DiskSink(Path(out), ident, tokens, pin, shard_size, overwrite)
        if sink.done is not None:
            return sink.done

    order = {name: i for i, name in enumerate(m.hook_names)}
    ordered = sorted(hooks, key=order.__getitem__)  # the stop hook is registered last
    per_step = [h for h in hooks if m.backend == "tl" and getattr(m.module.hook_dict[h], "per_step", False)]
    stop_after = ordered[-1] if (m.backend == "tl" and not per_step) else None
    if lens is not None:
        lens = lens.to(dev)

    bs = int(batch_size) if batch_size != "auto" else min(n, 256 if pin else 64)
    if bs < 1:
        raise ValueError(f"batch_size must be >= 1 or 'auto', got {batch_size!r}")
    i = sink.start
    acts: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.no_grad())
        if m.backend == "tl":
            stack.enter_context(m.hooked(ordered, store=acts, stop_after=stop_after))
        bar = stack.enter_context(progress(total=n, initial=i, desc=f"collect {len(hooks)} hooks", unit="item"))
        while i < n:
            k = min(bs, n - i)
            try:
                raw = _run_batch(m, x[i:i + k].to(dev, non_blocking=pin), hooks, per_step, acts)
                batch = {h: _reduce(raw[h], h, positions, None if lens is None else lens[i:i + k], dtype)
                         for h in hooks}
            except Exception as e:  # noqa: BLE001 - only out-of-memory is handled
                if not _is_oom(e) or k == 1:
                    raise
                acts.clear()
                bs = max(1, k // 2)
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                continue
            raw = None
            acts.clear()
            sink.put(i, batch)
            i += k
            bar.update(k)
    return sink.finish()


# ---------------------------------------------------------------- batches
def _run_batch(m: Model, xb: torch.Tensor, hooks: list[str], per_step: list[str], acts: dict) -> dict:
    if m.backend != "tl":
        from interp.tracing.trace import trace

        _, got = trace(m, xb, capture=hooks)
    else:
        acts.clear()
        try:
            m.module(xb)
        except StopForward:
            pass
        got = dict(acts)
        for h in per_step:  # per-step hook: [batch, ...] x T -> [batch, T, ...]
            got[h] = torch.stack(got[h], dim=1)
    for h in hooks:
        if h not in got:
            raise RuntimeError(f"hook {h!r} did not fire during the forward pass")
        if not isinstance(got[h], torch.Tensor):
            raise TypeError(f"hook {h!r} gave a {type(got[h]).__name__}, not a tensor; capture a tensor-valued hook")
    return got


def _pos_dim(name: str) -> int:
    return 2 if name.endswith(("hook_pattern", "hook_attn_scores")) else 1


def _reduce(a: torch.Tensor, name: str, positions: Any, lens: torch.Tensor | None, dtype) -> torch.Tensor:
    """Select positions of ``a`` ``[B, T, ...]`` (on its device) and cast to ``dtype``."""
    if positions != "all":
        pd = _pos_dim(name)
        if a.ndim <= pd:
            raise ValueError(f"{name} has shape {tuple(a.shape)}: no position dim {pd} for positions={positions!r}")
        a = a.movedim(pd, 1)
        B, T = a.shape[:2]
        if isinstance(positions, slice):
            a = a[:, positions].movedim(1, pd)
        elif isinstance(positions, int):
            a = a[:, positions]
        elif positions == "last":
            idx = torch.full((B,), T - 1, device=a.device) if lens is None else (lens - 1).clamp(0, T - 1)
            a = a[torch.arange(B, device=a.device), idx]
        else:  # mean, over valid positions; accumulate low precision in float32
            src = a.float() if a.dtype in (torch.float16, torch.bfloat16) else a
            if lens is None:
                red = src.mean(1)
            else:
                mask = (torch.arange(T, device=a.device)[None] < lens[:, None]).to(src.dtype)
                mask = mask.view(B, T, *([1] * (a.ndim - 2)))
                red = (src * mask).sum(1) / lens.clamp(min=1).to(src.dtype).view(B, *([1] * (a.ndim - 2)))
            a = red.to(a.dtype)
    if dtype is not None:
        a = a.to(dtype)
    return a.contiguous()


def _positions_key(p: Any) -> str:
    if isinstance(p, str) and p in ("all", "last", "mean"):
        return p
    if isinstance(p, int) and not isinstance(p, bool):
        return str(p)
    if isinstance(p, slice):
        return f"slice({p.start}, {p.stop}, {p.step})"
    raise ValueError(f"positions must be 'all', 'last', 'mean', an int or a slice; got {p!r}")


def _is_oom(e: BaseException) -> bool:
    oom = getattr(torch.cuda, "OutOfMemoryError", ())
    return (bool(oom) and isinstance(e, oom)) or (isinstance(e, RuntimeError) and "out of memory" in str(e))


# ---------------------------------------------------------------- dataset
def _prepare_dataset(m: Model, dataset: Any, lengths: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Inputs ``[N, ...]`` on the CPU, and valid lengths ``[N]`` (or None: no padding known)."""
    text = False
    if isinstance(dataset, str):
        dataset = [dataset]
    if isinstance(dataset, np.ndarray):
        dataset = torch.from_numpy(dataset)
    if not isinstance(dataset, torch.Tensor) and not _is_texts(dataset):
        items = list(dataset) if isinstance(dataset, Iterable) else [dataset]
        if items and all(_is_texts(b) or isinstance(b, str) for b in items):
            dataset = [t for b in items for t in ([b] if isinstance(b, str) else b)]
        elif items and all(isinstance(b, torch.Tensor) for b in items):
            shapes = {tuple(b.shape[1:]) for b in items}
            if len(shapes) > 1:
                raise ValueError(f"dataset batches have different shapes {sorted(shapes)}; pad them to one length")
            dataset = torch.cat([b.cpu() for b in items])
        else:
            dataset = m.prepare(items)  # e.g. a list of token-id lists
    if _is_texts(dataset):
        text = True
        x = m.prepare(list(dataset))
    else:
        x = dataset
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"collect takes token ids, texts or tensors; got {type(dataset).__name__}")
    x = x.cpu().contiguous()
    if lengths is not None:
        lens = torch.as_tensor(lengths, dtype=torch.long).cpu()
        if lens.shape != (len(x),):
            raise ValueError(f"lengths must have shape [{len(x)}], got {tuple(lens.shape)}")
        return x, lens
    if text and x.ndim == 2:
        pad = getattr(m.tokenizer, "pad_token_id", None)
        if pad is not None and bool((x[:, -1] == pad).any()):
            # valid length = 1 + last index that is not a pad token (right padding)
            nonpad = (x != pad).long() * torch.arange(1, x.shape[1] + 1)
            return x, nonpad.max(1).values.clamp(min=1)
    return x, None


def _is_texts(d: Any) -> bool:
    return isinstance(d, (list, tuple)) and len(d) > 0 and all(isinstance(t, str) for t in d)


def _n_tokens(x: torch.Tensor, lens: torch.Tensor | None) -> int:
    if lens is not None:
        return int(lens.sum())
    return len(x) * (x.shape[1] if x.ndim >= 2 else 1)


def _fingerprint(x: torch.Tensor, lens: torch.Tensor | None) -> str:
    h = hashlib.sha256(str((tuple(x.shape), str(x.dtype))).encode())
    h.update(memoryview(to_numpy(x).reshape(-1).view(np.uint8)))
    if lens is not None:
        h.update(lens.numpy().tobytes())
    return h.hexdigest()


# ------------------------------------------------------------------ sinks
class _Sink:
    start = 0

    def __init__(self, ident: dict, tokens: torch.Tensor | None, pin: bool):
        self.ident, self.tokens, self.pin = ident, tokens, pin
        self.bufs: dict[str, torch.Tensor] = {}

    def _alloc(self, rows: int, batch: dict[str, torch.Tensor]) -> None:
        self.bufs = {h: torch.empty((rows, *a.shape[1:]), dtype=a.dtype, pin_memory=self.pin)
                     for h, a in batch.items()}

    def _sync(self) -> None:
        if self.pin:
            torch.cuda.synchronize()

    def _arrays(self, shapes: dict[str, tuple], dtypes: dict[str, torch.dtype]) -> dict[str, ArrayInfo]:
        dirs = [sanitize(h) for h in self.ident["hooks"]]
        if len(set(dirs)) < len(dirs) or TOKENS_DIR in dirs:
            raise ValueError(f"hook names {self.ident['hooks']} map to clashing directories {dirs}")
        return {h: ArrayInfo(dir=sanitize(h), shape=list(shapes[h]), dtype=torch_dtype_name(dtypes[h]),
                             storage_dtype=storage_dtype_name(dtypes[h])) for h in self.ident["hooks"]}

    def _tokens_info(self) -> ArrayInfo | None:
        t = self.tokens
        if t is None:
            return None
        return ArrayInfo(dir=TOKENS_DIR, shape=list(t.shape[1:]), dtype=torch_dtype_name(t.dtype),
                         storage_dtype=storage_dtype_name(t.dtype))


class _MemorySink(_Sink):
    """Fills one preallocated ``[N, ...]`` tensor per hook."""

    def put(self, i: int, batch: dict[str, torch.Tensor]) -> None:
        if not self.bufs:
            self._alloc(self.ident["n_items"], batch)
        k = next(iter(batch.values())).shape[0]
        for h, a in batch.items():
            self.bufs[h][i:i + k].copy_(a, non_blocking=self.pin)

    def finish(self) -> ActivationStore:
        self._sync()
        arrays = self._arrays({h: b.shape[1:] for h, b in self.bufs.items()},
                              {h: b.dtype for h, b in self.bufs.items()})
        manifest = Manifest(**self.ident, arrays=arrays, tokens=self._tokens_info(), shard_size=self.ident["n_items"], complete=True)
        return ActivationStore(manifest, tensors=self.bufs, tokens=self.tokens)


class _DiskSink(_Sink):
    """Fills one shard buffer per hook; writes each full shard and the manifest atomically."""

    def __init__(self, root: Path, ident: dict, tokens, pin: bool, shard_size: int | None, overwrite: bool):
        super().__init__(ident, tokens, pin)
        self.root, self.shard_size, self.done = root, shard_size, None
        if shard_size is not None and shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, got {shard_size}")
        self.manifest: Manifest | None = None
        self.filled = 0
        if overwrite:
            remove_store(root)
        if (root / MANIFEST).exists():
            old = Manifest.model_validate(read_json(root / MANIFEST))
            self._check_same(old)
            if old.complete:
                self.done = ActivationStore(old, path=root)
                return
            self.manifest = old
            self.shard_size = old.shard_size
            self.start = old.items_done()
            for info in self._infos():  # drop anything past the resume point
                info.shards = [s for s in info.shards if s.stop <= self.start]
        elif root.exists() and any(p.is_file() for p in root.rglob("*")):
            raise ValueError(f"{root} holds files but no {MANIFEST}: not an activation store. "
                             "Choose a new directory.")

    def _check_same(self, old: Manifest) -> None:
        new = dict(self.ident, hooks=sorted(self.ident["hooks"]))
        had = dict(old.model_dump(include=set(self.ident)), hooks=sorted(old.hooks))
        if self.shard_size is not None:
            new["shard_size"], had["shard_size"] = self.shard_size, old.shard_size
        diff = [f"{k}: store has {had[k]!r}, this call has {new[k]!r}" for k in new if had.get(k) != new[k]]
        if diff:
            raise ValueError(f"{self.root} already holds a different activation store ("
                             + "; ".join(d if not d.startswith("dataset_sha256") else "the dataset differs"
                                         for d in diff)
                             + "). Use a new out directory, or overwrite=True to replace it.")

    def _infos(self) -> list[ArrayInfo]:
        m = self.manifest
        return [*m.arrays.values(), *([m.tokens] if m.tokens is not None else [])]

    def _begin(self, batch: dict[str, torch.Tensor]) -> None:
        if self.manifest is None:
            if self.shard_size is None:
                item = sum(a[0].numel() * a.element_size() for a in batch.values())
                self.shard_size = int(max(1, min(self.ident["n_items"], SHARD_BYTES // max(item, 1))))
            arrays = self._arrays({h: a.shape[1:] for h, a in batch.items()}, {h: a.dtype for h, a in batch.items()})
            self.manifest = Manifest(**self.ident, arrays=arrays, tokens=self._tokens_info(),
                                     shard_size=self.shard_size)
            self.root.mkdir(parents=True, exist_ok=True)
            write_json(self.root / MANIFEST, self.manifest.model_dump())
        for h, a in batch.items():
            info = self.manifest.arrays[h]
            if list(a.shape[1:]) != info.shape or torch_dtype_name(a.dtype) != info.dtype:
                raise ValueError(f"{h}: got items {list(a.shape[1:])} {a.dtype}, the store in {self.root} "
                                 f"has {info.shape} {info.dtype}")
        self._alloc(min(self.shard_size, self.ident["n_items"]), batch)

    def put(self, i: int, batch: dict[str, torch.Tensor]) -> None:
        if not self.bufs:
            self._begin(batch)
        size, n = self.shard_size, self.ident["n_items"]
        k = next(iter(batch.values())).shape[0]
        off = 0
        while off < k:  # a batch may cross shard boundaries
            item = i + off
            s = item // size
            a, b = s * size, min((s + 1) * size, n)
            take = min(k - off, b - item)
            for h, t in batch.items():
                self.bufs[h][item - a:item - a + take].copy_(t[off:off + take], non_blocking=self.pin)
            off += take
            if item + take == b:
                self._flush(s)

    def _flush(self, s: int) -> None:
        """Write shard ``s`` of every array, then the manifest (which makes the shard count)."""
        self._sync()
        size, n = self.shard_size, self.ident["n_items"]
        a, b = s * size, min((s + 1) * size, n)
        for h, info in self.manifest.arrays.items():
            info.shards.append(write_shard(self.root, shard_file(info.dir, s), self.bufs[h][:b - a], a, b))
        if self.manifest.tokens is not None:
            info = self.manifest.tokens
            info.shards.append(write_shard(self.root, shard_file(info.dir, s), self.tokens[a:b], a, b))
        write_json(self.root / MANIFEST, self.manifest.model_dump())

    def finish(self) -> ActivationStore:
        self.manifest.complete = True
        write_json(self.root / MANIFEST, self.manifest.model_dump())
        return ActivationStore(self.manifest, path=self.root)
