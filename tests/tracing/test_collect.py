"""Tests for interp.collect: batching, positions, early stop, dtypes, inputs, errors."""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

import interp
from interp.models.rnn import HookedRNN, RNNSpec
from interp.models.transformer import TransformerSpec, build_transformer
from interp.tracing import adapters as adapters_mod
from interp.tracing import collect as collect_mod
from interp.tracing import runners as runners_mod
from interp.tracing.model import Model

N, T = 13, 8
TF_HOOKS = [
    "blocks.0.attn.hook_z",
    "blocks.1.attn.hook_pattern",
    "blocks.0.attn.hook_pattern",
    "blocks.1.hook_resid_post",
]
RNN_HOOKS = ["rnn.hook_h", "rnn.hook_pre", "hook_logits"]


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("INTERP_QUIET", "1")


@pytest.fixture(scope="module")
def tf() -> Model:
    torch.manual_seed(0)
    bridge = build_transformer(
        TransformerSpec(n_layers=2, d_model=32, n_heads=4, n_ctx=32, d_vocab=50)
    )
    return Model(bridge, backend="tl", kind="transformer", model_id="tiny-tf")


@pytest.fixture(scope="module")
def rnn() -> Model:
    return interp.wrap(
        HookedRNN(RNNSpec(cell="tanh", d_hidden=16, d_vocab=20)), model_id="tiny-rnn"
    )


