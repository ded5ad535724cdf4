"""``collect``'s plain-module path on Hugging Face models: routes read off the bridge, each
checked against the bridge's own hooks, exact on GPT-2, GPT-NeoX, Llama (grouped-query
attention, rotary) and BERT, all built with random weights and saved locally."""

from __future__ import annotations

import pytest
import torch

import interp
from interp.tracing import adapters
from interp.tracing import runners as runners_mod

ARCHS = ["gpt2", "neox", "llama", "bert"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from tests.conftest import load_hf_models

    return load_hf_models(tmp_path_factory.mktemp("hf_collect"), ARCHS, n_layers=3)


def _tokens(n=5, T=9, seed=0):
    return torch.randint(1, 50, (n, T), generator=torch.Generator().manual_seed(seed))


def _runner(m, hooks):
    return runners_mod.make_runner(m, hooks, runners_mod.Reducer("all", None, None))


@pytest.mark.parametrize("arch", ARCHS)
def test_every_checked_route_equals_the_bridge_and_trace(models, arch):
    m = models[arch]
    routes = adapters.hf_routes(m, adapters.plain_module(m))
    # the names analyses lean on have plain routes on every architecture
    kinds = ["resid_pre", "resid_post", "attn_out", "z"] + (["mlp_out"] if arch != "bert" else [])
    kinds += ["resid_mid"] if arch != "neox" else []  # GPT-NeoX runs attention and MLP in parallel
    for kind in kinds:
        assert m.hook(kind, 1) in routes, (arch, kind)
    hooks = list(routes)
    assert isinstance(
        _runner(m, hooks), runners_mod.PlainRunner
    )  # the fast path serves all of them
    x = _tokens()
    fast = interp.collect(m, x, hooks, batch_size=2)  # 3 batches, the last one short
    one = interp.collect(m, x, hooks, batch_size=5)
    _, traced = interp.trace(m, x, capture=hooks)
    for h in hooks:
        assert fast[h].shape == traced[h].shape, h
        assert (fast[h] - traced[h]).abs().max() <= 1e-5, (arch, h)
        assert (fast[h] - one[h]).abs().max() <= 1e-5, (arch, h)  # batched == unbatched
    # z is split per head the way the bridge's hook_z is: [batch, pos, head, d_head]
    assert fast[m.hook("z", 0)].shape[-2:] == (m.cfg.n_heads, m.cfg.d_head)


@pytest.mark.parametrize("arch", ARCHS)
def test_a_name_without_a_route_falls_back_to_the_bridge(models, arch):
    m = models[arch]
    hooks = [m.hook("pattern", 0), m.hook("resid_post", 1)]
    assert m.hook("pattern", 0) not in adapters.hf_routes(m, adapters.plain_module(m))
    assert isinstance(_runner(m, hooks), runners_mod.BridgeRunner)
    x = _tokens(3)
    slow = interp.collect(m, x, hooks, batch_size=2)
    fast = interp.collect(m, x, [m.hook("resid_post", 1)], batch_size=2)
    assert (slow[m.hook("resid_post", 1)] - fast[m.hook("resid_post", 1)]).abs().max() <= 1e-5


def test_a_route_that_disagrees_with_the_bridge_is_dropped(models):
    """The check can fail: a route pointed at the wrong module is rejected on the probe."""
    m = models["gpt2"]
    root = adapters.plain_module(m)
    name = m.hook("resid_post", 0)
    cands = {
        name: adapters.Point(adapters.hf_routes(m, root)[m.hook("resid_post", 1)].path),
        m.hook("resid_post", 1): adapters.hf_routes(m, root)[m.hook("resid_post", 1)]._replace(
            index=None
        ),
    }
    checked = adapters._check_routes(m, root, cands)
    assert name not in checked  # block 1's output is not block 0's
    assert m.hook("resid_post", 1) in checked and checked[m.hook("resid_post", 1)].index in (
        None,
        0,
    )


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_early_stop_after_the_last_requested_block(models, arch):
    m = models[arch]
    root = adapters.plain_module(m)
    calls = []
    last = root.get_submodule(adapters.hf_routes(m, root)[m.hook("resid_post", 2)].path)
    handle = last.register_forward_hook(lambda *a: calls.append(1))
    try:
        interp.collect(m, _tokens(2), [m.hook("resid_post", 0)], batch_size=2)
    finally:
        handle.remove()
    assert calls == []  # the forward ended after block 0


@pytest.mark.parametrize("arch", ARCHS)
def test_the_plain_tree_shares_every_weight_with_the_bridge(models, arch):
    """Peeling the wrappers off costs no memory: the same parameter tensors, no copies."""
    m = models[arch]
    root = adapters.plain_module(m)
    bridge = {p.data_ptr() for p in m.module.parameters()}
    assert {p.data_ptr() for p in root.parameters()} <= bridge
    assert adapters.plain_module(m) is root  # built once per bridge


def test_a_model_the_probe_cannot_run_keeps_the_bridge_path(models, monkeypatch):
    """If the probe forward fails (a model that needs more than token ids), collect still works
    through the bridge's hooks instead of failing."""
    m = models["llama"]
    root = adapters.plain_module(m)
    monkeypatch.setattr(adapters, "_HF_ROUTES", type(adapters._HF_ROUTES)())
    monkeypatch.setattr(adapters, "_PLANS", type(adapters._PLANS)())

    def broken(*a, **k):
        raise RuntimeError("needs pixel_values")

    monkeypatch.setattr(adapters, "_check_routes", broken)
    assert adapters.hf_routes(m, root) == {}
    hooks = [m.hook("resid_post", 0)]
    assert isinstance(_runner(m, hooks), runners_mod.BridgeRunner)
    x = _tokens(2)
    _, want = interp.trace(m, x, capture=hooks)
    assert (interp.collect(m, x, hooks)[hooks[0]] - want[hooks[0]]).abs().max() <= 1e-6
