"""The adapter table and the plain module tree collect runs (interp/tracing/adapters.py):
routes by layer, the tree with the bridge wrappers peeled off, and plans with their stop hook.
Each route's value is checked against the bridge's hooks in tests/tracing/test_collect.py."""

from __future__ import annotations

import torch
from torch import nn

from interp.tracing import adapters
from interp.tracing.adapters import (
    ADAPTERS,
    Point,
    adapter_point,
    hf_call_kwargs,
    inputs,
    is_hf,
    plain_module,
    plan,
)


def test_adapter_point_fills_in_the_layer():
    table = ADAPTERS["NativeModel"]
    assert adapter_point(table, "blocks.3.hook_resid_post") == Point("layers.3", "out", 0)
    assert adapter_point(table, "blocks.12.attn.hook_z") == Point(
        "layers.12.attn.o", "in", 0, heads=True
    )
    assert adapter_point(table, "hook_embed") == Point("tok_embed")
    assert (
        adapter_point(table, "blocks.0.attn.hook_attn_scores") is None
    )  # no plain module computes it


def test_the_plain_tree_shares_every_parameter_and_holds_no_bridge_wrapper(tiny_gpt):
    root = plain_module(tiny_gpt)
    assert root is not None and root is not tiny_gpt.module
    assert root is plain_module(tiny_gpt)  # built once per bridge
    shared = {id(p) for p in tiny_gpt.module.parameters()}
    assert all(id(p) in shared for p in root.parameters())
    assert not any("_original_component" in mod._modules for mod in root.modules())
    assert not is_hf(root)


def test_plain_module_is_the_module_itself_for_our_rnns_and_none_for_nnsight(tiny_rnn):
    assert plain_module(tiny_rnn) is tiny_rnn.module
    from interp.tracing.model import wrap

    assert plain_module(wrap(nn.Linear(2, 2))) is None


def test_a_plan_stops_at_the_hook_that_fires_last(tiny_gpt, tiny_rnn):
    root = plain_module(tiny_gpt)
    hooks = ("blocks.1.hook_resid_post", "blocks.0.hook_resid_post")
    points, stop = plan(tiny_gpt, root, hooks)
    assert stop == "blocks.1.hook_resid_post" and set(points) == set(hooks)
    assert plan(tiny_gpt, root, hooks) == (points, stop)  # cached
    assert plan(tiny_gpt, root, ("blocks.0.attn.hook_attn_scores",)) is None
    # our RNNs: the table routes the stacked hidden states to the cell's output; other names are
    # the HookPoints' own paths
    assert plan(tiny_rnn, tiny_rnn.module, ("rnn.hook_h",)) == (
        {"rnn.hook_h": Point("rnn")},
        "rnn.hook_h",
    )
    assert plan(tiny_rnn, tiny_rnn.module, ("hook_embed",)) == (
        {"hook_embed": Point("hook_embed")},
        "hook_embed",
    )


def test_unwrap_leaves_a_plain_tree_as_it_is():
    mod = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    assert adapters.unwrap(mod) is mod


def test_inputs_reads_keyword_calls_and_hf_call_kwargs_turns_the_cache_off():
    x = torch.zeros(1)
    assert inputs((x,), {}) == (x,)
    assert inputs((), {"hidden_states": x, "mask": None})[0] is x
    assert inputs((), {"other": x})[0] is x

    class WithCache(nn.Module):
        def forward(self, ids, use_cache=True):
            return ids

    assert hf_call_kwargs(WithCache()) == {"use_cache": False}
    assert hf_call_kwargs(nn.Linear(2, 2)) == {}
