"""SAE trainer: FVU falls, decoder rows stay unit-norm, dead latents are resampled, files
round-trip."""

from __future__ import annotations

import json

import pytest
import torch

import interp
from interp.sae import KINDS, SAE, SAEConfig, SAETrainConfig, evaluate_sae, resample_dead, train_sae


def _sparse_data(n=256, d=16, n_atoms=24, seed=0):
    """Sparse combinations of unit atoms plus a little noise: an SAE can explain it."""
    g = torch.Generator().manual_seed(seed)
    atoms = torch.randn(n_atoms, d, generator=g)
    atoms /= atoms.norm(dim=-1, keepdim=True)
    codes = (torch.rand(n, n_atoms, generator=g) < 0.1).float() * (
        0.5 + torch.rand(n, n_atoms, generator=g)
    )
    return codes @ atoms + 0.01 * torch.randn(n, d, generator=g) + 0.3


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_training_reduces_fvu_and_keeps_unit_norm_decoder(kind):
    x = _sparse_data()
    cfg = SAEConfig(d_in=16, d_sae=48, kind=kind, k=4)
    sparsity = {"relu": 0.02, "jumprelu": 0.001, "topk": 0.0}[kind]
    untrained = SAE(
        cfg.model_copy(update={"input_scale": float(1 / x.pow(2).sum(-1).mean().sqrt())})
    )
    before = evaluate_sae(untrained, x)["fvu"]
    sae, report = train_sae(x, cfg, SAETrainConfig(steps=300, lr=3e-3, sparsity=sparsity))
    assert report["fvu"] < 0.3 < before
    assert report["fvu"] < before / 3
    norms = sae.W_dec.norm(dim=-1)
    torch.testing.assert_close(norms, torch.ones_like(norms), atol=1e-5, rtol=0)
    assert 0 <= report["dead_frac"] <= 1 and report["l0"] > 0
    if kind == "topk":
        assert report["l0"] <= 4 + 1e-9


def test_report_matches_a_direct_computation():
    x = _sparse_data(seed=1)
    sae, report = train_sae(x, SAEConfig(d_in=16, d_sae=32), SAETrainConfig(steps=50))
    with torch.no_grad():
        f = sae.encode(x)
        fvu = ((sae.decode(f) - x) ** 2).sum() / ((x - x.mean(0)) ** 2).sum()
    assert abs(report["fvu"] - fvu.item()) < 1e-5
    assert abs(report["l0"] - (f != 0).float().sum(-1).mean().item()) < 1e-5


