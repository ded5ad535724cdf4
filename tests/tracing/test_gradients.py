"""metric_grads: the gradient of a metric at hooks, checked against autograd on the whole
forward, finite differences, batching, and edits applied before the gradient."""

from __future__ import annotations

import torch

from interp.tracing.gradients import metric_grads, metric_grads_batch
from interp.tracing.trace import trace


def _metric(out, idx):
    return out[:, -1, 3] - out[:, -1, 5] + 0.1 * idx.to(out.dtype)


def test_grad_at_the_last_residual_is_the_unembedding_of_the_metric(tiny_gpt, tokens):
    m = tiny_gpt
    name = m.hook("resid_post", -1)
    grads, acts, values = metric_grads_batch(m, tokens, _metric, [name])
    g = grads[name]
    assert g.shape == acts[name].shape
    assert torch.all(g[:, :-1] == 0)  # the metric reads the last position only
    out, _ = trace(m, tokens)
    assert torch.allclose(values, _metric(out, torch.arange(len(tokens))), atol=1e-5)


def test_grad_matches_a_finite_difference(tiny_gpt, tokens):
    m = tiny_gpt
    name = m.hook("resid_pre", 1)
    grads, acts, _ = metric_grads_batch(m, tokens, _metric, [name])
    torch.manual_seed(0)
    direction = torch.randn_like(acts[name]) * 1e-3
    up, _ = trace(m, tokens, edits={name: lambda a: a + direction})
    down, _ = trace(m, tokens, edits={name: lambda a: a - direction})
    idx = torch.arange(len(tokens))
    fd = ((_metric(up, idx) - _metric(down, idx)) / 2).sum()
    assert torch.allclose((grads[name] * direction).sum(), fd, rtol=2e-2, atol=1e-6)


def test_batched_equals_whole_and_idx_follows_the_prompt(tiny_gpt, tokens):
    m = tiny_gpt
    names = [m.hook("z", 0), m.hook("attn_out", 1)]
    whole = metric_grads(m, tokens, _metric, names, batch_size=len(tokens))
    parts = metric_grads(m, tokens, _metric, names, batch_size=4)
    for k in names:
        assert torch.allclose(whole[k], parts[k], atol=1e-6)


def test_an_edit_at_the_hook_runs_before_the_gradient(tiny_gpt, tokens):
    m = tiny_gpt
    name = m.hook("resid_pre", 1)
    _, acts, _ = metric_grads_batch(m, tokens, _metric, [name], edits={name: torch.zeros_like})
    assert torch.all(acts[name] == 0)
    z = m.hook("z", 0)
    g_clean, _, _ = metric_grads_batch(m, tokens, _metric, [z])
    g_cut, _, _ = metric_grads_batch(
        m, tokens, _metric, [z], edits={name: lambda a: a.detach() * 0}
    )
    assert g_clean[z].abs().sum() > 0 and torch.all(g_cut[z] == 0)  # the only path was cut
