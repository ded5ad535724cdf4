"""Tests for multi-process collection: rank parts, the merged manifest, and a real
2-process ``torchrun`` (gloo, CPU) whose store equals a single-process collection."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.testing import assert_close

import interp
from interp.tracing import distributed
from interp.tracing.store import ActivationStore

HOOKS = ["blocks.0.attn.hook_z", "blocks.1.hook_resid_post"]


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("INTERP_QUIET", "1")


def test_parts_cover_the_dataset_once():
    for n in (1, 2, 7, 10):
        for world in (1, 2, 3, 4):
            parts = [distributed.part(n, r, world) for r in range(world)]
            assert parts[0][0] == 0 and parts[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(parts, parts[1:], strict=False))
            assert max(b - a for a, b in parts) - min(b - a for a, b in parts) <= 1


@pytest.mark.parametrize("world", [2, 3])
def test_merged_rank_stores_equal_one_collection(tiny_gpt, tiny_rnn, tokens, tmp_path, world):
    for m, hooks in ((tiny_gpt, HOOKS), (tiny_rnn, ["rnn.hook_h", "hook_logits"])):
        out = tmp_path / f"{m.model_id}-{world}"
        for r in range(world):  # what each torchrun rank does, one after another
            a, b = distributed.part(len(tokens), r, world)
            interp.collect(
                m, tokens[a:b], hooks, out=distributed.rank_dir(out, r), shard_size=2, batch_size=3
            )
        whole = interp.collect(m, tokens, hooks)
        from interp.tracing.collect import fingerprint

        distributed.merge(
            out,
            world,
            n_items=len(tokens),
            n_tokens=tokens.numel(),
            dataset_sha256=fingerprint(tokens, None),
        )
        store = ActivationStore.open(out)  # checksums of every rank's shards verified
        assert len(store) == len(tokens) and store.manifest.complete
        for h in hooks:
            assert_close(store[h], whole[h])
        assert torch.equal(store.tokens, tokens)


def test_merge_refuses_an_incomplete_rank(tiny_gpt, tokens, tmp_path, monkeypatch):
    from interp.tracing import sinks as sinks_mod

    interp.collect(tiny_gpt, tokens[:3], HOOKS, out=distributed.rank_dir(tmp_path, 0))
    real = sinks_mod.DiskSink._flush

    def dying(self, s):
        if s == 1:
            raise KeyboardInterrupt
        real(self, s)

    monkeypatch.setattr(sinks_mod.DiskSink, "_flush", dying)
    with pytest.raises(KeyboardInterrupt):
        interp.collect(
            tiny_gpt,
            tokens[3:],
            HOOKS,
            out=distributed.rank_dir(tmp_path, 1),
            shard_size=1,
            batch_size=1,
        )
    with pytest.raises(ValueError, match="incomplete"):
        distributed.merge(
            tmp_path, 2, n_items=len(tokens), n_tokens=tokens.numel(), dataset_sha256=""
        )


@pytest.mark.slow
def test_torchrun_two_processes_equals_single_process(tiny_gpt, tokens, tmp_path):
    model_dir, out = tmp_path / "model", tmp_path / "store"
    tiny_gpt.save(model_dir)
    np.save(tmp_path / "tokens.npy", tokens.numpy())
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [
        str(torchrun) if torchrun.exists() else sys.executable,
        *([] if torchrun.exists() else ["-m", "torch.distributed.run"]),
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "interp.tracing.distributed",
        "--model",
        str(model_dir),
        "--tokens",
        str(tmp_path / "tokens.npy"),
        "--hooks",
        ",".join(HOOKS),
        "--out",
        str(out),
        "--batch-size",
        "2",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "INTERP_QUIET": "1", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    store = ActivationStore.open(out)
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["rank00000", "rank00001"]
    want = interp.collect(interp.load_model(str(model_dir), device="cpu"), tokens, HOOKS)
    for h in HOOKS:
        assert_close(store[h], want[h])
    assert torch.equal(store.tokens, tokens)
    assert store.manifest.dataset_sha256 == want.manifest.dataset_sha256
