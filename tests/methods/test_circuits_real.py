"""Edge-level circuits on the real model (SmolLM2-135M: Llama, 30 layers, 9 query heads on 3
key/value heads): the graph's identities, the fast gradients, and EAP against exact edge
patching on a small corruption, on two natural IOI prompts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ioi(real_model):
    from interp.data.sae_circuits import make_task
    from interp.methods.circuits.forward import build_graph

    g = build_graph(
        real_model
    )  # checks the split forward and the reader-sum identity on this model
    ps = make_task("ioi_natural", real_model.tokenizer, 2, seed=0)
    return real_model, g, ps


def test_real_graph_has_grouped_query_readers(ioi):
    m, g, _ = ioi
    assert (g.n_layers, g.n_heads, g.n_kv_heads) == (30, 9, 3)
    assert (g.n_writers, g.n_readers) == (1 + 30 * 10, 30 * (9 + 3 + 3 + 1) + 1)
    assert g.n_edges == 70651


def test_real_full_circuit_is_clean_and_empty_is_corrupt(ioi):
    from interp.methods.circuits.evaluation import CircuitEvaluator

    m, g, ps = ioi
    ev = CircuitEvaluator(m, ps.clean, ps.corrupt, ps.metric_fn(), graph=g)
    assert (
        ev.clean_mean - ev.corrupt_mean > 1.0
    )  # the model does IOI: the identities are not vacuous
    vals = ev.circuits(np.stack([g.valid, np.zeros_like(g.valid)]))
    assert torch.allclose(vals[0], ev.clean_values, atol=1e-3)
    assert torch.allclose(vals[1], ev.corrupt_values, atol=1e-3)


def test_real_fast_gradients_and_eap_against_exact(ioi):
    from interp.methods.circuits.attribution import edge_attribution, exact_edge_scores
    from interp.methods.circuits.forward import dense_grads, fast_reader_grads, reader_grads, run
    from interp.methods.circuits.graph import Edge

    m, g, ps = ioi
    metric, idx = ps.metric_fn(), torch.arange(len(ps))
    out = run(m, g, ps.clean, grad=True)
    slow = reader_grads(out, metric(out.logits, idx), g)
    fast = dense_grads(fast_reader_grads(m, g, ps.clean, metric, idx)[0], g)
    assert torch.allclose(fast, slow, atol=1e-4 * float(slow.abs().max()))
    eap = edge_attribution(m, ps.clean, ps.corrupt, metric, graph=g)
    flat = np.nan_to_num(np.abs(eap.scores), nan=-1).ravel()
    edges = [Edge(int(i // g.n_readers), int(i % g.n_readers)) for i in np.argsort(-flat)[:6]]
    exact = exact_edge_scores(m, ps.clean, ps.corrupt, metric, edges=edges, graph=g, alpha=0.01)
    a = np.array([eap.scores[e.writer, e.reader] for e in edges]) * 0.01
    b = np.array([exact.scores[e.writer, e.reader] for e in edges])
    assert np.abs(a - b).max() <= 0.1 * np.abs(b).max(), (a, b)
