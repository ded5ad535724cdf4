"""``collect``: stream a dataset through a model in batches, keeping only named activations.

::

    store = interp.collect(m, tokens, hooks=["blocks.0.hook_resid_post", "blocks.0.attn.hook_z"])
    store["blocks.0.hook_resid_post"]          # [N, T, d_model]
    store = interp.collect(m, texts, hooks=[...], positions="last", out="acts/run1")

How it stays fast and small (targets and measurements: docs/performance.md,
``interp bench``):

- Plain torch hooks on plain modules. A TransformerLens bridge (a zoo ``NativeModel`` or
  a Hugging Face model) runs its own module tree with the bridge wrappers peeled off (same
  parameters), and each requested TransformerLens name is read off the module that
  computes it (:mod:`interp.tracing.adapters`: the plain-data :data:`ADAPTERS` for zoo
  models; for Hugging Face models routes read off the bridge and checked once against its
  hooks). Our ``HookedRootModule`` RNNs get plain hooks on their ``HookPoint`` modules. A
  name without a route, or any other model, uses the bridge's own hooks (``Model.hooked``)
  or nnsight; so does a model with an SAE spliced in (``interp.sae.splice``), whose SAE
  hook names only the bridge path computes.
- The forward ends (``StopForward``) right after the requested activation that comes
  last, unless that one fires once per time step.
- Position selection and the dtype cast run inside the hook, on the model's device,
  before anything is copied or held.
- In memory: one preallocated ``[N, ...]`` tensor per hook, filled from inside the hooks
  on the CPU (nothing of a batch is held past the layer that made it). To disk: shard
  buffers per hook, double buffered; a full shard is written (atomically, with its sha256, then the
  manifest) by a background thread while the next shard fills, so an interrupted run
  resumes from the first missing shard.
- On CUDA: activations go to the host through two pinned staging buffers, copied on a
  side stream, so batch ``i``'s copy overlaps batch ``i+1``'s forward; ``autocast=``
  runs the forward in bf16/fp16; on out-of-memory the batch is halved and collection
  goes on.
- Multi-process (``torchrun``): :mod:`interp.tracing.distributed`.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from interp.tracing.model import Model
from interp.tracing.runners import (
    PlainRunner,
    Reducer,
    Runner,
    is_oom,
    make_runner,
    positions_key,
    run_batch,
)
from interp.tracing.sinks import DiskSink, HostTransfer, MemorySink, Sink
from interp.tracing.store import (
    ActivationStore,
    to_numpy,
    torch_dtype_name,
)
from interp.utils import progress, resolve_device, resolve_dtype


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
    autocast: Any = None,
    edits: dict[str, Any] | None = None,
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
            Padding is known from ``lengths``, or for text input from the tokenizer (each
            text's own token count, never guessed from pad ids); otherwise every position counts.
        out: a directory: write a sharded store there (resuming an interrupted one).
        shard_size: items per shard on disk (default: about 256 MiB per shard).
        lengths: ``[N]`` valid (unpadded) length of each item, for right-padded tokens.
        overwrite: replace an existing store in ``out`` instead of resuming it.
        autocast: run the forward under ``torch.autocast`` with this dtype ("bf16", ...).
        edits: ``{hook name: fn}`` applied in every forward, as in :func:`interp.trace` (for
            example a steering vector added upstream of the hooks collected). Runs on the
            bridge's own hooks (or nnsight); a store on disk records the edited names, not the
            functions, so resuming with different edit functions is not detected.

    Returns:
        An :class:`ActivationStore`; ``store[name]`` is ``[N, ...]`` as above.
    """
    hooks = [hooks] if isinstance(hooks, str) else list(dict.fromkeys(hooks))
    if not hooks:
        raise ValueError("collect needs at least one hook name (see m.hook_names)")
    edits = dict(edits or {})
    m.check_names([*hooks, *edits])
    dtype, autocast = _float_dtype(dtype), resolve_dtype(autocast)
    if device is None or device == "auto":
        dev = m.device
    else:
        dev = resolve_device(device)
        m.to(dev)
    x, lens = _checked_dataset(m, dataset, lengths, positions)
    n, cuda = len(x), dev.type == "cuda"
    ident = _identity(m, hooks, positions, dtype, x, lens, on_disk=out is not None, edits=edits)
    sink = _open_sink(out, ident, x, shard_size, overwrite)
    if isinstance(sink, DiskSink) and sink.done is not None:  # finished before: nothing to run
        return sink.done
    x = x.pin_memory() if cuda else x
    reduce = Reducer(positions, dtype, None if lens is None else lens.to(dev))
    bs = _first_batch_size(batch_size, n, cuda)
    runner = make_runner(m, hooks, reduce, edits)
    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.no_grad())
        if autocast is not None:
            stack.enter_context(torch.autocast(dev.type, dtype=autocast))
        stack.callback(sink.close)
        stack.enter_context(runner)
        _run_batches(m, x, dev, runner, reduce, sink, bs, len(hooks), stack)
    return sink.finish()


