"""The ground truth of the SAE circuit comparison: head -> head edge effects read off the circuits
package's edge graph (a Llama with grouped-query attention, a zoo transformer), the edge
circuits, and node effects; on the real model at one prompt (slow)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interp.analyses.sae_circuits.truth import head_edge_effects, node_effects, top_edges
from interp.data.sae_circuits import PromptSet


def _random_pairs(m, n: int = 3, T: int = 6, seed: int = 0) -> PromptSet:
    """Random prompts; the counterfactual changes one token; logit difference of two tokens."""
    g = torch.Generator().manual_seed(seed)
    V = m.cfg.d_vocab
    clean = torch.randint(1, V, (n, T), generator=g)
    corrupt = clean.clone()
    corrupt[:, 2] = (clean[:, 2] + 1 + torch.randint(0, V - 2, (n,), generator=g)) % V
    ans, wrong = torch.randint(0, V, (2, n), generator=g)
    return PromptSet("random", clean, corrupt, ans, wrong, torch.full((n,), T - 1))


def _zoo():
    from interp.models.transformer import build_transformer
    from interp.tracing.model import Model
    from tests.conftest import build_spec

    spec = build_spec(n_layers=3, init_seed=2)
    return Model(build_transformer(spec), backend="tl", kind="transformer", model_id="zoo-tiny")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from tests.conftest import load_hf_models

    hf = load_hf_models(tmp_path_factory.mktemp("hf"), archs=("llama",), n_layers=3)
    return {"llama": hf["llama"], "zoo": _zoo()}


@pytest.mark.parametrize("name", ["llama", "zoo"])
def test_head_edges_sum_the_readers_of_the_receiving_head(models, name):
    """Each head pair's effect is the sum of |EAP| over the receiver's q input and its key/value
    head's k and v inputs (found here by the graph's node names, not by index arithmetic);
    pairs whose writer does not run before the reader are NaN."""
    from interp.methods.circuits.attribution import edge_attribution

    m = models[name]
    ps = _random_pairs(m)
    eff = head_edge_effects(m, ps, "eap", 1, batch_size=8)
    sg = edge_attribution(m, ps.clean, ps.corrupt, ps.metric_fn(), method="eap", batch_size=8)
    g = sg.graph
    L, H = g.n_layers, g.n_heads
    group = H // max(g.n_kv_heads, 1)
    assert eff.shape == (L * H, L * H)
    layer = np.repeat(np.arange(L), H)
    np.testing.assert_array_equal(~np.isnan(eff), layer[:, None] < layer[None, :])
    if name == "llama":
        assert g.n_kv_heads < H  # grouped-query attention: the k/v inputs are shared
    for i, j in [(0, H), (H - 1, 2 * H + H - 1), (1, 2 * H + 2)]:
        li, hi, lj, hj = i // H, i % H, j // H, j % H
        w = [
            k for k, n in enumerate(g.writers) if n.kind == "head" and (n.layer, n.head) == (li, hi)
        ]
        readers = [
            k
            for k, n in enumerate(g.readers)
            if n.layer == lj
            and ((n.kind == "q" and n.head == hj) or (n.kind in "kv" and n.head == hj // group))
        ]
        assert len(w) == 1 and len(readers) == 3
        assert eff[i, j] == pytest.approx(np.abs(sg.scores[w[0], readers]).sum(), rel=1e-9)
    assert np.nanmax(eff) > 0


def test_edge_circuits_pick_the_largest_valid_edges():
    eff = np.full((4, 4), np.nan)
    eff[0, 2:], eff[1, 2:] = [0.5, 0.1], [0.9, 0.3]  # four valid edges
    one, half = top_edges(eff, 0.25), top_edges(eff, 0.5)
    assert one.sum() == 1 and one[1, 2]
    assert half.sum() == 2 and half[1, 2] and half[0, 2]
    assert not (top_edges(eff, 1.0) & np.isnan(eff)).any()  # never an edge that does not exist


def test_a_counterfactual_equal_to_the_prompt_carries_no_effect(models):
    m = models["llama"]
    ps = _random_pairs(m)
    same = PromptSet("same", ps.clean, ps.clean.clone(), ps.answer, ps.wrong, ps.answer_pos)
    eff = head_edge_effects(m, same, "eap-ig", 2, batch_size=8)
    np.testing.assert_allclose(eff[~np.isnan(eff)], 0.0, atol=1e-6)
    frac, clean, corrupt, acc = node_effects(m, same, batch_size=8)
    assert clean == pytest.approx(corrupt) and np.all(frac == 0)  # no gap: no share to carry
    frac, clean, corrupt, _ = node_effects(m, ps, batch_size=8)
    assert frac.shape == (m.n_layers * m.cfg.n_heads,) and np.isfinite(frac).all()


@pytest.mark.slow
def test_head_edges_on_the_real_model(real_model):
    """SmolLM2 (30 layers x 9 query heads, 3 key/value heads): 270 x 270 head edges from EAP on
    one IOI prompt; the real circuit's edges end in later layers than they start."""
    from interp.data.sae_circuits import make_task

    ps = make_task("ioi_natural", real_model.tokenizer, 1, 0)
    eff = head_edge_effects(real_model, ps, "eap", 1, batch_size=1)
    assert eff.shape == (270, 270)
    valid = ~np.isnan(eff)
    assert valid.sum() == (270 * 270 - 30 * 81) // 2
    top = top_edges(eff, 0.005)
    assert top.sum() == int(np.ceil(0.005 * valid.sum())) and (top <= valid).all()
    assert np.nanmax(eff) > 10 * np.nanmedian(eff)  # a sparse set of edges carries the effect
