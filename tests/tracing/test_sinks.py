"""collect's sinks: batches in, an ActivationStore out, in memory or as shards on disk that a
background thread writes and a later call resumes (interp/tracing/sinks.py)."""

from __future__ import annotations

import json

import pytest
import torch

from interp.tracing.sinks import DiskSink, MemorySink
from interp.tracing.store import MANIFEST, ActivationStore

N = 7


def _ident(**over) -> dict:
    ident = dict(
        model_id="m",
        hooks=["a", "b"],
        positions="all",
        dtype=None,
        n_items=N,
        n_tokens=N * 3,
        dataset_sha256="data",
        weights_sha256="weights",
    )
    ident.update(over)
    return ident


def _data() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"a": torch.randn(N, 3, 2, generator=g), "b": torch.randn(N, 4, generator=g).half()}


def _feed(sink, data, batch: int, upto: int = N) -> None:
    for i in range(0, upto, batch):
        sink.put(i, {h: a[i : min(i + batch, upto)] for h, a in data.items()})


@pytest.mark.parametrize("batch", [1, 3, N])
def test_memory_sink_fills_one_tensor_per_hook(batch):
    data, tokens = _data(), torch.arange(N * 3).reshape(N, 3)
    sink = MemorySink(_ident(), tokens)
    _feed(sink, data, batch)  # the last batch is short unless batch divides N
    store = sink.finish()
    for h, a in data.items():
        assert torch.equal(store[h], a) and store[h].dtype == a.dtype
    assert torch.equal(store.tokens, tokens) and store.manifest.complete


def test_memory_sink_splits_flat_heads_back_out():
    sink = MemorySink(_ident(hooks=["z"]), None)
    z = torch.randn(N, 3, 8)  # [N, pos, head * d_head], d_head 2
    sink.heads["z"] = 2
    _feed(sink, {"z": z}, 4)
    assert torch.equal(sink.finish()["z"], z.view(N, 3, 4, 2))


@pytest.mark.parametrize("batch", [2, 4])  # batches cross the 3-item shard boundaries
def test_disk_sink_writes_checksummed_shards_that_open_back(tmp_path, batch):
    data, tokens = _data(), torch.arange(N * 3).reshape(N, 3)
    sink = DiskSink(tmp_path / "s", _ident(), tokens, shard_size=3, overwrite=False)
    _feed(sink, data, batch)
    sink.finish()
    store = ActivationStore.open(tmp_path / "s")  # verifies every shard's sha256
    for h, a in data.items():
        assert torch.equal(store[h], a)
        assert [(s.start, s.stop) for s in store.manifest.arrays[h].shards] == [
            (0, 3),
            (3, 6),
            (6, 7),
        ]
    assert torch.equal(store.tokens, tokens)


def test_an_interrupted_store_resumes_after_its_last_whole_shard(tmp_path):
    data = _data()
    first = DiskSink(tmp_path / "s", _ident(), None, shard_size=3, overwrite=False)
    _feed(first, data, 1, upto=5)  # shard 0 written, shard 1 half full: then the process "dies"
    first.close()
    assert not json.loads((tmp_path / "s" / MANIFEST).read_text())["complete"]
    again = DiskSink(tmp_path / "s", _ident(), None, shard_size=None, overwrite=False)
    assert again.done is None and again.start == 3 and again.shard_size == 3
    _feed_from(again, data, 3, 2)
    again.finish()
    store = ActivationStore.open(tmp_path / "s")
    assert all(torch.equal(store[h], a) for h, a in data.items())
    done = DiskSink(tmp_path / "s", _ident(), None, shard_size=None, overwrite=False)
    assert done.done is not None  # a finished store is handed back, nothing is collected again


def _feed_from(sink, data, start: int, batch: int) -> None:
    for i in range(start, N, batch):
        sink.put(i, {h: a[i : i + batch] for h, a in data.items()})


def test_disk_sink_refuses_another_store_a_foreign_directory_and_a_changed_shape(tmp_path):
    data = _data()
    sink = DiskSink(tmp_path / "s", _ident(), None, shard_size=3, overwrite=False)
    _feed(sink, data, 3, upto=3)
    sink.close()
    with pytest.raises(ValueError, match="the dataset differs"):
        DiskSink(
            tmp_path / "s", _ident(dataset_sha256="other"), None, shard_size=None, overwrite=False
        )
    with pytest.raises(ValueError, match="the model's weights differ"):
        DiskSink(
            tmp_path / "s", _ident(weights_sha256="other"), None, shard_size=None, overwrite=False
        )
    resumed = DiskSink(tmp_path / "s", _ident(), None, shard_size=None, overwrite=False)
    with pytest.raises(ValueError, match=r"a: got items \[3, 5\]"):
        resumed.put(3, {"a": torch.zeros(1, 3, 5), "b": data["b"][3:4]})
    fresh = DiskSink(
        tmp_path / "s", _ident(dataset_sha256="other"), None, shard_size=3, overwrite=True
    )
    assert fresh.start == 0 and not (tmp_path / "s").exists()  # overwrite removed the old store
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not an activation store"):
        DiskSink(tmp_path / "foreign", _ident(), None, shard_size=3, overwrite=False)
    with pytest.raises(ValueError, match="shard_size must be >= 1"):
        DiskSink(tmp_path / "t", _ident(), None, shard_size=0, overwrite=False)


def test_clashing_hook_directories_are_refused():
    sink = MemorySink(_ident(hooks=["a:b", "a/b"]), None)  # both sanitize to "a_b"
    _feed(sink, {"a:b": torch.zeros(N, 2), "a/b": torch.zeros(N, 2)}, N)
    with pytest.raises(ValueError, match="clashing directories"):
        sink.finish()
