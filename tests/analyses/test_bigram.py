"""bigram analysis end to end at tiny size, on two different models, plus its measuring parts."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import interp
from interp.analyses.bigram import (
    Choice,
    Config,
    SweepPoint,
    choose,
    pearson_finite,
    removal_test,
    ridge_fit,
)

CODE = '''def add(a, b):
    """Add two numbers."""
    return a + b


class Counter:
    def __init__(self, start=0):
        self.value = start

    def step(self, n=1):
        self.value += n
        return self.value


for i in range(10):
    x = add(i, i * 2)
    if x % 3 == 0:
        print("fizz", x)
    else:
        print(x)
'''


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    for i in range(8):
        (d / f"mod{i}.py").write_text(
            CODE.replace("add", f"add{i}").replace("Counter", f"Counter{i}") * 3
        )
    return d


def lm_with_tokenizer(path, corpus_dir, **spec_kw):
    from interp.data.corpus import load_corpus
    from interp.data.tokenizer import train_bpe
    from interp.models.transformer import build_transformer
    from interp.tracing.model import Model
    from tests.conftest import build_spec

    tok = train_bpe(load_corpus(str(corpus_dir)).train, vocab_size=120)
    spec = build_spec(d_vocab=len(tok), **spec_kw)
    m = Model(
        build_transformer(spec, tokenizer=tok),
        backend="tl",
        tokenizer=tok,
        kind="transformer",
        spec={"builder": "transformer", "spec": spec.model_dump(mode="json")},
    )
    m.save(path)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("spec_kw", [dict(), dict(n_layers=3, n_heads=2, attn_only=True)])
def test_bigram_analysis_on_tiny_models(tmp_path, corpus_dir, spec_kw, monkeypatch):
    from interp.data.bigram import Bigram

    # mask targets are made per batch from the sparse counts: the vocab x vocab table is never built
    monkeypatch.setattr(
        Bigram, "dense", lambda self: pytest.fail("the analysis built the dense bigram table")
    )
    path = lm_with_tokenizer(tmp_path / "m", corpus_dir, **spec_kw)
    other = (
        [str(lm_with_tokenizer(tmp_path / "other", corpus_dir, n_layers=3))] if not spec_kw else []
    )
    cfg = {
        "model": str(path),
        "corpus": str(corpus_dir),
        "size_models": other,
        "lambdas": [0.5, 5.0],
        "mask_steps": 20,
        "batch_size": 4,
        "seq_len": 16,
        "n_null": 200,
        "n_random": 2,
        "n_eval": 6,
        "n_resid": 8,
        "recall_k": 1,
        "temperature_growth": 1.05,
    }
    result = interp.analyses.get("bigram").run(cfg)
    sanity = [c for c in result.criteria if c.kind == "sanity"]
    assert len(sanity) == 4 and all(c.holds for c in sanity), result.summary()
    names = {c.name for c in result.criteria}
    assert {
        "sparse_subnetwork_r",
        "layer0_mlp_densest",
        "subnetwork_far_below_random",
        "removal_hurts_more_than_random",
        "overlap_with_pruning_mask_p",
        "subnetwork_beats_zero_mask_floor",
        "planted_subnetwork_recovered",
    } <= names
    assert result.metrics["planted_recovery"]["iou"] >= 0.9
    rm = result.metrics["removal"]
    assert rm["n_random"] == 10 and len(rm["random_removed"]) == 10 and 0 < rm["p_rank"] <= 1
    crit = next(c for c in result.criteria if c.name == "removal_hurts_more_than_random")
    assert crit.value == pytest.approx(rm["p_t"]) and crit.threshold == 0.05
    assert result.metrics["surprisal"]["random_complement"] == pytest.approx(rm["random_mean"])
    floor = result.metrics["zero_mask_floor"]
    assert floor["kept_fraction"] == 0.0 and -1 <= floor["r"] <= 1 and np.isfinite(floor["loss"])
    margin = next(c for c in result.criteria if c.name == "subnetwork_beats_zero_mask_floor").value
    chosen = result.metrics["sweep"][
        [p["lambda"] for p in result.metrics["sweep"]].index(result.metrics["chosen_lambda"])
    ]
    assert margin == pytest.approx(chosen["r"] - floor["r"])
    L = 3 if spec_kw else 2
    assert len(result.metrics["sweep"]) == 2
    assert all(
        0 <= p["kept_fraction"] <= 1 and -1 <= p["r_soft"] <= 1 for p in result.metrics["sweep"]
    )
    # r is read only on masks the paper's stop rule ended; every lambda's r_soft beside its r
    r_crit = next(c for c in result.criteria if c.name == "sparse_subnetwork_r")
    converged_sparse = [
        p for p in result.metrics["sweep"] if p["stopped_early"] and p["kept_fraction"] <= 0.1
    ]
    assert (r_crit.value is None) == (not converged_sparse) and "r_soft" in r_crit.description
    assert result.arrays["overlap_null"].shape == (200,)
    assert 0 < result.metrics["overlap"]["p_value"] <= 1
    for who in ("full", "subnetwork", "random"):
        assert result.arrays[f"resid_{who}_recall"].shape == (L + 1,)
        assert np.all(
            (result.arrays[f"resid_{who}_recall"] >= 0)
            & (result.arrays[f"resid_{who}_recall"] <= 1)
        )
    # the last residual stream maps to itself: its read-out equals the real surprisals
    assert result.arrays["resid_full_final_r"][-1] > 0.99
    assert result.arrays["density_layer_matrix"].shape == (L, 4 if spec_kw else 6)
    table = result.metrics["surprisal"]
    assert set(table) >= {
        "full",
        "subnetwork",
        "random_subnetwork",
        "complement",
        "random_complement",
    }
    if other:  # the first-MLP check at a second size
        (sp,) = result.metrics["size_models"]
        assert sp["n_layers"] == 3 and 0 <= sp["kept_fraction"] <= 1
        assert any(c.name == f"layer0_mlp_densest@{other[0]}" for c in result.criteria)
    result.save(tmp_path / "run")
    seen = []

    class FakeStreamlit:
        def __getattr__(self, name):
            return lambda *a, **k: seen.append(name)

    from tests.conftest import load_panel

    load_panel("bigram")(interp.Result.load(tmp_path / "run"), FakeStreamlit())
    assert (
        seen.count("dataframe") == 2 and seen.count("write") >= 3
    )  # the floor, removal and overlap lines
    back = interp.Result.load(tmp_path / "run")
    assert back.figure("sweep") is not None and back.figure("residual") is not None


def test_pearson_drops_infinite_entries():
    a = np.array([1.0, 2.0, 3.0, np.inf, 5.0])
    b = np.array([2.0, 4.0, 6.0, 1.0, np.inf])
    assert pearson_finite(a, b) == pytest.approx(1.0)
    assert np.isnan(pearson_finite(np.ones(5), b))


def test_ridge_recovers_a_linear_map():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(500, 6, generator=g)
    W = torch.randn(6, 3, generator=g)
    Y = X @ W + 2.0
    pred = ridge_fit(X, Y, alpha=1e-8)
    assert torch.allclose(pred(X), Y, atol=1e-3)


def test_ridge_fit_is_the_closed_form_with_a_relative_penalty():
    # the penalty is alpha * mean eigenvalue of the centred Gram matrix; the intercept is free
    g = torch.Generator().manual_seed(1)
    X, Y = torch.randn(40, 5, generator=g).double(), torch.randn(40, 3, generator=g).double()
    alpha = 0.3
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    G = Xc.T @ Xc
    W = torch.linalg.solve(G + alpha * torch.trace(G) / 5 * torch.eye(5, dtype=G.dtype), Xc.T @ Yc)
    Z = torch.randn(7, 5, generator=g).double()
    by_hand = (Z - X.mean(0)) @ W + Y.mean(0)
    assert torch.allclose(ridge_fit(X, Y, alpha)(Z).double(), by_hand, atol=1e-6)


def test_pearson_finite_is_the_correlation_coefficient():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=50), rng.normal(size=50)
    assert pearson_finite(a, b) == pytest.approx(np.corrcoef(a, b)[0, 1], abs=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["gpt2", "neox"])
def test_bigram_analysis_on_hugging_face_shapes(tmp_path, corpus_dir, arch):
    """GPT-2 (Conv1D weights) and GPT-NeoX (fused query_key_value) checkpoints with their own BPE
    tokenizer, random weights, saved with save_pretrained: the analysis runs end to end."""
    import transformers as T

    from interp.data.corpus import load_corpus
    from interp.data.tokenizer import train_bpe

    tok = train_bpe(load_corpus(str(corpus_dir)).train, vocab_size=120)
    torch.manual_seed(0)
    if arch == "gpt2":
        hf = T.GPT2LMHeadModel(
            T.GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=2, n_head=4, n_positions=32)
        )
    else:
        hf = T.GPTNeoXForCausalLM(
            T.GPTNeoXConfig(
                vocab_size=len(tok),
                hidden_size=32,
                num_hidden_layers=2,
                num_attention_heads=4,
                intermediate_size=64,
                max_position_embeddings=32,
            )
        )
    hf.save_pretrained(tmp_path / arch)
    tok.save_pretrained(tmp_path / arch)
    result = interp.analyses.get("bigram").run(
        {
            "model": str(tmp_path / arch),
            "corpus": str(corpus_dir),
            "lambdas": [0.5, 5.0],
            "mask_steps": 20,
            "batch_size": 4,
            "seq_len": 16,
            "n_null": 200,
            "n_random": 2,
            "n_eval": 6,
            "n_resid": 8,
            "recall_k": 1,
            "temperature_growth": 1.05,
        }
    )
    sanity = [c for c in result.criteria if c.kind == "sanity"]
    assert len(sanity) == 4 and all(c.holds for c in sanity), result.summary()
    assert result.arrays["density_layer_matrix"].shape == (
        2,
        6,
    )  # W_Q W_K W_V W_O W_in W_out per layer


def test_removal_test_is_a_one_sided_t_test_with_an_exact_rank_p():
    from scipy import stats

    rng = np.random.default_rng(0)
    rand = rng.normal(3.0, 0.05, size=10)
    hi = removal_test(3.5, rand)  # removing the subnetwork clearly hurts more
    t = (rand.mean() - 3.5) / (rand.std(ddof=1) / np.sqrt(10))
    assert hi.p_t == pytest.approx(stats.t.cdf(t, df=9)) and hi.p_t < 1e-6
    assert hi.p_rank == pytest.approx(1 / 11) and hi.difference == pytest.approx(3.5 - rand.mean())
    lo = removal_test(2.9, rand)  # it hurts less than random removals: no evidence
    assert lo.p_t > 0.9 and lo.p_rank == 1.0
    mid = removal_test(float(np.sort(rand)[6]), rand)  # 4 of 10 random removals at or above it
    assert mid.p_rank == pytest.approx(5 / 11) and mid.p_t > 0.05
    assert hi.as_json()["n_random"] == 10 and len(hi.as_json()["random_removed"]) == 10
    with pytest.raises(ValueError, match="at least 2"):
        removal_test(1.0, [0.5])
    with pytest.raises(ValueError):
        Config(n_random_removal=5)  # the brief: at least 10 random removals


def _point(kept_fraction: float, r: float, stopped_early: bool) -> SweepPoint:
    return SweepPoint(
        lam=1.0,
        kept_fraction=kept_fraction,
        r=r,
        r_soft=r,
        final_temperature=1.0,
        loss=0.0,
        steps=1,
        stopped_early=stopped_early,
        final_undecided=None,
        final_undecided_per_kept=None,
        seconds=0.0,
    )


def test_choose_reads_only_converged_sparse_masks():
    sweep = [_point(0.05, 0.95, False), _point(0.02, 0.90, True), _point(0.30, 0.99, True)]
    assert choose(sweep, 0.1) == (1, [1])  # the unconverged mask's higher r is not read
    sweep[1] = dataclasses.replace(sweep[1], stopped_early=False)
    # no converged sparse mask: the main one is the best sparse, r not read
    assert choose(sweep, 0.1) == Choice(best=0, sparse_ok=[])
    assert choose(sweep[2:], 0.1) == (0, [])  # nothing sparse: the sparsest


def test_sweep_point_writes_the_saved_keys():
    """metrics.json's sweep rows keep the keys saved runs and the dashboard read ("lambda"
    first)."""
    keys = list(_point(0.1, 0.5, True).as_json())
    assert keys[:3] == ["lambda", "kept_fraction", "r"] and "lam" not in keys
    assert keys[-1] == "by_component" and len(keys) == 12
