"""Edge-level circuits: the graph's identities on a zoo transformer, GPT-2, GPT-NeoX (parallel
attention and MLP), Llama with grouped-query attention, and the refusal of post-LN BERT; EAP
against exact edge patching; EAP-IG at one step is EAP; batching; path patching; files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from interp.methods.circuits.attribution import edge_attribution, exact_edge_scores
from interp.methods.circuits.evaluation import CircuitEvaluator, areas, path_patching
from interp.methods.circuits.forward import build_graph, check_graph
from interp.methods.circuits.graph import Edge, ScoredGraph, make_graph
from tests.conftest import build_spec, load_hf_models


def _zoo(**kw):
    from interp.models.transformer import build_transformer
    from interp.tracing.model import Model

    spec = build_spec(**kw)
    return Model(build_transformer(spec), backend="tl", kind="transformer", model_id="zoo")


def _metric(logits, idx):
    return logits[:, -1, 3] - logits[:, -1, 5]


def _prompts(n=5, T=7, vocab=50, seed=0, positions=(1, 4)):
    g = torch.Generator().manual_seed(seed)
    clean = torch.randint(0, vocab, (n, T), generator=g)
    corrupt = clean.clone()
    for p in positions:
        corrupt[:, p] = torch.randint(0, vocab, (n,), generator=g)
    return clean, corrupt


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    hf = load_hf_models(tmp_path_factory.mktemp("hf"))
    return {
        "zoo": _zoo(),
        "zoo_rms_rotary": _zoo(normalization_type="RMS", positional_embedding_type="rotary"),
        "gpt2": hf["gpt2"],
        "neox": hf["neox"],
        "llama": hf["llama"],
        "bert": hf["bert"],
    }


ARCHS = ["zoo", "zoo_rms_rotary", "gpt2", "neox", "llama"]


def test_graph_shape_counts_edges_by_hand():
    g = make_graph("t", n_layers=2, n_heads=4, n_kv_heads=2, has_mlp=True, parallel=False)
    assert g.n_writers == 1 + 2 * (4 + 1)
    assert g.n_readers == 2 * (4 + 2 + 2 + 1) + 1
    # layer 0 attention sees the input; m0 input + 4 heads; layer 1 6 writers; m1 10; logits 11
    assert g.n_edges == 8 * 1 + 5 + 8 * 6 + 10 + 11
    p = make_graph("t", 2, 4, 4, True, parallel=True)
    assert (
        p.n_up[p.mlp_reader(0)] == 1 and p.n_up[p.mlp_reader(1)] == 6
    )  # MLPs skip their own block's heads
    assert [r.name for r in g.readers[4:8]] == ["a0.kv0<k>", "a0.kv1<k>", "a0.kv0<v>", "a0.kv1<v>"]


@pytest.mark.parametrize("arch", ARCHS)
def test_full_circuit_is_clean_and_empty_circuit_is_corrupt(models, arch):
    m = models[arch]
    g = build_graph(m)  # checks the split forward and the reader-sum identity on this model
    assert g.n_kv_heads == (2 if arch == "llama" else 4) and g.parallel == (arch == "neox")
    clean, corrupt = _prompts()
    ev = CircuitEvaluator(m, clean, corrupt, _metric, graph=g, batch_size=3)
    vals = ev.circuits(np.stack([g.valid, np.zeros_like(g.valid)]))
    assert torch.allclose(vals[0], ev.clean_values, atol=1e-4)
    assert torch.allclose(vals[1], ev.corrupt_values, atol=1e-4)
    assert (
        abs(ev.clean_mean - ev.corrupt_mean) > 1e-4
    )  # the two runs differ: the identities can fail


@pytest.mark.parametrize("arch", ARCHS)
def test_fast_gradients_equal_the_split_forward(models, arch):
    """The plain backward plus a local norm Jacobian per layer gives every reader's gradient,
    the same as the split forward with a leaf per reader (also with the input interpolated)."""
    from interp.methods.circuits.forward import dense_grads, fast_reader_grads, reader_grads, run

    m = models[arch]
    g = build_graph(m, check=False)
    clean, corrupt = _prompts(n=3)
    idx = torch.arange(3)
    emb = 0.5 * (run(m, g, clean).acts.writers[:, :, 0] + run(m, g, corrupt).acts.writers[:, :, 0])
    for kw in ({}, {"input_embed": emb}):
        out = run(m, g, clean, grad=True, **kw)
        slow = reader_grads(out, _metric(out.logits, idx), g)
        groups, writers = fast_reader_grads(m, g, clean, _metric, idx, **kw)
        fast = dense_grads(groups, g)
        assert torch.allclose(fast, slow, atol=1e-5 * float(slow.abs().max()))
        assert torch.allclose(writers, out.acts.writers, atol=1e-5)
        assert slow[:, :, g.attn_readers(1)].abs().sum() > 0  # per-head gradients, not vacuous


@pytest.mark.parametrize("arch", ARCHS)
def test_eap_rank_correlates_with_exact_patching_on_a_small_corruption(models, arch):
    m = models[arch]
    g = build_graph(m, check=False)
    clean, corrupt = _prompts(n=4)
    eap = edge_attribution(m, clean, corrupt, _metric, graph=g)
    exact = exact_edge_scores(m, clean, corrupt, _metric, graph=g, alpha=0.01)
    a, b = eap.edge_scores() * 0.01, exact.edge_scores()
    assert spearmanr(a, b).correlation > 0.95
    assert np.abs(a - b).max() <= 0.05 * np.abs(b).max()


@pytest.mark.parametrize("arch", ["zoo", "llama"])
def test_eap_ig_at_one_step_is_eap_and_batching_changes_nothing(models, arch):
    m = models[arch]
    g = build_graph(m, check=False)
    clean, corrupt = _prompts(n=5)
    eap = edge_attribution(m, clean, corrupt, _metric, graph=g, batch_size=5)
    ig1 = edge_attribution(
        m, clean, corrupt, _metric, graph=g, method="eap-ig", steps=1, batch_size=2
    )
    one = edge_attribution(m, clean, corrupt, _metric, graph=g, batch_size=1)
    scale = np.abs(eap.edge_scores()).max()
    assert np.abs(ig1.edge_scores() - eap.edge_scores()).max() <= 1e-5 * scale
    assert np.abs(one.edge_scores() - eap.edge_scores()).max() <= 1e-5 * scale


def test_eap_equals_exact_where_the_metric_is_linear_in_the_readers():
    """One attention-only layer without norms: the logit difference is linear in the logits'
    input and in each head's value input (the pattern does not move when only v changes)."""
    m = _zoo(n_layers=1, attn_only=True, normalization_type=None)
    with torch.no_grad():  # sharper attention, so that q and k edges are far from linear
        for name, p in m.module.named_parameters():
            if ".q." in name or ".k." in name:
                p.mul_(8.0)
    g = build_graph(m)
    clean, corrupt = _prompts()
    eap = edge_attribution(m, clean, corrupt, _metric, graph=g)
    exact = exact_edge_scores(m, clean, corrupt, _metric, graph=g)
    linear = [r for r, node in enumerate(g.readers) if node.kind in ("v", "logits")]
    nonlinear = [r for r, node in enumerate(g.readers) if node.kind in ("q", "k")]
    scale = np.nanmax(np.abs(exact.scores))
    assert np.nanmax(np.abs(eap.scores[:, linear] - exact.scores[:, linear])) <= 1e-5 * scale
    assert (
        np.nanmax(np.abs(eap.scores[:, nonlinear] - exact.scores[:, nonlinear])) > 1e-3 * scale
    )  # not vacuous


