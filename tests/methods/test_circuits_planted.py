"""A planted circuit is recovered: in a zoo transformer whose heads and MLPs outside a known
two-head chain are scaled down to 2% of their output, the top edges of EAP and EAP-IG at the
chain's edge count are a circuit of faithfulness >= 0.9, and random edge sets of that size
stay near zero."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interp.methods.circuits.attribution import edge_attribution
from interp.methods.circuits.evaluation import CircuitEvaluator
from interp.methods.circuits.forward import build_graph
from tests.conftest import build_spec

SCALE = 0.02  # what the heads and MLPs outside the chain keep of their output
LIVE = {(0, 1), (1, 2)}  # the planted chain a0.h1 -> a1.h2 -> logits


def _planted_model():
    from interp.models.transformer import build_transformer
    from interp.tracing.model import Model

    spec = build_spec(n_layers=2, d_model=32, n_heads=4, d_vocab=20)
    m = Model(build_transformer(spec), backend="tl", kind="transformer", model_id="planted")
    dh = spec.d_head
    with torch.no_grad():
        for name, p in m.module.named_parameters():
            layer = int(name.split(".")[1]) if name.startswith("layers.") else None
            if (
                ".attn." in name and ".o." in name and name.endswith("weight")
            ):  # [d_model, heads * d_head]
                for h in range(spec.n_heads):
                    if (layer, h) not in LIVE:
                        p[:, h * dh : (h + 1) * dh] *= SCALE
            elif ".mlp." in name and (".fc_out." in name or ".out." in name):
                p *= SCALE
            elif ".q." in name or ".k." in name:
                p *= 4.0  # sharp attention: the q/k edges matter
    return m


def _planted_edges(g) -> np.ndarray:
    keep = np.zeros((g.n_writers, g.n_readers), dtype=bool)
    heads = [g.head_writer(layer, h) for layer, h in sorted(LIVE)]
    readers = [g.attn_readers(layer).start + h for layer, h in LIVE]  # q
    readers += [g.attn_readers(layer).start + g.n_heads + h for layer, h in LIVE]  # k
    readers += [
        g.attn_readers(layer).start + g.n_heads + g.n_kv_heads + h for layer, h in LIVE
    ]  # v
    readers.append(g.logits_reader)
    for u in [0, *heads]:
        for r in readers:
            keep[u, r] = u < g.n_up[r]
    return keep


@pytest.fixture(scope="module")
def setup():
    from interp.tracing.trace import trace

    m = _planted_model()
    g = build_graph(m)
    gen = torch.Generator().manual_seed(0)
    clean = torch.randint(0, 20, (16, 8), generator=gen)
    corrupt = clean.clone()
    corrupt[:, 1:7] = torch.randint(0, 20, (16, 6), generator=gen)
    # the metric: the clean run's top token against the corrupt run's (a large, consistent gap)
    with torch.no_grad():
        good = trace(m, clean)[0][:, -1].argmax(-1)
        bad = trace(m, corrupt)[0][:, -1].argmax(-1)

    def metric(logits, idx):
        rows = torch.arange(len(idx))
        return logits[rows, -1, good[idx]] - logits[rows, -1, bad[idx]]

    return (
        m,
        g,
        clean,
        corrupt,
        metric,
        CircuitEvaluator(m, clean, corrupt, metric, graph=g, batch_size=8),
    )


def test_the_planted_chain_is_a_faithful_circuit(setup):
    m, g, clean, corrupt, metric, ev = setup
    planted = _planted_edges(g)
    assert planted.sum() == 12
    f = ev.faithfulness(ev.circuits(planted))[0]
    assert f >= 0.9, f  # the ground truth: what the scorers must find


@pytest.mark.parametrize("method", ["eap", "eap-ig"])
def test_scorers_recover_the_planted_circuit(setup, method):
    m, g, clean, corrupt, metric, ev = setup
    k = int(_planted_edges(g).sum())
    sg = edge_attribution(m, clean, corrupt, metric, method=method, graph=g, batch_size=8)
    curve = ev.curve(sg, [k])
    assert curve.f[0] >= 0.9, curve.f
    rnd = ev.random_curve([k], draws=8, seed=1)
    assert abs(rnd.f[0]) <= 0.2, rnd.f
