"""The model's own forward beside the bridge, and collect's route (interp/tracing/reference.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import interp
from interp.tracing.reference import collect_path, native_forward, plain_routes, reference_module


def test_the_native_reference_computes_what_the_bridge_computes(tiny_gpt, tokens):
    x = tokens % 50
    ref, source = reference_module(tiny_gpt)
    assert source == "native"
    got = native_forward(tiny_gpt, ref, x)
    out, acts = interp.trace(tiny_gpt, x, capture=tiny_gpt.resid_names())
    torch.testing.assert_close(got["logits"], out, atol=1e-5, rtol=0)
    assert len(got["hidden"]) == tiny_gpt.n_layers + 1
    for name, h in zip(tiny_gpt.resid_names(), got["hidden"], strict=True):
        torch.testing.assert_close(h, acts[name], atol=1e-5, rtol=0)


def test_collect_path_and_plain_routes(tiny_gpt):
    assert collect_path(tiny_gpt, tiny_gpt.resid_names()) == "plain modules"
    assert collect_path(tiny_gpt, ["blocks.0.attn.hook_attn_scores"]) == "bridge hooks"
    routes = plain_routes(tiny_gpt)
    assert routes["n_routed"] >= 2 * 10 and "attn.hook_attn_scores" in routes["unrouted_kinds"]
    assert "hook_resid_post" not in routes["unrouted_kinds"]


def test_a_model_without_a_plain_tree_is_named():
    with pytest.raises(ValueError, match="no plain module to compare"):
        reference_module(interp.wrap(nn.Linear(2, 2), model_id="lin"))