def test_eap_ig_converges_with_more_steps(models):
    m = models["zoo"]
    g = build_graph(m, check=False)
    clean, corrupt = _prompts(positions=(1, 2, 3, 4, 5))
    s = {
        k: edge_attribution(
            m, clean, corrupt, _metric, graph=g, method="eap-ig", steps=k
        ).edge_scores()
        for k in (1, 2, 8, 16)
    }
    assert np.linalg.norm(s[16] - s[8]) < 0.5 * np.linalg.norm(s[2] - s[1])


def test_post_ln_bert_is_refused_with_the_reason(models):
    m = models["bert"]
    with pytest.raises(ValueError, match="post-LN"):
        build_graph(m)
    g = make_graph("bert", m.n_layers, 4, 4, True, False)
    with pytest.raises(ValueError, match="pre-norm"):
        check_graph(m, g)  # the numeric identities fail too, not only the up-front test


def test_an_edge_against_the_order_does_not_exist(models):
    m = models["neox"]
    g = build_graph(m, check=False)
    clean, corrupt = _prompts(n=2)
    with pytest.raises(
        ValueError, match="does not exist"
    ):  # parallel block: m0 does not read layer 0's heads
        exact_edge_scores(
            m, clean, corrupt, _metric, graph=g, edges=[Edge(g.head_writer(0, 0), g.mlp_reader(0))]
        )


