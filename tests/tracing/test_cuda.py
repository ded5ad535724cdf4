"""The CUDA paths of collection: pinned double-buffered copies on a side stream, autocast,
out-of-memory halving, and a store on disk written from the GPU. Skipped without a CUDA device;
``scripts/gpu_check.sh`` runs them (with the benchmark's GPU items) on a machine that has one."""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

import interp
from interp.models.transformer import TransformerSpec, build_transformer
from interp.tracing.model import Model

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]

HOOKS = ["blocks.0.attn.hook_z", "blocks.1.hook_resid_post", "blocks.1.hook_resid_pre"]


@pytest.fixture
def tf():
    return Model(
        build_transformer(
            TransformerSpec(n_layers=2, d_model=32, n_heads=4, n_ctx=32, d_vocab=50, init_seed=0)
        ),
        backend="tl",
        kind="transformer",
        model_id="cuda-tiny",
    )


@pytest.fixture
def toks():
    return torch.randint(0, 50, (23, 16), generator=torch.Generator().manual_seed(0))


def test_pinned_double_buffered_copies_equal_the_cpu_result(tf, toks, monkeypatch):
    from interp.tracing import sinks

    cpu = interp.collect(tf, toks, HOOKS, batch_size=4)
    made = []
    real = sinks.HostTransfer.put

    def spy(self, i, batch):
        real(self, i, batch)
        made.append([b.is_pinned() for slot in self.slots if slot for b in slot.values()])

    monkeypatch.setattr(sinks.HostTransfer, "put", spy)
    gpu = interp.collect(
        tf, toks, HOOKS, batch_size=4, device="cuda"
    )  # 6 batches through 2 staging buffers
    assert len(made) == 6 and all(all(x) for x in made)
    for h in HOOKS:
        assert gpu[h].device.type == "cpu"
        assert_close(gpu[h], cpu[h], atol=1e-4, rtol=1e-4)
    tf.to("cpu")


def test_autocast_on_cuda_is_close_to_float32(tf, toks):
    cpu = interp.collect(tf, toks, HOOKS, batch_size=8)
    half = interp.collect(tf, toks, HOOKS, batch_size=8, device="cuda", autocast="bf16")
    for h in HOOKS:
        assert_close(half[h].float(), cpu[h], atol=0.1, rtol=0.1)
    tf.to("cpu")


def test_out_of_memory_on_cuda_halves_the_batch_and_loses_nothing(tf, toks, monkeypatch):
    from interp.tracing import collect as collect_mod

    want = interp.collect(tf, toks, HOOKS, batch_size=23)
    real, seen = collect_mod.run_batch, []

    def flaky(m, xb, *args):
        seen.append(len(xb))
        if len(xb) > 5:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 1 GiB")
        return real(m, xb, *args)

    monkeypatch.setattr(collect_mod, "run_batch", flaky)
    got = interp.collect(tf, toks, HOOKS, batch_size="auto", device="cuda")
    assert max(seen) > 5 and max(k for k in seen if k <= 5) <= 5
    for h in HOOKS:
        assert_close(got[h], want[h], atol=1e-4, rtol=1e-4)
    tf.to("cpu")


def test_a_store_on_disk_written_from_the_gpu_reopens_verified(tf, toks, tmp_path):
    cpu = interp.collect(tf, toks, HOOKS, batch_size=8)
    interp.collect(tf, toks, HOOKS, batch_size=8, device="cuda", out=tmp_path / "s", shard_size=8)
    store = interp.ActivationStore.open(tmp_path / "s")
    for h in HOOKS:
        assert_close(store[h], cpu[h], atol=1e-4, rtol=1e-4)
    tf.to("cpu")
