"""``interp.generate``: the generation identities on a zoo transformer, GPT-2, GPT-NeoX and
Llama with grouped-query attention (random weights, saved and loaded like a checkpoint).

- greedy generation without edits is the Hugging Face model's own ``generate`` (a plain HF
  model loaded from the same directory, no bridge), logits included;
- with the key/value cache it equals the no-cache recompute under an edit that depends on the
  absolute position;
- a batch of prompts of different lengths (left padding) equals each prompt alone.
"""

from __future__ import annotations

import pytest
import torch

import interp
from interp.tracing.generate import (
    Positions,
    cache_kind,
    choose,
    from_position,
    generate,
    only_new,
    only_prompt,
)

ARCHS = ["zoo", "zoo-rotary", "gpt2", "neox", "llama"]
ROWS = [[1, 5, 7, 9, 11, 3, 2], [2, 8], [4, 4, 6, 10]]


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("gen_hf")


@pytest.fixture(scope="module")
def models(hf_dir):
    from interp.models.transformer import build_transformer
    from interp.tracing.model import Model
    from tests.conftest import build_spec, load_hf_models

    out = {}
    for name, extra in (("zoo", {}), ("zoo-rotary", dict(positional_embedding_type="rotary"))):
        out[name] = Model(
            build_transformer(build_spec(n_ctx=64, **extra)),
            backend="tl",
            kind="transformer",
            model_id=name,
        )
    out.update(load_hf_models(hf_dir, archs=("gpt2", "neox", "llama")))
    return out


def wavy(act: torch.Tensor, positions: Positions) -> torch.Tensor:
    """An edit that depends on each row's absolute position (wrong if positions were lost)."""
    w = torch.sin(positions.absolute.float() * 0.7 + 0.3)[..., None].to(act.dtype)
    return act + 3.0 * w * (positions.absolute >= 0)[..., None]


@pytest.mark.parametrize("arch", ARCHS)
def test_cache_equals_recompute_under_a_position_dependent_edit(models, arch):
    m = models[arch]
    assert cache_kind(m) == ("native" if arch.startswith("zoo") else "hf")
    edits = {
        m.hook("resid_post", 0): wavy,
        m.hook("resid_pre", 1): from_position(-1, lambda a: a * 1.5),
    }
    cap = [m.hook("resid_post", 1)]
    a = generate(m, ROWS, 10, edits=edits, capture=cap, stop_tokens=())
    b = generate(m, ROWS, 10, edits=edits, capture=cap, stop_tokens=(), use_cache=False)
    assert a.cache != "none" and b.cache == "none"
    assert torch.equal(a.new_tokens, b.new_tokens)
    torch.testing.assert_close(a.token_logprobs, b.token_logprobs, atol=1e-4, rtol=0)
    torch.testing.assert_close(a.activation(cap[0]), b.activation(cap[0]), atol=1e-4, rtol=1e-4)
    assert a.activation(cap[0]).shape[1] == a.tokens.shape[1] - 1
    # the edit mattered (a wrong position bookkeeping could otherwise pass unnoticed)
    assert (
        not torch.equal(a.new_tokens, generate(m, ROWS, 10, stop_tokens=()).new_tokens)
        or (a.token_logprobs - generate(m, ROWS, 10, stop_tokens=()).token_logprobs).abs().max()
        > 1e-3
    )


@pytest.mark.parametrize("arch", ARCHS)
def test_batched_mixed_lengths_equal_one_by_one(models, arch):
    m = models[arch]
    edits = {m.hook("resid_post", 0): wavy}
    both = generate(m, ROWS, 8, edits=edits, stop_tokens=(), return_logits=True)
    for i, r in enumerate(ROWS):
        one = generate(m, [r], 8, edits=edits, stop_tokens=(), return_logits=True)
        assert torch.equal(one.new_tokens[0], both.new_tokens[i])
        torch.testing.assert_close(one.logits[0], both.logits[i], atol=1e-4, rtol=1e-4)
    assert both.prompt_len.tolist() == [len(r) for r in ROWS]


@pytest.mark.parametrize("arch", ["gpt2", "neox", "llama"])
def test_greedy_without_edits_is_the_hf_models_own_generate(models, hf_dir, arch):
    import transformers as T

    m = models[arch]
    plain = T.AutoModelForCausalLM.from_pretrained(hf_dir / arch).eval()  # no bridge at all
    g = generate(m, ROWS, 12, stop_tokens=(), return_logits=True)
    P = g.prompt_tokens.shape[1]
    mask = (torch.arange(P)[None] >= (P - g.prompt_len)[:, None]).long()
    ref = plain.generate(
        g.prompt_tokens,
        attention_mask=mask,
        max_new_tokens=12,
        do_sample=False,
        pad_token_id=0,
        eos_token_id=None,
        return_dict_in_generate=True,
        output_logits=True,
    )
    assert torch.equal(ref.sequences[:, P:], g.new_tokens)
    torch.testing.assert_close(torch.stack(ref.logits, 1), g.logits, atol=1e-4, rtol=1e-4)