def _open_sink(
    out: str | Path | None,
    ident: dict[str, Any],
    x: torch.Tensor,
    shard_size: int | None,
    overwrite: bool,
) -> Sink:
    """Where the activations go: memory, or a (possibly resumed) sharded store in ``out``. Token
    inputs are kept with the store; vector inputs are not."""
    tokens = x if not x.dtype.is_floating_point else None
    if out is None:
        return MemorySink(ident, tokens)
    return DiskSink(Path(out), ident, tokens, shard_size, overwrite)


def _float_dtype(dtype: Any) -> torch.dtype | None:
    """``dtype`` resolved; an integer dtype is refused (the cast would truncate every value)."""
    resolved: torch.dtype | None = resolve_dtype(dtype)
    if resolved is not None and not resolved.is_floating_point:
        raise ValueError(
            f"dtype={resolved} would truncate activations; valid: float32, float16, bfloat16, "
            "float64"
        )
    return resolved


def _checked_dataset(
    m: Model, dataset: Any, lengths: Any, positions: Any
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(inputs ``[N, ...]``, lengths ``[N]`` or None) of ``dataset``, checked: not empty, token
    ids within the vocabulary, ``positions`` valid for them."""
    x, lens = prepare_dataset(m, dataset, lengths)
    if len(x) == 0:
        raise ValueError("dataset is empty")
    if not x.dtype.is_floating_point or m.d_vocab is not None:
        m.check_tokens(x)
    check_positions(positions, x)
    return x, lens


def _identity(
    m: Model,
    hooks: list[str],
    positions: Any,
    dtype: torch.dtype | None,
    x: torch.Tensor,
    lens: torch.Tensor | None,
    *,
    on_disk: bool,
    edits: dict[str, Any],
) -> dict[str, Any]:
    """What a store records of the run that made it (and what a resumed run must match)."""
    ident: dict[str, Any] = dict(
        model_id=str(m.model_id),
        hooks=hooks,
        positions=positions_key(positions),
        dtype=torch_dtype_name(dtype) if dtype is not None else None,
        n_items=len(x),
        n_tokens=n_tokens(x, lens),
        dataset_sha256=fingerprint(x, lens),
        # only a store on disk can be resumed, so only it pays for hashing the weights
        weights_sha256=weights_fingerprint(m) if on_disk else "",
    )
    if edits:
        ident["edits"] = sorted(edits)
    return ident


def _first_batch_size(batch_size: int | str, n: int, cuda: bool) -> int:
    """``batch_size`` checked, or for ``"auto"`` ``min(n, 64)`` (256 on CUDA)."""
    if batch_size != "auto" and (
        isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer))
    ):
        raise ValueError(f"batch_size must be a positive int or 'auto', got {batch_size!r}")
    bs = int(batch_size) if batch_size != "auto" else min(n, 256 if cuda else 64)
    if bs < 1:
        raise ValueError(f"batch_size must be >= 1 or 'auto', got {batch_size!r}")
    return bs


def _run_batches(
    m: Model,
    x: torch.Tensor,
    dev: torch.device,
    runner: Runner,
    reduce: Reducer,
    sink: Sink,
    bs: int,
    n_hooks: int,
    stack: contextlib.ExitStack,
) -> None:
    """Run ``m`` over ``x[sink.start:]`` in batches of ``bs`` (halved on out-of-memory) and hand
    each batch's activations to ``sink`` (through a host transfer on CUDA)."""
    n, i, cuda = len(x), sink.start, dev.type == "cuda"
    transfer = HostTransfer(sink) if cuda else sink
    # On the CPU into memory, plain hooks copy each activation into its [N, ...] buffer as
    # it is computed: nothing of a batch is held past the layer that made it.
    direct = False
    if not cuda and isinstance(sink, MemorySink) and isinstance(runner, PlainRunner):
        runner.attach(sink)
        direct = True
    bar = stack.enter_context(
        progress(  # type: ignore[no-untyped-call]  # interp.utils.progress: not annotated yet
            total=n, initial=i, desc=f"collect {n_hooks} hooks", unit="item"
        )
    )
    while i < n:
        k = min(bs, n - i)
        reduce.select(i, k)
        runner.at = i
        try:
            xb = x[i : i + k] if dev.type == "cpu" else x[i : i + k].to(dev, non_blocking=cuda)
            batch = run_batch(m, xb, runner)
        except Exception as e:  # noqa: BLE001 - only out-of-memory is handled
            if not is_oom(e) or k == 1:
                raise
            bs = max(1, k // 2)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            continue
        if not direct:
            transfer.put(i, batch)
        i += k
        bar.update(k)
    if transfer is not sink:
        transfer.flush()


# ---------------------------------------------------------------- dataset
def check_positions(positions: Any, x: torch.Tensor) -> None:
    """An int position (or a slice's ends) must index the sequence dimension of ``x``."""
    if x.ndim < 2 or isinstance(positions, str):
        return
    T = x.shape[1]
    if isinstance(positions, slice):
        if not all(
            p is None or (isinstance(p, int) and not isinstance(p, bool))
            for p in (positions.start, positions.stop, positions.step)
        ):
            raise ValueError(f"positions={positions}: a slice of whole numbers, e.g. slice(0, 8)")
        if positions.step == 0 or len(range(T)[positions]) == 0:
            raise ValueError(
                f"positions={positions} selects no position of inputs with {T} "
                f"positions (valid: a slice within 0..{T}, an int in {-T}..{T - 1}, "
                "'all', 'last' or 'mean')"
            )
    ends = (
        [positions]
        if isinstance(positions, int)
        else (
            [p for p in (positions.start, positions.stop) if p is not None]
            if isinstance(positions, slice)
            else []
        )
    )
    for p in ends:
        if isinstance(positions, int) and not -T <= p < T:
            raise ValueError(
                f"positions={positions} is outside the sequence: inputs have {T} positions "
                f"(valid: {-T}..{T - 1}, 'all', 'last', 'mean' or a slice)"
            )


def prepare_dataset(
    m: Model, dataset: Any, lengths: Any
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Inputs ``[N, ...]`` on the CPU, and valid lengths ``[N]`` (or None: no padding known)."""
    text = False
    if isinstance(dataset, (list, tuple)) and len(dataset) == 0:
        raise ValueError("dataset is empty: pass texts, token ids [N, pos] or a list of batches")
    if isinstance(dataset, str):
        dataset = [dataset]
    if isinstance(dataset, np.ndarray):
        dataset = torch.from_numpy(dataset)
    if isinstance(dataset, (Mapping, set, frozenset)):  # list() gives keys / no fixed order
        raise TypeError(
            f"collect takes texts, token ids [N, pos] or a list of batches, not a "
            f"{type(dataset).__name__} (it would be read as its keys or in no fixed "
            "order); pass e.g. dataset['input_ids'] or a list"
        )
    if not isinstance(dataset, torch.Tensor) and not _is_texts(dataset):
        items = list(dataset) if isinstance(dataset, Iterable) else [dataset]
        if items and all(_is_texts(b) or isinstance(b, str) for b in items):
            dataset = [t for b in items for t in ([b] if isinstance(b, str) else b)]
        elif items and all(isinstance(b, torch.Tensor) for b in items):
            shapes = {tuple(b.shape[1:]) for b in items}
            if len(shapes) > 1:
                raise ValueError(
                    f"dataset batches have different shapes {sorted(shapes)}; pad them to one "
                    "length"
                )
            dataset = torch.cat([b.cpu() for b in items])
        else:
            dataset = m.prepare(items)  # e.g. a list of token-id lists
    lens = None
    if _is_texts(dataset):
        text = True
        x, lens = m.text_tokens(list(dataset))  # lengths from the tokenizer, not from pad ids
    else:
        x = dataset
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"collect takes token ids, texts or tensors; got {type(dataset).__name__}")
    x = x.cpu().contiguous()
    if lengths is not None:
        return x, checked_lengths(lengths, x)
    if text and x.ndim == 2 and lens is not None and bool((lens < x.shape[1]).any()):
        return x, lens
    return x, None


def checked_lengths(lengths: Any, x: torch.Tensor) -> torch.Tensor:
    """``lengths`` as a LongTensor ``[N]``: whole numbers in ``1..T`` (never clamped or rounded)."""
    raw = torch.as_tensor(lengths).cpu()
    if raw.dtype == torch.bool or raw.is_floating_point() and not bool((raw == raw.round()).all()):
        raise ValueError(f"lengths must be whole numbers, got dtype {raw.dtype}")
    lens = raw.long()
    if lens.shape != (len(x),):
        raise ValueError(f"lengths must have shape [{len(x)}], got {tuple(lens.shape)}")
    T = x.shape[1] if x.ndim >= 2 else 1
    bad = ((lens < 1) | (lens > T)).nonzero().flatten()
    if len(bad):
        i = int(bad[0])
        raise ValueError(
            f"lengths[{i}] = {int(lens[i])} is outside 1..{T} (inputs have {T} "
            f"positions; {len(bad)} lengths are out of range)"
        )
    return lens


def _is_texts(d: Any) -> bool:
    return isinstance(d, (list, tuple)) and len(d) > 0 and all(isinstance(t, str) for t in d)


def n_tokens(x: torch.Tensor, lens: torch.Tensor | None) -> int:
    if lens is not None:
        return int(lens.sum())
    return len(x) * (x.shape[1] if x.ndim >= 2 else 1)


def fingerprint(x: torch.Tensor, lens: torch.Tensor | None) -> str:
    h = hashlib.sha256(str((tuple(x.shape), str(x.dtype))).encode())
    h.update(to_numpy(x).reshape(-1).view(np.uint8).data)
    if lens is not None:
        h.update(lens.numpy().tobytes())
    return h.hexdigest()


def weights_fingerprint(m: Any) -> str:
    """sha256 over every parameter and buffer (names, shapes, dtypes, bytes) of ``m.module``: a
    store remembers which weights made it, so a resume with changed weights is refused.
    About a second per GB of weights; each tensor is read once, on the CPU."""
    h = hashlib.sha256()
    module = getattr(m, "module", m)
    seen = set()
    for name, t in [*module.named_parameters(), *module.named_buffers()]:
        if t.data_ptr() in seen:  # a bridge aliases each weight under several names
            continue
        seen.add(t.data_ptr())
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(to_numpy(t).reshape(-1).view(np.uint8).data)
    # SAEs spliced in (interp.sae.splice) change the activations, so their weights count too;
    # an unspliced model's fingerprint is as before.
    for host, s in getattr(m, "_splices", {}).items():
        h.update(f"splice:{host}:{s.error_term}".encode())
        for name, t in s.sae.state_dict().items():
            t = t.detach().cpu().contiguous()
            h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
            h.update(to_numpy(t).reshape(-1).view(np.uint8).data)
    return h.hexdigest()
