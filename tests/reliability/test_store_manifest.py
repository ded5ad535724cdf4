"""An activation store whose manifest was edited never opens as verified: the manifest is
checksummed itself and must agree with its shards (counts, shapes, dtypes, order, paths)."""

from __future__ import annotations

import json

import pytest
import torch

import interp
from interp.tracing.store import ActivationStore, Manifest, StoreCorruptedError, manifest_digest

HOOK = "blocks.0.hook_resid_post"


@pytest.fixture
def store_dir(tmp_path, tiny_gpt):
    toks = torch.randint(0, 50, (10, 4), generator=torch.Generator().manual_seed(1))
    interp.collect(tiny_gpt, toks, hooks=[HOOK], out=tmp_path / "s", shard_size=3)  # 4 shards
    return tmp_path / "s"


def _edit(d, fn, *, reseal: bool = False):
    """Edit manifest.json; ``reseal`` also recomputes its own checksum (a careful forger)."""
    raw = json.loads((d / "manifest.json").read_text())
    fn(raw)
    if reseal:
        raw["manifest_sha256"] = manifest_digest(Manifest.model_validate(raw))
    (d / "manifest.json").write_text(json.dumps(raw))


def _swap(raw):
    s = raw["arrays"][HOOK]["shards"]
    for key in ("file", "sha256", "nbytes"):
        s[0][key], s[1][key] = s[1][key], s[0][key]


EDITS = {
    "item-count": lambda r: r.update(n_items=9),
    "dtype": lambda r: r["arrays"][HOOK].update(dtype="float16", storage_dtype="float16"),
    "shape": lambda r: r["arrays"][HOOK].update(shape=[4, 16]),
    "swapped-shards": _swap,
    "dropped-shard": lambda r: r["arrays"][HOOK]["shards"].pop(1),
    "dropped-last-shard": lambda r: r["arrays"][HOOK]["shards"].pop(),
}


@pytest.mark.parametrize("name", EDITS)
def test_an_edited_manifest_is_detected_by_its_own_checksum(store_dir, name):
    _edit(store_dir, EDITS[name])
    with pytest.raises(StoreCorruptedError, match="was edited after it was written"):
        ActivationStore.open(store_dir)
    with pytest.raises(StoreCorruptedError):
        ActivationStore.open(store_dir, verify=False)  # the cheap checks run even without checksums


@pytest.mark.parametrize(
    "name, says",
    [
        ("item-count", "covers items 0..10, but the store has n_items=9"),
        ("dtype", "holds .* float32; .* float16"),
        ("shape", r"holds \[3, 4, 32\]"),
        ("swapped-shards", "shard entries swapped or reordered"),
        ("dropped-shard", "no shard for items 3..6"),
        ("dropped-last-shard", "covers items 0..9, but the store has n_items=10"),
    ],
)
def test_a_resealed_manifest_must_still_agree_with_its_shards(store_dir, name, says):
    _edit(store_dir, EDITS[name], reseal=True)
    with pytest.raises(StoreCorruptedError, match=says):
        ActivationStore.open(store_dir)


@pytest.mark.parametrize("path", ["../outside/shard_00000.npy", "/etc/passwd"])
def test_a_shard_path_outside_the_store_is_refused(store_dir, path):
    _edit(store_dir, lambda r: r["arrays"][HOOK]["shards"][0].update(file=path), reseal=True)
    with pytest.raises(StoreCorruptedError, match="points outside the store"):
        ActivationStore.open(store_dir, verify=False)


def test_an_edited_unfinished_store_is_not_resumed(tmp_path, tiny_gpt, monkeypatch):
    toks = torch.randint(0, 50, (10, 4), generator=torch.Generator().manual_seed(1))
    out = tmp_path / "s"
    interp.collect(tiny_gpt, toks, hooks=[HOOK], out=out, shard_size=3)
    _edit(out, lambda r: r.update(complete=False, n_tokens=1))
    with pytest.raises(StoreCorruptedError, match="edited"):
        interp.collect(tiny_gpt, toks, hooks=[HOOK], out=out, shard_size=3)


def test_a_store_written_before_manifest_checksums_still_opens(store_dir):
    _edit(store_dir, lambda r: r.update(manifest_sha256=""))
    store = ActivationStore.open(store_dir)
    assert store[HOOK].shape == (10, 4, 32)