def test_position_helpers_select_the_right_rows(models):
    m = models["zoo"]
    seen = []

    def spy(act, positions):
        seen.append(positions)
        return act

    h = m.hook("resid_post", 0)
    generate(m, ROWS, 3, edits={h: spy}, stop_tokens=())
    first = seen[0]
    assert first.step == 0 and first.absolute.shape == (3, 7)
    assert first.absolute[1].tolist() == [-1] * 5 + [0, 1]  # left padding is -1
    assert [p.absolute[:, 0].tolist() for p in seen[1:]] == [[7, 2, 4], [8, 3, 5]]
    act = torch.zeros(3, 7, 2)
    pos = first
    assert (only_prompt(lambda a: a + 1)(act, positions=pos)[..., 0] == (pos.absolute >= 0)).all()
    assert (only_new(lambda a: a + 1)(act, positions=pos) == 0).all()
    last = from_position(-1, lambda a: a + 1)(act, positions=pos)[..., 0]
    assert last[:, -1].tolist() == [1, 1, 1] and last[:, :-1].sum() == 0
    assert from_position(1, lambda a: a + 1)(act, positions=pos)[1, :, 0].tolist() == [0] * 6 + [1]


def test_sampling_is_seeded_and_filters(models):
    m = models["gpt2"]
    a = generate(m, ROWS, 6, do_sample=True, seed=3, temperature=1.5, stop_tokens=())
    b = generate(m, ROWS, 6, do_sample=True, seed=3, temperature=1.5, stop_tokens=())
    assert torch.equal(a.new_tokens, b.new_tokens)
    logits = torch.tensor([[0.0, 1.0, 5.0, 2.0]] * 200)
    g = torch.Generator().manual_seed(0)
    assert set(
        choose(logits, do_sample=True, temperature=1.0, top_k=2, top_p=None, generator=g).tolist()
    ) <= {2, 3}
    assert set(
        choose(logits, do_sample=True, temperature=1.0, top_k=None, top_p=0.5, generator=g).tolist()
    ) == {2}
    assert (
        choose(logits, do_sample=False, temperature=1.0, top_k=None, top_p=None, generator=None)[0]
        == 2
    )


def test_stop_tokens_end_rows_and_pad_the_rest(models):
    m = models["zoo"]
    free = generate(m, ROWS, 6, stop_tokens=())
    stop = int(free.new_tokens[0, 1])
    g = generate(m, ROWS, 6, stop_tokens=(stop,))
    row = g.new_tokens[0].tolist()
    assert row[: row.index(stop) + 1] == free.new_tokens[0, : row.index(stop) + 1].tolist()
    assert all(t == g.pad_id for t in row[row.index(stop) + 1 :]) and bool(g.finished[0])