def test_normalise_decoder_keeps_reconstructions():
    sae = SAE(SAEConfig(d_in=8, d_sae=12, init_seed=3))
    x = torch.randn(20, 8)
    with torch.no_grad():
        sae.W_dec.mul_(torch.linspace(0.5, 3, 12)[:, None])
        before = sae(x)
    sae.normalise_decoder()
    torch.testing.assert_close(sae(x), before, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(sae.W_dec.norm(dim=-1), torch.ones(12), atol=1e-6, rtol=0)


def test_dead_latents_are_resampled_and_then_fire():
    x = _sparse_data(seed=2)
    sae = SAE(SAEConfig(d_in=16, d_sae=32))
    with torch.no_grad():
        sae.b_enc[:10] = -1e3  # ten latents that can never fire
    assert evaluate_sae(sae, x)["dead_frac"] >= 10 / 32
    n = resample_dead(sae, x, torch.Generator().manual_seed(0))
    assert n >= 10
    with torch.no_grad():
        fired = (sae.encode(x) != 0).any(0)
    assert fired[:10].all()
    torch.testing.assert_close(sae.W_dec.norm(dim=-1), torch.ones(32), atol=1e-5, rtol=0)


def test_save_load_round_trip(tmp_path):
    x = _sparse_data(seed=3)
    for kind in sorted(KINDS):
        sae, _ = train_sae(x, SAEConfig(d_in=16, d_sae=20, kind=kind), SAETrainConfig(steps=20))
        sae.save(tmp_path / kind)
        cfg = json.loads((tmp_path / kind / "cfg.json").read_text())
        assert cfg["d_in"] == 16 and cfg["d_sae"] == 20 and "architecture" in cfg
        back = SAE.load(tmp_path / kind)
        assert torch.equal(back.encode(x), sae.encode(x))


def test_trains_on_an_activation_store(tiny_gpt, tokens, tmp_path):
    store = interp.collect(
        tiny_gpt, tokens, hooks=["blocks.0.hook_resid_post"], out=tmp_path / "store"
    )
    sae, report = train_sae(
        store,
        SAEConfig(d_in=32, d_sae=64),
        SAETrainConfig(steps=100, batch_size=32),
        hook="blocks.0.hook_resid_post",
    )
    assert report["n_rows"] == tokens.numel()
    assert report["fvu"] < 1.0


def test_unknown_kind_is_a_clear_error():
    with pytest.raises(KeyError, match="relu"):
        SAE(SAEConfig(d_in=4, kind="rellu"))


# ------------------------------------------------------------------ streaming and checkpoints
HOOK = "blocks.0.hook_resid_post"


@pytest.fixture
def disk_store(tiny_gpt, tmp_path):
    """A store of 16 sequences x 12 positions (192 rows) in 8 shards of 2 sequences (24 rows)."""
    toks = torch.randint(0, 50, (16, 12), generator=torch.Generator().manual_seed(5))
    interp.collect(tiny_gpt, toks, hooks=[HOOK], out=tmp_path / "store", shard_size=2)
    return interp.ActivationStore.open(tmp_path / "store")


def _stream_cfg(**kw):
    base = dict(
        steps=40,
        batch_size=16,
        buffer_rows=48,
        lr=3e-3,
        resample_every=10,
        resample_until=1.0,
        checkpoint_every=10,
        seed=1,
    )
    return SAETrainConfig(**{**base, **kw})


def test_streaming_never_loads_the_whole_store(disk_store, monkeypatch):
    from interp.sae import train as train_mod

    def refuse(*a, **k):
        raise AssertionError("the whole store was loaded")

    monkeypatch.setattr(train_mod, "as_matrix", refuse)
    monkeypatch.setattr(interp.ActivationStore, "__getitem__", refuse)
    sae, report = train_sae(disk_store, SAEConfig(d_in=32, d_sae=48), _stream_cfg(), hook=HOOK)
    assert report["n_rows"] == 192
    # two shards (48 rows) in the buffer plus the part of one batch straddling two groups
    assert report["max_resident_rows"] <= 48 + 16 < report["n_rows"]
    assert report["fvu"] < report["metrics"][0]["fvu"]


def test_a_killed_run_resumes_to_the_same_weights(disk_store, tmp_path, monkeypatch):
    cfg, tc = SAEConfig(d_in=32, d_sae=48, kind="relu"), _stream_cfg()
    clean, clean_report = train_sae(disk_store, cfg, tc, hook=HOOK)

    calls = {"n": 0}
    real = SAE.normalise_decoder

    def dies_at_step_25(self):
        calls["n"] += 1
        if calls["n"] == 25:
            raise KeyboardInterrupt  # the run is killed mid-way, after its checkpoint at step 20
        real(self)

    monkeypatch.setattr(SAE, "normalise_decoder", dies_at_step_25)
    with pytest.raises(KeyboardInterrupt):
        train_sae(disk_store, cfg, tc, hook=HOOK, checkpoint_dir=tmp_path / "ckpt")
    monkeypatch.setattr(SAE, "normalise_decoder", real)
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir() if not p.name.startswith(".")) == [
        "step_00000010",
        "step_00000020",
    ]
    resumed, report = train_sae(disk_store, cfg, tc, hook=HOOK, checkpoint_dir=tmp_path / "ckpt")
    assert report["resumed_from"] == 20
    for (name, a), b in zip(clean.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert [p["step"] for p in report["metrics"]] == [0, 10, 20, 30, 40]
    assert (
        report["metrics"] == clean_report["metrics"]
        and report["resampled"] == clean_report["resampled"]
    )
    # the newest checkpoint is the trained SAE in SAELens's layout
    back = SAE.load(tmp_path / "ckpt" / "step_00000040")
    x = disk_store.shard(HOOK, 0).reshape(-1, 32)
    torch.testing.assert_close(back.encode(x), resumed.encode(x), atol=1e-5, rtol=1e-5)


def test_resuming_with_other_settings_is_refused(disk_store, tmp_path):
    cfg = SAEConfig(d_in=32, d_sae=48)
    train_sae(disk_store, cfg, _stream_cfg(steps=20), hook=HOOK, checkpoint_dir=tmp_path / "ckpt")
    with pytest.raises(ValueError, match="lr: 0.003 there, 0.01 now"):
        train_sae(
            disk_store,
            cfg,
            _stream_cfg(steps=20, lr=1e-2),
            hook=HOOK,
            checkpoint_dir=tmp_path / "ckpt",
        )


def test_metric_points_on_heldout_rows_and_loss_recovered(disk_store, tiny_gpt, tokens):
    from interp.sae.metrics import latent_stats, loss_recovered

    _, acts = interp.trace(tiny_gpt, tokens, capture=[HOOK])
    held = acts[HOOK].reshape(-1, 32)
    sae, report = train_sae(
        disk_store,
        SAEConfig(d_in=32, d_sae=48, kind="topk", k=4),
        _stream_cfg(steps=20),
        hook=HOOK,
        eval_data=held,
        model=tiny_gpt,
        eval_tokens=tokens,
    )
    last = report["metrics"][-1]
    assert last["on"] == "heldout" and last["n_rows"] == len(held) and last["step"] == 20
    assert last["fvu"] == pytest.approx(latent_stats(sae, [held])["fvu"], rel=1e-6)
    assert last["l0"] <= 4 and 0 <= last["dead_frac"] <= 1 and 0 <= last["dense_frac"] <= 1
    assert last["loss_recovered"] == pytest.approx(
        loss_recovered(tiny_gpt, sae, HOOK, tokens)["loss_recovered"]
    )


# ------------------------------------------------------------------ sinks
def _with_sinks(x: torch.Tensor, rows: list[int], factor: float = 500.0) -> torch.Tensor:
    y = x.clone()
    y[rows] *= factor
    return y


def test_full_batch_training_without_sinks_equals_training_on_clean_rows():
    """Planted huge rows, left out by ``max_norm_ratio``: the same SAE, bit for bit, as training
    on the data without them; without the filter they change the scale and the SAE."""
    x = _sparse_data()
    sinks = [3, 70, 200]
    dirty = _with_sinks(x, sinks)
    clean = x[[i for i in range(len(x)) if i not in sinks]]
    cfg = SAEConfig(d_in=16, d_sae=32, kind="topk", k=4)
    tc = dict(steps=30, lr=3e-3)
    a, rep_a = train_sae(dirty, cfg, SAETrainConfig(**tc, max_norm_ratio=10.0))
    b, _ = train_sae(clean, cfg, SAETrainConfig(**tc))
    c, _ = train_sae(dirty, cfg, SAETrainConfig(**tc))
    assert rep_a["sink_rows"] == 3 and rep_a["n_rows"] == len(clean)
    assert a.cfg.input_scale == b.cfg.input_scale != c.cfg.input_scale
    assert all(
        torch.equal(p, q)
        for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )


def test_streamed_training_leaves_sinks_out_of_moments_and_batches(tiny_gpt, tmp_path):
    from interp.sae.train import RowSource, ShuffledStream

    toks = torch.randint(0, 50, (16, 12), generator=torch.Generator().manual_seed(5))
    store = interp.collect(tiny_gpt, toks, hooks=[HOOK], out=tmp_path / "s", shard_size=2)
    src = RowSource(store, HOOK)
    rows = torch.cat(list(src.chunks()))  # [192, d]
    norms = rows.norm(dim=-1)
    ratio = float(norms.quantile(0.9) / norms.median())  # about a tenth of the rows are "sinks"
    threshold, n_sinks = src.set_sink_threshold(ratio)
    keep = norms <= threshold
    assert n_sinks == int((~keep).sum()) > 0
    mean, sq = src.moments()
    assert torch.allclose(mean, rows[keep].double().mean(0), atol=1e-5)
    assert sq == pytest.approx(float(rows[keep].double().pow(2).sum(-1).mean()), rel=1e-6)
    stream = ShuffledStream(src, buffer_rows=48, seed=0, scale=1.0, dtype=torch.float32)
    epoch = torch.cat([stream.take(p, 24) for p in range(0, 192, 24)])
    assert len(epoch) == int(keep.sum()) and bool((epoch.norm(dim=-1) <= threshold).all())
    sae, report = train_sae(
        store, SAEConfig(d_in=32, d_sae=48), _stream_cfg(max_norm_ratio=ratio), hook=HOOK
    )
    assert report["sink_rows"] == n_sinks and report["max_norm"] == pytest.approx(threshold)
    assert report["metrics"][-1]["n_rows"] == int(keep[: SAETrainConfig().eval_rows].sum())
