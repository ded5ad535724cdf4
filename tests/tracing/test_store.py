"""Tests for the on-disk ActivationStore: round trip, resume, corruption, mismatch, save."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.testing import assert_close

import interp
from interp.models.transformer import TransformerSpec, build_transformer
from interp.tracing import collect as collect_mod
from interp.tracing import sinks as sinks_mod
from interp.tracing.model import Model
from interp.tracing.store import ActivationStore, Manifest, StoreCorruptedError, manifest_digest
from interp.utils import read_json, write_json

N, T = 11, 6
HOOKS = ["blocks.0.attn.hook_z", "blocks.1.hook_resid_post", "blocks.0.attn.hook_pattern"]


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("INTERP_QUIET", "1")


@pytest.fixture(scope="module")
def tf() -> Model:
    torch.manual_seed(0)
    bridge = build_transformer(
        TransformerSpec(n_layers=2, d_model=32, n_heads=4, n_ctx=32, d_vocab=50)
    )
    return Model(bridge, backend="tl", kind="transformer", model_id="tiny-tf")


@pytest.fixture(scope="module")
def toks() -> torch.Tensor:
    return torch.randint(0, 50, (N, T), generator=torch.Generator().manual_seed(2))


class _ItemCounter:
    """Counts items the model is run on (wraps ``collect``'s per-batch step)."""

    def __init__(self, monkeypatch):
        self.n = 0
        real = collect_mod.run_batch

        def counting(m, xb, *args):
            self.n += len(xb)
            return real(m, xb, *args)

        monkeypatch.setattr(collect_mod, "run_batch", counting)


def test_stored_equals_traced(tf, toks, tmp_path):
    store = interp.collect(tf, toks, HOOKS, out=tmp_path / "s", shard_size=4, batch_size=3)
    opened = ActivationStore.open(tmp_path / "s")
    _, traced = interp.trace(tf, toks, capture=HOOKS)
    for s in (store, opened):
        assert s.hooks == HOOKS and len(s) == N
        for h in HOOKS:
            assert_close(s[h], traced[h])
        assert torch.equal(s.tokens, toks)
    man = opened.manifest
    assert man.complete and man.model_id == "tiny-tf" and man.n_tokens == N * T
    assert [(x.start, x.stop) for x in man.arrays[HOOKS[0]].shards] == [(0, 4), (4, 8), (8, 11)]
    assert (tmp_path / "s" / "blocks.0.attn.hook_z" / "shard_00002.npy").exists()
    assert man.arrays["blocks.0.attn.hook_z"].shape == [T, 4, 8]
    assert "tiny-tf" in repr(opened) and str(tmp_path) in repr(opened)
    starts = [a for a, _, _ in opened.iter_shards(HOOKS[1])]
    assert starts == [0, 4, 8]


def test_single_shard_is_a_memory_map(tf, toks, tmp_path):
    interp.collect(tf, toks, HOOKS[:1], out=tmp_path / "s")  # default shard size: one shard here
    s = ActivationStore.open(tmp_path / "s")
    assert len(s.manifest.arrays[HOOKS[0]].shards) == 1
    assert s[HOOKS[0]].data_ptr() == s[HOOKS[0]].data_ptr()  # same map, not a fresh copy


def test_resume_after_interruption(tf, toks, tmp_path, monkeypatch):
    want = interp.collect(tf, toks, HOOKS, positions="last")
    real_flush = sinks_mod.DiskSink._flush

    def dying_flush(self, s):
        if s == 2:
            raise KeyboardInterrupt("killed")
        real_flush(self, s)

    monkeypatch.setattr(sinks_mod.DiskSink, "_flush", dying_flush)
    with pytest.raises(KeyboardInterrupt):
        interp.collect(
            tf, toks, HOOKS, positions="last", out=tmp_path / "s", shard_size=3, batch_size=2
        )
    monkeypatch.undo()
    monkeypatch.setenv("INTERP_QUIET", "1")
    with pytest.raises(ValueError, match="incomplete"):
        ActivationStore.open(tmp_path / "s")
    part = ActivationStore.open(tmp_path / "s", allow_incomplete=True)
    assert part.manifest.items_done() == 6

    counter = _ItemCounter(monkeypatch)
    store = interp.collect(
        tf, toks, HOOKS, positions="last", out=tmp_path / "s", shard_size=3, batch_size=2
    )
    assert counter.n == N - 6  # the two complete shards were not recomputed
    for s in (store, ActivationStore.open(tmp_path / "s")):
        for h in HOOKS:
            assert_close(s[h], want[h])

    counter = _ItemCounter(monkeypatch)  # a complete store is returned as is
    again = interp.collect(tf, toks, HOOKS, positions="last", out=tmp_path / "s")
    assert counter.n == 0 and again.manifest.complete


def test_corrupted_shard_is_named(tf, toks, tmp_path):
    interp.collect(tf, toks, HOOKS, out=tmp_path / "s", shard_size=4)
    bad = tmp_path / "s" / "blocks.1.hook_resid_post" / "shard_00001.npy"
    raw = bytearray(bad.read_bytes())
    raw[-5] ^= 0xFF
    bad.write_bytes(bytes(raw))
    with pytest.raises(StoreCorruptedError, match="blocks.1.hook_resid_post/shard_00001.npy"):
        ActivationStore.open(tmp_path / "s")
    ActivationStore.open(tmp_path / "s", verify=False)  # skipping the check is allowed


def _flip_a_byte(path):
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0xFF
    path.write_bytes(bytes(raw))


def test_collect_into_a_finished_store_verifies_it(tf, toks, tmp_path):
    interp.collect(tf, toks, HOOKS, out=tmp_path / "s", shard_size=4)
    _flip_a_byte(tmp_path / "s" / "blocks.1.hook_resid_post" / "shard_00000.npy")
    with pytest.raises(
        StoreCorruptedError, match="shard_00000.npy"
    ):  # a flipped byte never comes back as data
        interp.collect(tf, toks, HOOKS, out=tmp_path / "s", shard_size=4)


def test_resume_recollects_from_a_damaged_shard(tf, toks, tmp_path, monkeypatch):
    want = interp.collect(tf, toks, HOOKS, positions="last")
    out = tmp_path / "s"
    interp.collect(tf, toks, HOOKS, positions="last", out=out, shard_size=4)
    manifest = read_json(out / "manifest.json")  # make it an interrupted collection of 3 shards ...
    manifest["complete"] = False
    manifest["manifest_sha256"] = manifest_digest(
        Manifest.model_validate(manifest)
    )  # as a collection writes it
    write_json(out / "manifest.json", manifest)
    _flip_a_byte(
        out / "blocks.1.hook_resid_post" / "shard_00001.npy"
    )  # ... whose second shard is damaged
    counter = _ItemCounter(monkeypatch)
    store = interp.collect(tf, toks, HOOKS, positions="last", out=out, shard_size=4)
    assert (
        counter.n == N - 4
    )  # the first shard is kept, everything from the damaged one is collected again
    for h in HOOKS:
        assert_close(ActivationStore.open(out)[h], want[h])
    assert store.manifest.complete


def test_resume_refuses_changed_weights(tf, toks, tmp_path):
    import copy

    out = tmp_path / "s"
    interp.collect(tf, toks, HOOKS[:1], out=out, shard_size=4)
    other = copy.deepcopy(tf)  # a copy keeps the model id, but not the weights
    with torch.no_grad():
        next(other.module.parameters()).add_(1e-3)
    with pytest.raises(ValueError, match="weights differ"):
        interp.collect(other, toks, HOOKS[:1], out=out)
    assert interp.collect(
        copy.deepcopy(tf), toks, HOOKS[:1], out=out
    ).manifest.complete  # same weights: fine


def test_mismatch_raises_and_overwrite_replaces(tf, toks, tmp_path):
    out = tmp_path / "s"
    interp.collect(tf, toks, HOOKS[:2], out=out, shard_size=4)
    with pytest.raises(ValueError, match=r"hooks.*overwrite=True"):
        interp.collect(tf, toks, HOOKS[:1], out=out)
    with pytest.raises(ValueError, match="positions"):
        interp.collect(tf, toks, HOOKS[:2], out=out, positions="mean")
    with pytest.raises(ValueError, match="dataset differs"):
        interp.collect(tf, toks.flip(0), HOOKS[:2], out=out)
    store = interp.collect(tf, toks, HOOKS[:1], out=out, overwrite=True)
    assert ActivationStore.open(out).hooks == HOOKS[:1] and store.hooks == HOOKS[:1]


def test_refuses_foreign_directory(tf, toks, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not an activation store"):
        interp.collect(tf, toks, HOOKS[:1], out=tmp_path)
    with pytest.raises(ValueError, match="not an activation store"):
        interp.collect(tf, toks, HOOKS[:1], out=tmp_path, overwrite=True)
    assert (tmp_path / "notes.txt").exists()


def test_bf16_round_trip_and_save(tf, toks, tmp_path):
    mem = interp.collect(tf, toks, HOOKS, dtype="bf16", positions=slice(0, 4))
    disk = mem.save(tmp_path / "s", shard_size=5)
    man = ActivationStore.open(tmp_path / "s").manifest
    assert (
        man.arrays[HOOKS[0]].dtype == "bfloat16" and man.arrays[HOOKS[0]].storage_dtype == "int16"
    )
    arr = np.load(tmp_path / "s" / HOOKS[0] / "shard_00000.npy")
    assert arr.dtype == np.int16
    for s in (disk, ActivationStore.open(tmp_path / "s")):
        for h in HOOKS:
            assert s[h].dtype == torch.bfloat16
            assert torch.equal(s[h], mem[h])  # bit-exact
        assert torch.equal(s.tokens, toks)
    with pytest.raises(KeyError, match="Did you mean"):
        disk["blocks.1.hook_resid_pots"]


def test_shards_read_one_at_a_time_in_any_order(tf, toks, tmp_path):
    store = interp.collect(tf, toks, HOOKS, out=tmp_path / "s", shard_size=4, batch_size=3)
    opened = ActivationStore.open(tmp_path / "s")
    h = HOOKS[1]
    assert opened.shard_bounds(h) == [(0, 4), (4, 8), (8, 11)]
    for i in (2, 0, 1):
        a, b = opened.shard_bounds(h)[i]
        assert torch.equal(opened.shard(h, i), store[h][a:b])
    with pytest.raises(IndexError, match="3 shards"):
        opened.shard(h, 3)
    mem = ActivationStore(store.manifest, tensors={h: store[h]})
    assert mem.shard_bounds(h) == [(0, N)] and torch.equal(mem.shard(h, 0), store[h])