@pytest.fixture(scope="module")
def toks() -> torch.Tensor:
    return torch.randint(0, 20, (N, T), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("which", ["tf", "rnn"])
def test_batched_equals_unbatched_and_traced(which, tf, rnn, toks):
    m, hooks = (tf, TF_HOOKS) if which == "tf" else (rnn, RNN_HOOKS)
    full = interp.collect(m, toks, hooks, batch_size=N)
    _, traced = interp.trace(m, toks, capture=hooks)
    for bs in (1, 7, "auto"):
        store = interp.collect(m, toks, hooks, batch_size=bs)
        for h in hooks:
            assert store[h].shape == traced[h].shape
            assert_close(store[h], full[h])
    for h in hooks:
        assert_close(full[h], traced[h])
    assert torch.equal(full.tokens, toks)
    assert full.manifest.complete and full.path is None and len(full) == N


def test_rnn_per_step_shape(rnn, toks):
    store = interp.collect(rnn, toks, ["rnn.hook_h"], batch_size=5)
    assert store["rnn.hook_h"].shape == (N, T, 16)


def test_positions_are_slices_of_all(tf, rnn, toks):
    cases = [
        (tf, ["blocks.1.hook_resid_post", "blocks.0.attn.hook_pattern", "blocks.0.attn.hook_z"]),
        (rnn, ["rnn.hook_h", "hook_logits"]),
    ]
    for m, hooks in cases:
        full = interp.collect(m, toks, hooks, batch_size=4)
        for h in hooks:
            a = full[h]
            pd = 2 if h.endswith("hook_pattern") else 1
            moved = a.movedim(pd, 1)
            expect = [
                ("last", moved[:, -1]),
                ("mean", moved.mean(1)),
                (2, moved[:, 2]),
                (-3, moved[:, -3]),
                (slice(1, 6, 2), moved[:, 1:6:2].movedim(1, pd)),
            ]
            for pos, want in expect:
                got = interp.collect(m, toks, [h], batch_size=5, positions=pos)[h]
                assert got.shape == want.shape, (h, pos)
                assert_close(got, want)


def test_positions_respect_lengths(tf, toks):
    h = "blocks.1.hook_resid_post"
    lengths = torch.tensor([1 + i % T for i in range(N)])
    full = interp.collect(tf, toks, [h])[h]
    last = interp.collect(tf, toks, [h], positions="last", lengths=lengths, batch_size=4)
    mean = interp.collect(tf, toks, [h], positions="mean", lengths=lengths, batch_size=4)
    for i in range(N):
        assert_close(last[h][i], full[i, lengths[i] - 1])
        assert_close(mean[h][i], full[i, : lengths[i]].mean(0))
    assert last.manifest.n_tokens == int(lengths.sum())


class _CharTokenizer:
    """A tiny tokenizer: one token per character, pad id 0, no BOS."""

    pad_token_id = 0
    bos_token_id = None

    def encode(self, text, add_special_tokens=False):
        return [1 + ord(c) % 19 for c in text]

    def decode(self, ids):
        return "".join(chr(96 + i) for i in ids)


def test_text_input_pads_and_last_is_last_real_token():
    m = interp.wrap(
        HookedRNN(RNNSpec(cell="tanh", d_hidden=16, d_vocab=20)), tokenizer=_CharTokenizer()
    )
    texts = ["abc", "hello world", "x", "four"]
    store = interp.collect(m, texts, ["rnn.hook_h"], positions="last", batch_size=3)
    assert store.tokens.shape == (4, len("hello world"))
    for i, t in enumerate(texts):
        _, acts = interp.trace(m, [t], capture=["rnn.hook_h"])
        assert_close(store["rnn.hook_h"][i], acts["rnn.hook_h"][0, -1])
    assert store.manifest.n_tokens == sum(len(t) for t in texts)


def _block_leaves(m: Model, layer: int) -> list[torch.nn.Module]:
    """The plain ``nn.Linear`` leaves of one block: both the bridge and the native path call
    them."""
    return [mod for mod in m.module.blocks[layer].modules() if type(mod) is torch.nn.Linear]


@pytest.mark.parametrize(
    "extra", [[], ["blocks.0.attn.hook_attn_scores"]], ids=["native", "bridge"]
)
def test_early_stop_skips_later_blocks(tf, toks, extra):
    fired = []
    handles = [
        leaf.register_forward_hook(lambda mod, args, out: fired.append(1))
        for leaf in _block_leaves(tf, 1)
    ]
    try:
        hooks = ["blocks.0.hook_resid_post", "blocks.0.attn.hook_z", *extra]
        store = interp.collect(tf, toks, hooks, batch_size=4)
        assert fired == []
        _, traced = interp.trace(tf, toks, capture=hooks)
        for h in hooks:
            assert_close(store[h], traced[h])
        fired.clear()
        interp.collect(tf, toks, ["blocks.1.hook_resid_post", *extra], batch_size=N)
        assert fired  # control: capturing block 1 does run it
    finally:
        for h in handles:
            h.remove()


def test_dtype_cast(tf, toks):
    h = "blocks.0.hook_resid_post"
    full = interp.collect(tf, toks, [h])[h]
    half = interp.collect(tf, toks, [h], dtype=torch.float16, batch_size=5)
    assert half[h].dtype == torch.float16 and half.manifest.arrays[h].dtype == "float16"
    assert_close(half[h].float(), full, atol=1e-2, rtol=1e-2)


def test_iterable_of_batches_and_vector_input(tf, toks):
    h = "blocks.0.hook_resid_post"
    a = interp.collect(tf, toks, [h])
    b = interp.collect(tf, [toks[:5], toks[5:]], [h])
    assert_close(a[h], b[h])
    vec = interp.wrap(HookedRNN(RNNSpec(cell="gru", d_hidden=8, d_input=3, d_out=2)))
    x = torch.randn(6, 5, 3)
    store = interp.collect(vec, x, ["rnn.hook_h"], batch_size=4)
    _, acts = interp.trace(vec, x, capture=["rnn.hook_h"])
    assert_close(store["rnn.hook_h"], acts["rnn.hook_h"])
    assert store.tokens is None


def test_nnsight_backend():
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    m = interp.wrap(net)
    x = torch.randn(9, 4)
    store = interp.collect(m, x, ["0.hook_out", "2.hook_in"], batch_size=4)
    assert_close(store["0.hook_out"], net[0](x))
    assert_close(store["2.hook_in"], net[1](net[0](x)))


def test_oom_halves_batch(tf, toks, monkeypatch):
    h = "blocks.0.hook_resid_post"
    want = interp.collect(tf, toks, [h])[h]
    real = collect_mod.run_batch
    sizes = []

    def flaky(m, xb, *args):
        sizes.append(len(xb))
        if len(xb) > 3:
            raise RuntimeError("CUDA out of memory. Tried to allocate 1 GiB")
        return real(m, xb, *args)

    monkeypatch.setattr(collect_mod, "run_batch", flaky)
    got = interp.collect(tf, toks, [h], batch_size="auto")
    assert_close(got[h], want)
    assert max(sizes) == N and 3 in sizes


def test_unknown_hook_and_bad_args(tf, toks):
    with pytest.raises(KeyError, match="blocks.0.hook_resid_post"):
        interp.collect(tf, toks, ["blocks.0.hook_resid_pots"])
    with pytest.raises(ValueError, match="positions"):
        interp.collect(tf, toks, ["blocks.0.hook_resid_post"], positions="first")
    store = interp.collect(tf, toks, ["blocks.0.hook_resid_post"])
    with pytest.raises(KeyError, match="Did you mean: blocks.0.hook_resid_post"):
        store["blocks.0.hook_resid_pots"]


@pytest.mark.parametrize(
    "arch",
    [
        {},
        {"positional_embedding_type": "rotary", "normalization_type": "RMS"},
        {"attn_only": True, "act_fn": "relu"},
    ],
    ids=["ln", "rotary-rms", "attn-only"],
)
def test_native_adapter_matches_bridge_hooks(arch, toks):
    """Every name an adapter maps reads the same tensor on the native tree as the bridge's hook."""
    m = Model(
        build_transformer(
            TransformerSpec(n_layers=2, d_model=32, n_heads=4, n_ctx=32, d_vocab=50, **arch)
        ),
        backend="tl",
        kind="transformer",
    )
    table = adapters_mod.ADAPTERS["NativeModel"]
    mapped = [h for h in m.hook_names if adapters_mod.adapter_point(table, h) is not None]
    runner = runners_mod.make_runner(m, mapped, runners_mod.Reducer("all", None, None))
    assert isinstance(runner, runners_mod.PlainRunner)  # the fast path serves all of them
    assert {
        "blocks.1.attn.hook_z",
        "blocks.1.attn.hook_pattern",
        "blocks.1.hook_resid_post",
    } <= set(mapped)
    store = interp.collect(m, toks, mapped, batch_size=5)
    _, traced = interp.trace(m, toks, capture=mapped)
    for h in mapped:
        assert_close(store[h], traced[h], msg=h)
    # a name no adapter lists falls back to the bridge's hooks, with the same result
    slow = interp.collect(
        m, toks, ["blocks.0.attn.hook_attn_scores", "blocks.1.hook_resid_post"], batch_size=5
    )
    assert_close(slow["blocks.1.hook_resid_post"], store["blocks.1.hook_resid_post"])


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_rnn_plain_hooks_match_trace(cell, toks):
    m = interp.wrap(HookedRNN(RNNSpec(cell=cell, d_hidden=12, d_vocab=20)))
    hooks = [h for h in m.hook_names]
    store = interp.collect(m, toks, hooks, batch_size=4)
    _, traced = interp.trace(m, toks, capture=hooks)
    for h in hooks:
        assert_close(store[h], traced[h], msg=h)
    only_h = interp.collect(
        m, toks, ["rnn.hook_h"], batch_size=4
    )  # the adapter's shortcut, with early stop
    assert_close(only_h["rnn.hook_h"], traced["rnn.hook_h"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_pipeline_equals_cpu(toks):
    m = Model(
        build_transformer(TransformerSpec(n_layers=2, d_model=32, n_heads=4, n_ctx=32, d_vocab=50)),
        backend="tl",
        kind="transformer",
    )
    hooks = ["blocks.0.attn.hook_z", "blocks.1.hook_resid_post"]
    cpu = interp.collect(m, toks, hooks, batch_size=3)
    gpu = interp.collect(m, toks, hooks, batch_size=3, device="cuda")
    for h in hooks:
        assert gpu[h].device.type == "cpu"
        assert_close(gpu[h], cpu[h], atol=1e-4, rtol=1e-4)
    half = interp.collect(m, toks, hooks, batch_size=4, device="cuda", autocast="bf16")
    for h in hooks:
        assert_close(half[h].float(), cpu[h], atol=0.1, rtol=0.1)
    m.to("cpu")


def test_autocast_runs_the_forward_in_low_precision(tf, toks):
    h = "blocks.1.mlp.hook_pre"  # a linear layer's output: bf16 under autocast
    full = interp.collect(tf, toks, [h])[h]
    low = interp.collect(tf, toks, [h], autocast="bf16", batch_size=5)[h]
    assert low.dtype == torch.bfloat16  # computed under autocast, stored as computed
    assert_close(low.float(), full, atol=0.1, rtol=0.05)


def test_capture_sees_a_users_persistent_hook_edit(rnn, toks):
    """A module with hooks of its own gets torch hooks after them: collect sees the edited value."""
    h = "hook_logits"
    clean = interp.collect(rnn, toks, [h])[h]
    handle = rnn.module.hook_dict[h].register_forward_hook(lambda mod, args, out: out * 2)
    try:
        edited = interp.collect(rnn, toks, [h], batch_size=5)[h]
    finally:
        handle.remove()
    assert_close(edited, 2 * clean)
    assert "forward" not in rnn.module.hook_dict[h].__dict__  # wrappers are removed afterwards
    assert_close(interp.collect(rnn, toks, [h])[h], clean)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(dataset=[]), "dataset is empty"),
        (dict(positions=99), "positions=99 is outside the sequence"),
        (dict(positions=-13), "outside the sequence"),
        (dict(batch_size="big"), "positive int or 'auto'"),
        (dict(batch_size=0), ">= 1"),
        (dict(dataset=torch.full((2, 4), 50)), r"\[0, 50\)"),
    ],
)
def test_collect_names_the_bad_argument(tiny_gpt, kwargs, words):
    args = {
        "dataset": torch.zeros(2, 12, dtype=torch.long),
        "hooks": ["blocks.0.hook_resid_post"],
        **kwargs,
    }
    with pytest.raises((ValueError, TypeError), match=words):
        interp.collect(tiny_gpt, **args)