class _TinyLSTM(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.emb, self.rnn, self.head = (
            torch.nn.Embedding(20, 8),
            torch.nn.LSTM(8, 8, batch_first=True),
            torch.nn.Linear(8, 20),
        )

    def forward(self, x):
        return self.head(self.rnn(self.emb(x))[0])


def test_wrapped_module_recomputes_without_cache():
    """An nnsight-wrapped module has no cache and no attention mask: every step recomputes the
    sequence, rows of different lengths go one by one; edits and captures still apply."""
    mod = _TinyLSTM().eval()
    m = interp.wrap(mod, model_id="lstm")
    shift = torch.randn(8)
    g = generate(
        m,
        ROWS,
        5,
        stop_tokens=(),
        capture=["emb.hook_out"],
        edits={"emb.hook_out": from_position(-1, lambda a: a + shift)},
    )
    assert g.cache == "none" and len(g.steps["emb.hook_out"]) == 5
    for i, r in enumerate(ROWS):  # the same loop by hand
        x = torch.tensor([r])
        for _ in range(5):
            e = mod.emb(x)
            e[:, len(r) - 1 :] += shift
            x = torch.cat([x, mod.head(mod.rnn(e)[0])[:, -1:].argmax(-1)], 1)
        assert x[0, len(r) :].tolist() == g.new_tokens[i].tolist()


def test_bad_arguments_are_clear(models):
    m = models["zoo"]
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(m, ROWS, 0)
    with pytest.raises(ValueError, match="n_ctx"):
        generate(m, ROWS, 100)
    with pytest.raises(KeyError):
        generate(m, ROWS, 2, edits={"blocks.9.hook_nothing": lambda a: a})
    with pytest.raises(ValueError, match="no tokenizer"):
        generate(models["gpt2"], ["text needs a tokenizer"], 2)
    from interp.models.transformer import build_transformer
    from interp.tracing.model import Model
    from tests.conftest import build_spec

    masked = Model(
        build_transformer(build_spec(attention_dir="bidirectional")),
        backend="tl",
        kind="transformer",
        model_id="mlm",
    )
    with pytest.raises(ValueError, match="causal"):
        generate(masked, ROWS, 2)
    with pytest.raises(ValueError, match="top_p"):
        generate(m, ROWS, 2, do_sample=True, top_p=0.0)


def test_collect_with_edits_sees_the_edit(models, tmp_path):
    """``collect(..., edits=)``: activations downstream of an edit are the edited forward's,
    in memory and on disk, for the bridge path and for nnsight."""
    from interp.tracing.trace import trace

    m = models["zoo"]
    x = torch.tensor([r[:2] * 3 for r in ROWS])
    v = torch.randn(m.cfg.d_model)
    edits = {m.hook("resid_post", 0): lambda a: a + v}
    want = trace(m, x, capture=[m.hook("resid_post", 1)], edits=edits)[1][m.hook("resid_post", 1)]
    got = interp.collect(m, x, hooks=[m.hook("resid_post", 1)], edits=edits, batch_size=2)
    torch.testing.assert_close(got[m.hook("resid_post", 1)], want)
    plain = interp.collect(m, x, hooks=[m.hook("resid_post", 1)])[m.hook("resid_post", 1)]
    assert (plain - want).abs().max() > 1e-3
    disk = interp.collect(m, x, hooks=[m.hook("resid_post", 1)], edits=edits, out=tmp_path / "s")
    torch.testing.assert_close(disk[m.hook("resid_post", 1)], want)
    assert disk.manifest.edits == [m.hook("resid_post", 0)]
    lstm = interp.wrap(_TinyLSTM().eval())
    shift = lambda a: a + 1.0  # noqa: E731
    ref = trace(lstm, x, capture=["head.hook_in"], edits={"emb.hook_out": shift})[1]["head.hook_in"]
    got = interp.collect(lstm, x, hooks=["head.hook_in"], edits={"emb.hook_out": shift})[
        "head.hook_in"
    ]
    torch.testing.assert_close(got, ref)


@pytest.mark.slow
def test_real_model_generation_identities(real_model):
    """SmolLM2-135M-Instruct with its chat template: greedy == the HF model's own generate (left
    padding, batched), and the key/value cache == the recompute under a position-indexed edit."""
    from interp.tracing.generate import hf_cache_kwargs, hf_model

    m = real_model
    prompts = ["What is the capital of France?", "Name a colour."]
    g = generate(m, prompts, 8, chat=True, stop_tokens=())
    P = g.prompt_tokens.shape[1]
    mask = (torch.arange(P)[None] >= (P - g.prompt_len)[:, None]).long()
    with torch.no_grad(), hf_cache_kwargs(m):
        ref = hf_model(m).generate(
            g.prompt_tokens,
            attention_mask=mask,
            max_new_tokens=8,
            do_sample=False,
            pad_token_id=g.pad_id,
            eos_token_id=None,
        )
    assert torch.equal(ref[:, P:], g.new_tokens)
    assert "Paris" in g.texts[0]
    edits = {m.hook("resid_pre", 6): from_position(-1, lambda a: a * 1.2)}
    a = generate(m, prompts, 6, chat=True, edits=edits, stop_tokens=())
    b = generate(m, prompts, 6, chat=True, edits=edits, stop_tokens=(), use_cache=False)
    assert torch.equal(a.new_tokens, b.new_tokens)
    torch.testing.assert_close(a.token_logprobs, b.token_logprobs, atol=1e-3, rtol=0)


def test_stop_tokens_outside_the_vocabulary_are_refused(tiny_gpt):
    import interp

    with pytest.raises(ValueError, match="not token ids"):
        interp.generate(tiny_gpt, torch.tensor([[1, 2, 3]]), 2, stop_tokens=[10**6])
    with pytest.raises(TypeError, match="an empty list"):
        interp.generate(tiny_gpt, [], 2)
