"""collect's runners: which runner a model and its hooks get, that each gives what ``trace``
gives, and the position/dtype reduction they apply on the device (interp/tracing/runners.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import interp
from interp.tracing.runners import (
    BridgeRunner,
    NnsightRunner,
    PlainRunner,
    Reducer,
    is_oom,
    make_runner,
    pos_dim,
    positions_key,
    reduce_activation,
    run_batch,
)


def _keep_all() -> Reducer:
    return Reducer("all", None, None)


@pytest.mark.parametrize(
    "hooks, kind",
    [
        (
            ["blocks.0.hook_resid_post", "blocks.1.mlp.hook_post"],
            PlainRunner,
        ),  # every hook has a plain module
        (
            ["blocks.0.attn.hook_attn_scores"],
            BridgeRunner,
        ),  # the bridge computes it; no plain module does
    ],
)
def test_make_runner_picks_the_fastest_route_and_it_gives_what_trace_gives(
    tiny_gpt, tokens, hooks, kind
):
    x = tokens % 50
    runner = make_runner(tiny_gpt, hooks, _keep_all())
    assert type(runner) is kind
    with runner:
        got = run_batch(tiny_gpt, x, runner)
    _, want = interp.trace(tiny_gpt, x, capture=hooks)
    for h in hooks:
        torch.testing.assert_close(got[h].reshape(want[h].shape), want[h], atol=1e-5, rtol=0)


def test_a_wrapped_module_gets_the_nnsight_runner():
    m = interp.wrap(nn.Sequential(nn.Linear(4, 3), nn.ReLU()))
    runner = make_runner(m, ["1.hook_out"], _keep_all())
    assert isinstance(runner, NnsightRunner)
    x = torch.randn(5, 4)
    with runner:
        got = run_batch(m, x, runner)
    torch.testing.assert_close(got["1.hook_out"], m.module(x))


def test_run_batch_names_a_hook_that_did_not_fire_or_is_not_a_tensor():
    class Fake:
        hooks = ["a", "b"]

        def __init__(self, got):
            self.got = got

        def __call__(self, xb):
            return self.got

    with pytest.raises(RuntimeError, match="hook 'b' did not fire"):
        run_batch(None, torch.zeros(1), Fake({"a": torch.zeros(1)}))
    with pytest.raises(TypeError, match="hook 'b' gave a tuple"):
        run_batch(None, torch.zeros(1), Fake({"a": torch.zeros(1), "b": (1, 2)}))


def test_reduce_activation_selects_positions_on_the_position_axis():
    a = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3)  # [batch, pos, d]
    assert torch.equal(reduce_activation(a, "x", "all", None, None), a)
    assert torch.equal(reduce_activation(a, "x", "last", None, None), a[:, -1])
    assert torch.equal(reduce_activation(a, "x", 1, None, None), a[:, 1])
    assert torch.equal(reduce_activation(a, "x", slice(1, 3), None, None), a[:, 1:3])
    assert torch.equal(reduce_activation(a, "x", "mean", None, None), a.mean(1))
    lens = torch.tensor([2, 4])  # item 0 has two real positions
    assert torch.equal(
        reduce_activation(a, "x", "last", lens, None), torch.stack([a[0, 1], a[1, 3]])
    )
    torch.testing.assert_close(
        reduce_activation(a, "x", "mean", lens, None), torch.stack([a[0, :2].mean(0), a[1].mean(0)])
    )
    assert reduce_activation(a, "x", "all", None, torch.float16).dtype == torch.float16


def test_patterns_reduce_over_the_query_axis():
    p = torch.rand(2, 3, 5, 5)  # [batch, head, query, key]
    assert pos_dim("blocks.0.attn.hook_pattern") == 2 and pos_dim("blocks.0.hook_resid_post") == 1
    assert torch.equal(
        reduce_activation(p, "blocks.0.attn.hook_pattern", "last", None, None), p[:, :, -1]
    )
    assert reduce_activation(p, "blocks.0.attn.hook_pattern", slice(0, 2), None, None).shape == (
        2,
        3,
        2,
        5,
    )
    with pytest.raises(ValueError, match="no position dim"):
        reduce_activation(torch.zeros(2), "x", "last", None, None)


def test_reducer_follows_the_batch_and_passes_through_when_it_has_nothing_to_do():
    a = torch.rand(2, 3, 4)
    keep = Reducer("all", None, None)
    assert keep.identity and keep("x", a) is a
    last = Reducer("last", None, torch.tensor([1, 2, 3, 3]))
    last.select(2, 2)  # items 2 and 3: lengths 3 and 3
    assert torch.equal(last("x", a), a[:, 2])


def test_positions_key_and_oom_detection():
    assert [positions_key(p) for p in ("all", "last", "mean", 3, slice(0, 4))] == [
        "all",
        "last",
        "mean",
        "3",
        "slice(0, 4, None)",
    ]
    for bad in (True, "first", 1.5):
        with pytest.raises(ValueError, match="positions must be"):
            positions_key(bad)
    assert is_oom(RuntimeError("CUDA out of memory. Tried to allocate"))
    assert not is_oom(RuntimeError("shape mismatch")) and not is_oom(ValueError("out of memory"))