def test_path_patching_of_one_edge_is_exact_edge_patching(models):
    m = models["gpt2"]
    g = build_graph(m, check=False)
    clean, corrupt = _prompts(n=4)
    s, r = g.head_writer(0, 2), g.attn_readers(1).start + 1  # a0.h2 -> a1.h1<q>
    eff = path_patching(m, clean, corrupt, _metric, [s], [r], graph=g)
    exact = exact_edge_scores(m, clean, corrupt, _metric, graph=g, edges=[Edge(s, r)])
    assert float(eff.mean()) == pytest.approx(exact.scores[s, r], abs=1e-5)
    with pytest.raises(ValueError, match="empty"):
        path_patching(m, clean, corrupt, _metric, [g.mlp_writer(1)], [g.mlp_reader(0)], graph=g)


def test_scored_graph_round_trips_and_ranks_edges(tmp_path):
    g = make_graph("t", 2, 2, 1, True, False)
    rng = np.random.default_rng(0)
    sg = ScoredGraph(g, rng.normal(size=(g.n_writers, g.n_readers)), method="eap", meta={"n": 3})
    assert np.isnan(sg.scores[~g.valid]).all() and not np.isnan(sg.scores[g.valid]).any()
    sg.save(tmp_path / "sg")
    back = ScoredGraph.load(tmp_path / "sg")
    assert back.method == "eap" and back.meta == {"n": 3} and back.graph.n_edges == g.n_edges
    np.testing.assert_array_equal(back.scores, sg.scores)
    top = sg.top_edges(5)
    assert top.sum() == 5 and np.abs(sg.scores[top]).min() >= np.nanmax(
        np.abs(np.where(top, np.nan, sg.scores))
    )


def test_areas_of_the_ideal_and_the_empty_curve():
    assert areas([0.5], [1.0]) == pytest.approx((0.75, 0.25))  # 0 -> 0, 0.5 -> 1, 1 -> 1
    assert areas([0.0, 1.0], [1.0, 1.0]) == pytest.approx((1.0, 0.0))


def test_scorer_registry_refuses_a_taken_name_and_suggests_close_ones():
    from interp.methods.circuits import scorers

    assert {"eap", "eap-ig", "exact"} <= set(scorers.names())
    assert scorers.get("eap") is scorers.eap
    with pytest.raises(ValueError, match="'eap' registered twice"):
        scorers.register("eap")(scorers.eap_ig)
    assert scorers.get("eap") is scorers.eap  # the refused one did not replace it
    with pytest.raises(KeyError, match=r"unknown edge scorer 'eap_ig'.*Did you mean: eap-ig"):
        scorers.get("eap_ig")


def test_registered_scorers_share_one_signature_and_agree_with_the_functions(models):
    from interp.methods.circuits import scorers

    m = models["zoo"]
    g = build_graph(m)
    clean, corrupt = _prompts()
    edges = g.edges()[:6]
    got = {
        name: scorers.get(name)(m, clean, corrupt, _metric, graph=g, batch_size=5, **opts)
        for name, opts in (("eap", {}), ("eap-ig", {"steps": 3}), ("exact", {"edges": edges}))
    }
    want = {
        "eap": edge_attribution(m, clean, corrupt, _metric, graph=g, batch_size=5),
        "eap-ig": edge_attribution(
            m, clean, corrupt, _metric, method="eap-ig", steps=3, graph=g, batch_size=5
        ),
        "exact": exact_edge_scores(m, clean, corrupt, _metric, edges=edges, graph=g, batch_size=5),
    }
    for name, sg in got.items():
        assert sg.method == want[name].method
        np.testing.assert_array_equal(sg.scores, want[name].scores)
