"""Rows an SAE trains on: a tensor or one hook of an :class:`interp.ActivationStore`, read one
shard at a time (:class:`RowSource`), with the sink rows above a norm threshold left out, and
the shuffled minibatch stream over them (:class:`ShuffledStream`).

Each epoch visits the store's shards in a shuffled order, holds as many of them as fit in
``buffer_rows`` rows, and draws batches from those rows in a shuffled order; memory is bounded
by the buffer plus a batch, never the store. A tensor is one shard, shuffled whole. Batch ``s``
is rows ``[s * batch_size, (s + 1) * batch_size)`` of that fixed sequence, so it depends on the
step only (:mod:`interp.sae.train` relies on that to resume bit for bit).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Float

if TYPE_CHECKING:
    from interp.tracing.store import ActivationStore


def as_matrix(
    data: Float[torch.Tensor, "*rows d"] | ActivationStore, hook: str | None = None
) -> Float[torch.Tensor, "n d"]:
    """``[n, d]`` float rows from a tensor (any leading dims) or an ActivationStore + hook name
    (the whole store in memory: the full-batch trainer's input)."""
    from interp.tracing.store import ActivationStore

    if isinstance(data, ActivationStore):
        data = data[_hook_of(data, hook)]
    x = torch.as_tensor(data)
    return x.reshape(-1, x.shape[-1]).float()


def _hook_of(store: ActivationStore, hook: str | None) -> str:
    if hook is None:
        names = list(store.hooks)
        if len(names) != 1:
            raise ValueError(f"the store holds {names}: name the hook to train on")
        hook = names[0]
    return hook


# ------------------------------------------------------------------ data
class RowSource:
    """Rows ``[n, d]`` of a tensor (one shard) or of one hook of a store (its shards, read one at a
    time)."""

    def __init__(self, data: torch.Tensor | ActivationStore, hook: str | None = None):
        from interp.tracing.store import ActivationStore

        self.store: ActivationStore | None = None
        if isinstance(data, ActivationStore):
            self.store, self.hook = data, _hook_of(data, hook)
            info = data.manifest.arrays[self.hook]
            per_item = 1
            for s in info.shape[:-1]:
                per_item *= s
            self.d = info.shape[-1]
            self.shard_rows = [(b - a) * per_item for a, b in data.shard_bounds(self.hook)]
        else:
            x = torch.as_tensor(data)
            self.tensor = x.reshape(-1, x.shape[-1])  # [n, d]
            self.d, self.shard_rows = self.tensor.shape[-1], [len(self.tensor)]
        self.n_rows = sum(self.shard_rows)
        self.max_norm: float | None = None  # rows above this norm are sinks (see keep())

    def keep(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` without its sink rows (those with norm above ``max_norm``), stored dtype kept."""
        if self.max_norm is None:
            return x
        return x[x.float().norm(dim=-1) <= self.max_norm]

    @torch.no_grad()
    def set_sink_threshold(self, ratio: float) -> tuple[float, int]:
        """Mark rows with norm above ``ratio`` x the median row norm as sinks; returns
        ``(threshold, rows above it)``."""
        self.max_norm = None
        norms = torch.cat([xb.norm(dim=-1) for xb in self.chunks()])  # [n_rows]
        check_finite(norms[:, None])
        self.max_norm = float(norms.median()) * ratio
        return self.max_norm, int((norms > self.max_norm).sum())

    def load(self, i: int) -> torch.Tensor:
        """Shard ``i`` as ``[rows, d]`` in its stored dtype (a tensor source: the tensor itself)."""
        if self.store is None:
            return self.tensor
        return self.store.shard(self.hook, i).reshape(-1, self.d)

    def chunks(self, chunk: int = 8192, limit: int | None = None) -> Iterator[torch.Tensor]:
        """Float rows in stored order, ``chunk`` at a time (the first ``limit`` rows only, if
        given)."""
        left = self.n_rows if limit is None else min(limit, self.n_rows)
        for i in range(len(self.shard_rows)):
            x = self.load(i)
            for a in range(0, len(x), chunk):
                if left <= 0:
                    return
                xb = x[a : a + min(chunk, left)].float()
                left -= len(xb)
                xb = self.keep(xb)
                if len(xb):
                    yield xb

    @torch.no_grad()
    def moments(self) -> tuple[torch.Tensor, float]:
        """``(mean [d], E|x|^2)`` of the rows in float64, in one streaming pass."""
        s, sq, row = torch.zeros(self.d, dtype=torch.float64), 0.0, 0
        for xb in self.chunks():
            check_finite(xb, row)
            row += len(xb)
            s += xb.double().sum(0)
            sq += float(xb.double().pow(2).sum())
        return s / max(row, 1), sq / max(row, 1)

    def fingerprint(self) -> dict[str, Any]:
        """What a resumed run must find again: the row count, width and (for a store) shard
        checksums."""
        out: dict[str, Any] = {"n_rows": self.n_rows, "d": self.d}
        if self.store is not None and self.store.path is not None:
            shards = sorted(self.store.manifest.arrays[self.hook].shards, key=lambda s: s.start)
            out["shards_sha256"] = hashlib.sha256(
                "".join(s.sha256 for s in shards).encode()
            ).hexdigest()
        return out


def check_finite(x: torch.Tensor, offset: int = 0) -> None:
    """``ValueError`` naming the first training row with a NaN or infinite value: one such row
    would turn every SAE weight into NaN within a step, without a word."""
    ok = torch.isfinite(x).all(-1)
    if not bool(ok.all()):
        bad = (~ok).nonzero().flatten()
        raise ValueError(
            f"SAE training data: row {offset + int(bad[0])} holds NaN or infinite "
            f"values ({len(bad)} such rows in rows {offset}..{offset + len(x)}); "
            "drop or fix them first"
        )


def _gen(*keys: int) -> torch.Generator:
    seed = 0
    for k in keys:
        seed = (seed * 1_000_003 + k) % (1 << 62)
    return torch.Generator().manual_seed(seed)


class ShuffledStream:
    """An endless, seeded sequence of a source's rows, shuffled within a buffer of shards.

    Epoch ``e`` permutes the shards; consecutive groups of ``max(1, buffer_rows // largest shard)``
    shards are loaded one group at a time and their rows visited in a permuted order. ``take(p, n)``
    returns rows ``[p, p + n)`` of the sequence, scaled; at most one group is held, plus the part
    of a batch that straddles two groups (``max_resident_rows`` records the most rows held)."""

    def __init__(
        self, source: RowSource, buffer_rows: int, seed: int, scale: float, dtype: torch.dtype
    ):
        self.src, self.seed, self.scale, self.dtype = source, seed, scale, dtype
        self.per_group = max(1, buffer_rows // max(source.shard_rows))
        self._key: tuple[int, int] | None = None
        self._epoch: tuple[int, list[list[int]], list[int]] | None = (
            None  # (epoch, groups, rows per group)
        )
        self._buf: torch.Tensor | None = None
        self._perm: torch.Tensor | None = None
        self.max_resident_rows = 0
        self.loads = 0

    def _groups(self, epoch: int) -> list[list[int]]:
        order = torch.randperm(
            len(self.src.shard_rows), generator=_gen(self.seed, epoch, 0)
        ).tolist()
        return [order[a : a + self.per_group] for a in range(0, len(order), self.per_group)]

    def _layout(self, epoch: int) -> tuple[list[list[int]], list[int]]:
        if self._epoch is None or self._epoch[0] != epoch:
            groups = self._groups(epoch)
            self._epoch = (
                epoch,
                groups,
                [sum(self.src.shard_rows[i] for i in shards) for shards in groups],
            )
        return self._epoch[1], self._epoch[2]

    def _locate(self, p: int) -> tuple[int, int, int, int]:
        """``(epoch, group, offset, rows left in the group)`` of row ``p`` of the sequence."""
        epoch, r = divmod(p, self.src.n_rows)
        for g, rows in enumerate(self._layout(epoch)[1]):
            if r < rows:
                return epoch, g, r, rows - r
            r -= rows
        raise AssertionError("row position outside its epoch")

    def _group(self, epoch: int, g: int, extra: int) -> None:
        if self._key == (epoch, g):
            return
        self._buf = self._perm = None  # release the old group before reading the next
        shards = self._layout(epoch)[0][g]
        parts = [self.src.load(i) for i in shards]
        self._buf = (
            parts[0] if self.src.store is None else torch.cat(parts)
        )  # [rows, d]: read into memory
        self._perm = torch.randperm(len(self._buf), generator=_gen(self.seed, epoch, g + 1))
        self._key = (epoch, g)
        self.loads += 1
        self.max_resident_rows = max(self.max_resident_rows, len(self._buf) + extra)

    def take(self, p: int, n: int) -> Float[torch.Tensor, "n d"]:
        """Rows ``[p, p + n)`` of the sequence, cast and scaled."""
        pieces: list[torch.Tensor] = []
        got = 0
        while got < n:
            epoch, g, off, left = self._locate(p + got)
            self._group(epoch, g, got)
            buf, perm = self._buf, self._perm
            assert buf is not None and perm is not None  # _group loaded them
            k = min(left, n - got)
            piece = self.src.keep(buf[perm[off : off + k]])  # a copy: it outlives the group
            pieces.append(piece)
            got += k
        x = pieces[0] if len(pieces) == 1 else torch.cat(pieces)
        return x.to(self.dtype) * self.scale

    def pool(self, n: int) -> Float[torch.Tensor, "n d"]:
        """Up to ``n`` rows of the group held now, scaled (the resampling pool)."""
        assert self._buf is not None and self._perm is not None, "no group is held yet"
        return self.src.keep(self._buf[self._perm[:n]]).to(self.dtype) * self.scale
