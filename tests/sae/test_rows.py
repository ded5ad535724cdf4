"""SAE training rows: a store is read one shard at a time, the shuffled stream visits every row
once per epoch and depends on the step only, and sink rows are left out of the moments."""

from __future__ import annotations

import pytest
import torch

import interp
from interp.sae.rows import RowSource, ShuffledStream, as_matrix, check_finite

HOOK = "blocks.0.hook_resid_post"


@pytest.fixture
def disk_store(tiny_gpt, tmp_path):
    """A store of 16 sequences x 12 positions (192 rows) in 8 shards of 2 sequences (24 rows)."""
    toks = torch.randint(0, 50, (16, 12), generator=torch.Generator().manual_seed(5))
    interp.collect(tiny_gpt, toks, hooks=[HOOK], out=tmp_path / "store", shard_size=2)
    return interp.ActivationStore.open(tmp_path / "store")


def test_stream_visits_every_row_once_per_epoch(disk_store):
    src = RowSource(disk_store, HOOK)
    rows = torch.cat(list(src.chunks()))  # [192, 32] in stored order
    stream = ShuffledStream(src, buffer_rows=48, seed=0, scale=1.0, dtype=torch.float32)
    epoch = torch.cat(
        [stream.take(p, 20) for p in range(0, 180, 20)] + [stream.take(180, 12)]
    )  # [192, 32]
    key = lambda t: sorted(map(tuple, t.tolist()))  # noqa: E731
    assert key(epoch) == key(rows)  # a permutation of the rows: nothing repeated, nothing skipped
    assert not torch.equal(epoch, rows)
    assert torch.equal(
        stream.take(200, 16), ShuffledStream(src, 48, 0, 1.0, torch.float32).take(200, 16)
    )


def test_row_source_reads_shards_and_leaves_sinks_out_of_the_moments(disk_store):
    src = RowSource(disk_store, HOOK)
    rows = as_matrix(disk_store, HOOK)  # [192, 32], the whole store
    assert src.n_rows == len(rows) == 192 and src.d == 32
    assert torch.equal(torch.cat(list(src.chunks(chunk=50))), rows)
    mean, sq = src.moments()
    torch.testing.assert_close(mean.float(), rows.mean(0), rtol=1e-5, atol=1e-6)
    assert abs(sq - float(rows.pow(2).sum(-1).mean())) < 1e-4 * sq
    tensor = RowSource(rows.clone())
    tensor.tensor[7] *= 1000.0  # one sink row
    threshold, n_sinks = tensor.set_sink_threshold(10.0)
    assert n_sinks == 1 and threshold > 0
    kept = tensor.keep(tensor.tensor)
    assert len(kept) == 191 and not (kept.norm(dim=-1) > threshold).any()
    with pytest.raises(ValueError, match="finite"):
        check_finite(torch.tensor([[1.0, float("nan")]]))
