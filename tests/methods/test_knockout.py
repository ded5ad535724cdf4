"""Attention knockout (:mod:`interp.methods.knockout`): a hand-built model whose information
path is known, the key/value fast path against a full recompute on several models, the
edit's equivalence with -inf on the scores, and the run-time checks the analyses use."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from interp.methods import knockout as ko
from interp.tracing import attention as at
from interp.tracing.model import Model
from tests.conftest import build_spec

# ------------------------------------------------------------ hand-built two-hop model
# Positions: 0 = BOS, 1 = source, 2 = relay, 3..T-2 = filler, T-1 = last.
# Layer 0: the relay position attends to the source and copies its token into block B;
#          every other position attends to BOS (whose value is zero).
# Layer 1: the last position attends to the relay and copies block B into block C;
#          the unembedding reads block C. So the answer is the source token, and the
#          only path is source -> relay (layer 0) -> last (layer 1).
V, T = 6, 6
A, B, C = 0, V, 2 * V  # residual blocks: token identity, relay copy, output copy
F_BIAS, F_BOS, F_SRC, F_RELAY, F_LAST = 3 * V, 3 * V + 1, 3 * V + 2, 3 * V + 3, 3 * V + 4
D = 24


def two_hop_model() -> Model:
    from interp.models.transformer import build_transformer

    spec = build_spec(
        n_layers=2,
        d_model=D,
        n_heads=1,
        d_vocab=V,
        n_ctx=T,
        attn_only=True,
        normalization_type=None,
    )
    bridge = build_transformer(spec)
    native = bridge.original_model
    raw = at._raw
    with torch.no_grad():
        for p in native.parameters():
            p.zero_()
        emb = raw(native.tok_embed).weight  # token 0 (BOS) embeds to zero
        for t in range(1, V):
            emb[t, A + t] = 1.0
        pos = raw(native.pos).weight
        pos[:, F_BIAS] = 1.0
        pos[0, F_BOS] = pos[1, F_SRC] = pos[2, F_RELAY] = pos[T - 1, F_LAST] = 1.0
        c = 20.0 * math.sqrt(D)  # score gap of 20 after the 1/sqrt(d_head) scale
        for layer, (query_flag, key_flag, src_block, dst_block) in enumerate(
            [(F_RELAY, F_SRC, A, B), (F_LAST, F_RELAY, B, C)]
        ):
            attn = native.layers[layer].attn
            q, k, v, o = (
                raw(attn.q).weight,
                raw(attn.k).weight,
                raw(attn.v).weight,
                raw(attn.o).weight,
            )
            q[0, F_BIAS] = c
            q[1, query_flag] = 2 * c
            k[0, F_BOS] = 1.0
            k[1, key_flag] = 1.0
            for t in range(V):
                v[dst_block + t, src_block + t] = 1.0
            o.copy_(torch.eye(D))
        raw(native.head).weight[:, C : C + V] = 10.0 * torch.eye(V)
    bridge.eval()
    return Model(bridge, backend="tl", kind="transformer", model_id="two_hop", spec={})


def _inputs(n=5):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(1, V, (n, T), generator=g)
    x[:, 0] = 0
    return x


def _group(n, positions, length=T):
    g = torch.zeros(n, length, dtype=torch.bool)
    g[:, positions] = True
    return g


def test_hand_built_model_routes_source_through_relay():
    m = two_hop_model()
    x = _inputs()
    n = len(x)
    answer = x[:, 1]
    logits = m(x)[:, -1]
    assert (logits.argmax(-1) == answer).all()
    groups = {
        "source": _group(n, [1]),
        "relay": _group(n, [2]),
        "last": _group(n, [T - 1]),
        "filler": _group(n, list(range(3, T - 1))),
    }
    edges = [("source", "relay"), ("relay", "last"), ("source", "last"), ("filler", "last")]
    for fast in (True, False):
        res = ko.sweep(m, x, groups, edges, answer, k=1, fast=fast)
        s = {name: v.mean(1).numpy() for name, v in res["score"].items()}  # [L]
        # the known path: source->relay only matters in layer 0, relay->last only in layer 1
        # cut: the output falls to uniform over the V tokens, p = 1/V
        chance = (1 / V - 1) * 100
        assert abs(s["source->relay"][0] - chance) < 1 and abs(s["source->relay"][1]) < 1e-4
        assert abs(s["relay->last"][1] - chance) < 1 and abs(s["relay->last"][0]) < 1e-4
        # edges off the path change nothing
        assert np.abs(s["source->last"]).max() < 1e-4 and np.abs(s["filler->last"]).max() < 1e-4
    # a window of 2 layers covers both hops' layers
    res = ko.sweep(m, x, groups, [("relay", "last")], answer, k=2)
    assert (res["score"]["relay->last"].mean(1) < -80).all()


def test_block_pattern_equals_minus_inf_on_scores():
    g = torch.Generator().manual_seed(1)
    scores = torch.randn(2, 3, 5, 5, generator=g)
    causal = torch.ones(5, 5, dtype=torch.bool).triu(1)
    block = torch.rand(2, 5, 5, generator=g) < 0.4
    pattern = torch.softmax(scores.masked_fill(causal, -math.inf), -1)
    ref = torch.softmax(scores.masked_fill(causal | block[:, None], -math.inf), -1)
    out = ko.block_pattern(pattern, block & ~causal)
    full = (
        (block | causal).all(-1)[:, None, :, None].expand_as(out)
    )  # every key blocked -> zero row
    assert torch.allclose(out[~full], ref[~full], atol=1e-6)
    assert (out[full] == 0).all()
    untouched = ~(block & ~causal).any(-1)[:, None, :, None].expand_as(out)
    assert torch.equal(out[untouched], pattern[untouched])


def _random_models():
    from interp.models.transformer import build_transformer

    specs = [
        build_spec(),
        build_spec(n_layers=3, normalization_type="RMS", act_fn="relu"),
        build_spec(attn_only=True, normalization_type=None, init_seed=2),
    ]
    return [
        Model(build_transformer(s), backend="tl", kind="transformer", model_id=f"m{i}", spec={})
        for i, s in enumerate(specs)
    ]


@pytest.mark.parametrize("model_index", [0, 1, 2])
def test_fast_last_row_equals_full_recompute(model_index):
    m = _random_models()[model_index]
    g = torch.Generator().manual_seed(model_index)
    x = torch.randint(0, 50, (4, 16), generator=g)
    cache = ko.clean_cache(m, x)
    last = _group(4, [15], 16)
    for k in (1, 2):
        for layer in range(m.n_layers):
            layers = ko.window(layer, k, m.n_layers)
            for src in (
                torch.rand(4, 16, generator=g) < 0.5,
                torch.ones(4, 16, dtype=torch.bool),
                last,
            ):
                fast = ko.last_row_knockout(m, cache, src, layers)
                full = ko.knockout_logits(m, x, ko.edge_block(last, src), layers)[:, -1]
                assert (fast - full).abs().max() < 1e-5
                assert (full - cache.logits[:, -1]).abs().max() > 1e-4  # the knockout did something
    # nothing blocked: exactly the clean logits on both paths
    none = torch.zeros(4, 16, dtype=torch.bool)
    assert torch.equal(ko.last_row_knockout(m, cache, none, [0]), cache.logits[:, -1])
    assert torch.equal(ko.knockout_logits(m, x, ko.edge_block(last, none), [0]), cache.logits)


@pytest.mark.parametrize("model_index", [0, 1, 2])
def test_complete_cut_equals_the_attention_removed_oracle_and_a_partial_cut_does_not(model_index):
    m = _random_models()[model_index]
    x = torch.randint(0, 50, (3, 12), generator=torch.Generator().manual_seed(7 + model_index))
    cache = ko.clean_cache(m, x)
    every = torch.ones(3, 12, dtype=torch.bool)
    oracle = ko.attention_removed_logits(m, x)
    cut = ko.last_row_knockout(m, cache, every, range(m.n_layers))
    assert (cut - oracle).abs().max() < 1e-5
    # a cut that misses one key, or one layer, is not the oracle (so the check can fail)
    missing_key = every.clone()
    missing_key[:, 0] = False
    assert (
        ko.last_row_knockout(m, cache, missing_key, range(m.n_layers)) - oracle
    ).abs().max() > 1e-4
    assert (ko.last_row_knockout(m, cache, every, range(1, m.n_layers)) - oracle).abs().max() > 1e-4
    # the oracle of some layers only removes the attention output there
    assert (
        ko.attention_removed_logits(m, x, [0]) - ko.last_row_knockout(m, cache, every, [0])
    ).abs().max() < 1e-5


def test_window_and_edge_block_keep_causal_mask():
    assert (
        ko.window(0, 3, 6) == [0, 1]
        and ko.window(3, 3, 6) == [2, 3, 4]
        and ko.window(5, 1, 6) == [5]
    )
    allg = torch.ones(1, 4, dtype=torch.bool)
    assert torch.equal(ko.edge_block(allg, allg)[0], torch.ones(4, 4, dtype=torch.bool).tril())


def test_fast_path_refuses_unsupported_models():
    from interp.models.transformer import build_transformer

    m = Model(
        build_transformer(build_spec(positional_embedding_type="rotary")),
        backend="tl",
        kind="transformer",
        spec={},
    )
    assert ko.supports_fast_path(m) is not None
    x = torch.randint(0, 50, (2, 8))
    with pytest.raises(NotImplementedError):
        ko.last_row_knockout(m, ko.clean_cache(m, x), torch.ones(2, 8, dtype=torch.bool), [0])
    # the sweep falls back to full recomputes
    groups = {
        "all": torch.ones(2, 8, dtype=torch.bool),
        "last": torch.arange(8)[None].expand(2, 8) == 7,
    }
    res = ko.sweep(m, x, groups, [("all", "last")], torch.zeros(2, dtype=torch.long), fast=True)
    assert res["score"]["all->last"].shape == (2, 2)


def test_knockout_modes_registry_agree_and_refuse_bad_names(tiny_gpt):
    assert ko.names() == ["full", "last_row"]
    with pytest.raises(ValueError, match="registered twice"):
        ko.register("full")(ko.full_knockout)
    with pytest.raises(KeyError, match="Did you mean: last_row"):
        ko.get("last-row")
    x = torch.randint(0, 50, (3, 10), generator=torch.Generator().manual_seed(5))
    pos = torch.arange(10).expand(3, 10)
    src, dst = pos < 6, pos == 9
    windows = [ko.window(layer, 2, tiny_gpt.n_layers) for layer in range(tiny_gpt.n_layers)]
    cache = ko.clean_cache(tiny_gpt, x)
    full = ko.get("full")(tiny_gpt, x, None, dst, src, windows)
    fast = ko.get("last_row")(tiny_gpt, x, cache, dst, src, windows)
    assert full.shape == fast.shape == (len(windows), 3, cache.logits.shape[-1])
    assert (full - fast).abs().max() < 1e-5
    assert (full - cache.logits[None, :, -1]).abs().max() > 1e-4  # the edge was cut
    with pytest.raises(ValueError, match="needs the clean run's cache"):
        ko.get("last_row")(tiny_gpt, x, None, dst, src, windows)


def test_nothing_blocked_gap_is_exactly_zero_and_fast_vs_full_agree(tiny_gpt):
    x = torch.randint(0, 50, (3, 10), generator=torch.Generator().manual_seed(4))
    cache = ko.clean_cache(tiny_gpt, x)
    assert ko.nothing_blocked_gap(tiny_gpt, x, cache.logits) == 0.0
    pos = torch.arange(10).expand(3, 10)
    groups = {"early": pos < 5, "late": (pos >= 5) & (pos < 9), "last": pos == 9}
    edges = [
        ("early", "last"),
        ("late", "last"),
        ("early", "late"),
    ]  # the last edge is not into last: skipped
    gap, seconds = ko.fast_vs_full_gap(tiny_gpt, x, groups, cache, 1, edges)
    assert gap < 1e-5 and set(seconds) == {"clean_forward_s", "fast_sweep_s", "full_sweep_s"}


def test_pattern_edits_name_every_layer_and_knockout_edits_skip_empty_blocks(tiny_gpt):
    block = torch.zeros(1, 4, 4, dtype=torch.bool)
    assert ko.knockout_edits(tiny_gpt, block, [0, 1]) == {}
    assert list(ko.pattern_edits(tiny_gpt, block, [0, 1])) == [
        tiny_gpt.hook("pattern", 0),
        tiny_gpt.hook("pattern", 1),
    ]
    block[0, 3, 1] = True
    assert list(ko.knockout_edits(tiny_gpt, block, [1])) == [tiny_gpt.hook("pattern", 1)]


# ------------------------------------------------------------ Hugging Face models: their own cache
@pytest.fixture(scope="module")
def hf_dirs(tmp_path_factory):
    """GPT-2 (2 layers), GPT-NeoX (3) and a Llama with grouped-query attention and rotary (4),
    d 32, random weights, saved with ``save_pretrained`` (no download)."""
    import transformers as tr

    root = tmp_path_factory.mktemp("ko_hf")
    torch.manual_seed(0)
    small = dict(
        vocab_size=50,
        hidden_size=32,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    hf = {
        "gpt2": tr.GPT2LMHeadModel(
            tr.GPT2Config(vocab_size=50, n_embd=32, n_layer=2, n_head=4, n_positions=64)
        ),
        "neox": tr.GPTNeoXForCausalLM(tr.GPTNeoXConfig(**small, num_hidden_layers=3)),
        "llama": tr.LlamaForCausalLM(
            tr.LlamaConfig(**small, num_hidden_layers=4, num_key_value_heads=2)
        ),
    }
    for name, model in hf.items():
        model.save_pretrained(root / name)
    return {name: str(root / name) for name in hf}


@pytest.fixture(scope="module")
def hf_models(hf_dirs):
    """The checkpoints of ``hf_dirs`` loaded the way a user loads one."""
    import interp

    return {name: interp.load_model(path, device="cpu") for name, path in hf_dirs.items()}


HF_ARCHS = ["gpt2", "neox", "llama"]


@pytest.mark.parametrize("arch", HF_ARCHS)
def test_hf_fast_last_row_equals_full_recompute(hf_models, arch):
    m = hf_models[arch]
    assert ko.supports_fast_path(m) is None
    n, T = 3, 12
    g = torch.Generator().manual_seed(7)
    x = torch.randint(1, 50, (n, T), generator=g)
    cache = ko.clean_cache(m, x)
    assert cache.past is not None and len(cache.past) == m.n_layers
    torch.testing.assert_close(cache.logits, m(x), atol=1e-6, rtol=0)
    last = _group(n, [T - 1], T)
    sources = {
        "random": torch.rand(n, T, generator=g) < 0.5,
        "every key": torch.ones(n, T, dtype=torch.bool),
        "all but the last": ~last,
        "last only": last,
    }
    for k in (1, 2):
        windows = [ko.window(layer, k, m.n_layers) for layer in range(m.n_layers)]
        for what, src in sources.items():
            batched = ko.last_row_knockouts(m, cache, src, windows)  # [L, B, V]
            for layer, layers in enumerate(windows):
                fast = ko.last_row_knockout(m, cache, src, layers)
                full = ko.knockout_logits(m, x, ko.edge_block(last, src), layers)[:, -1]
                assert (fast - full).abs().max() < 1e-5, (what, k, layer)
                assert (batched[layer] - full).abs().max() < 1e-5, (what, k, layer)
                assert (full - cache.logits[:, -1]).abs().max() > 1e-4, (
                    what,
                    k,
                    layer,
                )  # the knockout did something
    # nothing blocked: exactly the clean logits
    none = torch.zeros(n, T, dtype=torch.bool)
    assert torch.equal(ko.last_row_knockout(m, cache, none, [0]), cache.logits[:, -1])
    assert torch.equal(
        ko.last_row_knockouts(m, cache, none, [[0], [1]]), cache.logits[:, -1][None].repeat(2, 1, 1)
    )
    # the clean cache is not consumed: a second use gives the same numbers
    again = ko.last_row_knockout(m, cache, ~last, [0])
    assert torch.equal(again, ko.last_row_knockout(m, cache, ~last, [0]))


@pytest.mark.parametrize("arch", HF_ARCHS)
def test_hf_sweep_fast_equals_full_and_gap_check(hf_models, arch):
    m = hf_models[arch]
    n, T = 2, 10
    x = torch.randint(1, 50, (n, T), generator=torch.Generator().manual_seed(3))
    pos = torch.arange(T).expand(n, T)
    groups = {"early": pos < 5, "late": (pos >= 5) & (pos < T - 1), "last": pos == T - 1}
    edges = [("early", "last"), ("late", "last"), ("early", "late")]
    answer = x[:, 0]
    fast = ko.sweep(m, x, groups, edges, answer, k=2, fast=True)
    full = ko.sweep(m, x, groups, edges, answer, k=2, fast=False)
    for name in fast["p"]:
        assert (fast["p"][name] - full["p"][name]).abs().max() < 1e-6, name
    cache = ko.clean_cache(m, x)
    gap, seconds = ko.fast_vs_full_gap(m, x, groups, cache, 1, edges)
    assert gap < 1e-5 and set(seconds) == {"clean_forward_s", "fast_sweep_s", "full_sweep_s"}
    assert ko.nothing_blocked_gap(m, x, cache.logits) == 0.0


def planted_gpt2(root) -> Model:
    """A 2-layer GPT-2 whose last position copies the token at position 1 (layer 0 attends there,
    the output projection writes that token's direction into the residual, the tied unembedding
    reads it); everything else is zero. Blocking position 1 -> last in layer 0 changes the
    answer."""
    import transformers as tr

    import interp

    model = tr.GPT2LMHeadModel(
        tr.GPT2Config(vocab_size=50, n_embd=32, n_layer=2, n_head=4, n_positions=16)
    )
    T, c = 8, 10.0
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        for mod in model.modules():
            if isinstance(mod, torch.nn.LayerNorm):
                mod.weight.fill_(1.0)
        for t in range(1, 9):
            model.transformer.wte.weight[t, t] = 1.0  # token t -> dim t (tied with the unembedding)
        model.transformer.wpe.weight[1, 20] = 1.0  # the source position's flag
        model.transformer.wpe.weight[T - 1, 21] = 1.0  # the last position's flag
        w = model.transformer.h[0].attn.c_attn.weight  # Conv1D [d, 3d]: x @ w = (q | k | v)
        w[21, 0] = c  # head 0 query: "I am the last position"
        w[20, 32] = 1.0  # head 0 key: "I am the source"
        for j in range(8):
            w[j + 1, 64 + j] = 1.0  # head 0 value: the token's dims 1..8
            model.transformer.h[0].attn.c_proj.weight[j, j + 1] = (
                10.0  # ... written back to dims 1..8
            )
    model.save_pretrained(root)
    return interp.load_model(str(root), device="cpu")


def test_hf_planted_copy_is_cut_by_blocking_the_source(tmp_path):
    m = planted_gpt2(tmp_path / "planted")
    n, T = 6, 8
    g = torch.Generator().manual_seed(5)
    x = torch.randint(5, 9, (n, T), generator=g)  # fillers: tokens 5..8
    x[:, 1] = torch.randint(1, 5, (n,), generator=g)  # the source: tokens 1..4, found nowhere else
    answer = x[:, 1]
    cache = ko.clean_cache(m, x)
    assert (cache.logits[:, -1].argmax(-1) == answer).all()
    src, last = _group(n, [1], T), _group(n, [T - 1], T)
    for layers, changes in (([0], True), ([1], False)):
        fast = ko.last_row_knockout(m, cache, src, layers)
        full = ko.knockout_logits(m, x, ko.edge_block(last, src), layers)[:, -1]
        assert (fast - full).abs().max() < 1e-5
        assert bool((fast.argmax(-1) != answer).all()) is changes
    res = ko.sweep(m, x, {"source": src, "last": last}, [("source", "last")], answer, k=1)
    s = res["score"]["source->last"].mean(1)  # [L]
    assert s[0] < -50 and abs(s[1]) < 1e-3


def test_hf_fast_path_refuses_bidirectional_and_soft_capped_models(hf_models, tmp_path):
    import transformers as tr

    import interp

    bert = tr.BertForMaskedLM(
        tr.BertConfig(
            vocab_size=50,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            max_position_embeddings=32,
        )
    )
    bert.save_pretrained(tmp_path / "bert")
    m = interp.load_model(str(tmp_path / "bert"), device="cpu")
    reason = ko.supports_fast_path(m)
    assert reason is not None and "bidirectional" in reason
    x = torch.randint(1, 50, (2, 8))
    with pytest.raises(NotImplementedError, match="bidirectional"):
        ko.last_row_knockout(m, ko.clean_cache(m, x), torch.ones(2, 8, dtype=torch.bool), [0])
    groups = {
        "all": torch.ones(2, 8, dtype=torch.bool),
        "last": torch.arange(8)[None].expand(2, 8) == 7,
    }
    res = ko.sweep(
        m, x, groups, [("all", "last")], torch.zeros(2, dtype=torch.long), fast=True
    )  # full recomputes
    assert res["score"]["all->last"].shape == (2, 2)
    # ... which do cut the edges: BERT's attention runs inside the HF module, so the block goes
    # in as a mask; blocking some keys for every query in every layer is BERT's own key
    # (padding) mask
    keys = torch.zeros(2, 8, dtype=torch.bool)
    keys[:, [2, 5]] = True
    cut = ko.knockout_logits(
        m,
        x,
        ko.edge_block(torch.ones(2, 8, dtype=torch.bool), keys) | keys[:, None, :],
        range(m.n_layers),
    )
    with torch.no_grad():
        own = m.module.original_model(x, attention_mask=(~keys).long()).logits
    torch.testing.assert_close(cut, own, atol=1e-5, rtol=0)
    assert (cut - m(x)).abs().max() > 1e-3

    llama = hf_models["llama"]
    cfg = llama.module.original_model.config
    cfg.attn_logit_softcapping = 50.0
    try:
        assert "soft-capped" in ko.supports_fast_path(llama)
    finally:
        del cfg.attn_logit_softcapping
    assert ko.supports_fast_path(llama) is None


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("arch", HF_ARCHS)
def test_hf_fast_path_on_cuda_equals_full_recompute(hf_dirs, arch):
    import interp

    m = interp.load_model(hf_dirs[arch], device="cuda")
    n, T = 4, 32
    x = torch.randint(1, 50, (n, T), generator=torch.Generator().manual_seed(11)).cuda()
    pos = torch.arange(T, device="cuda").expand(n, T)
    src, last = pos < T // 2, pos == T - 1
    cache = ko.clean_cache(m, x)
    windows = [ko.window(layer, 2, m.n_layers) for layer in range(m.n_layers)]
    fast = ko.last_row_knockouts(m, cache, src, windows)
    for layer, layers in enumerate(windows):
        full = ko.knockout_logits(m, x, ko.edge_block(last, src), layers)[:, -1]
        assert (
            fast[layer].device.type == "cuda" and (fast[layer] - full).abs().max() < 1e-4
        )  # TF32 matmuls may be on
