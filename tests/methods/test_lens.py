"""The logit lens (:mod:`interp.methods.lens`): the last layer's lens is the model's logits, the
read-out is the final norm + unembedding computed by hand, positions select, batching changes
nothing; on a zoo transformer, a norm-free one, our VLM and a Hugging Face GPT-2."""

from __future__ import annotations

import pytest
import torch

import interp
from interp.methods.lens import lens_logits, logit_lens, residual_stream, unembed
from tests.conftest import build_spec


def _tokens(n=3, pos=9, vocab=50, seed=0):
    return torch.randint(0, vocab, (n, pos), generator=torch.Generator().manual_seed(seed))


def _model(**spec_kw):
    from interp.models.transformer import build_transformer
    from interp.tracing.model import Model

    return Model(
        build_transformer(build_spec(**spec_kw)),
        backend="tl",
        kind="transformer",
        model_id="m",
        spec={},
    )


def test_last_layer_lens_is_the_model_on_tiny_gpt(tiny_gpt):
    x = _tokens()
    lens = logit_lens(tiny_gpt, x)
    L = tiny_gpt.n_layers
    assert lens.names == tiny_gpt.resid_names() and len(lens.names) == L + 1
    assert lens.logits.shape == (L + 1, 3, 9, 50)
    assert lens.final_gap == 0.0
    assert torch.equal(lens.logits[-1], tiny_gpt(x))
    probs = lens.probs()
    assert torch.allclose(probs.sum(-1), torch.ones(L + 1, 3, 9))


def test_read_out_is_final_layer_norm_then_unembedding_by_hand(tiny_gpt):
    native = tiny_gpt.module.original_model
    raw = lambda mod: getattr(mod, "original_component", mod)  # noqa: E731
    ln, head = raw(native.ln_out), raw(native.head)
    resid = torch.randn(2, 5, 32, generator=torch.Generator().manual_seed(1))
    mu = resid.mean(-1, keepdim=True)
    var = resid.var(-1, unbiased=False, keepdim=True)
    by_hand = (
        (resid - mu) / torch.sqrt(var + ln.eps) * ln.weight + ln.bias
    ) @ head.weight.T + head.bias
    assert torch.allclose(unembed(tiny_gpt, resid), by_hand, atol=1e-5)
    assert torch.allclose(
        unembed(tiny_gpt, resid, norm=False), resid @ head.weight.T + head.bias, atol=1e-6
    )


def test_row_zero_reads_the_embedding(tiny_gpt):
    x = _tokens(n=2, pos=6)
    bridge = tiny_gpt.module
    embedding = bridge.W_E[x] + bridge.W_pos[:6]  # [batch, pos, d_model]
    lens = logit_lens(tiny_gpt, x)
    assert torch.allclose(lens.logits[0], unembed(tiny_gpt, embedding), atol=1e-5)


def test_positions_select_and_batching_changes_nothing(tiny_gpt):
    x = _tokens(n=4, pos=8, seed=2)
    full = logit_lens(tiny_gpt, x)
    last = logit_lens(tiny_gpt, x, positions=-1)
    some = logit_lens(tiny_gpt, x, positions=[0, 5])
    assert last.logits.shape == (3, 4, 50) and last.output.shape == (4, 50)
    assert torch.allclose(last.logits, full.logits[:, :, -1], atol=1e-6)
    assert torch.allclose(some.logits, full.logits[:, :, [0, 5]], atol=1e-6)
    one_by_one = torch.cat([logit_lens(tiny_gpt, x[i : i + 1]).logits for i in range(4)], dim=1)
    assert torch.allclose(one_by_one, full.logits, atol=1e-5)
    # a captured stream gives the same lens without another forward
    stream = residual_stream(tiny_gpt, x, positions=-1)
    assert torch.equal(
        logit_lens(tiny_gpt, None, stream=stream).logits, lens_logits(tiny_gpt, stream)
    )


@pytest.mark.parametrize(
    "spec_kw",
    [
        dict(normalization_type=None, attn_only=True),
        dict(normalization_type="RMS"),
        dict(n_layers=3, n_heads=2),
    ],
)
def test_last_layer_lens_is_the_model_on_other_transformers(spec_kw):
    m = _model(**spec_kw)
    x = _tokens(seed=3)
    lens = logit_lens(m, x)
    assert lens.logits.shape[0] == m.n_layers + 1
    assert lens.final_gap == 0.0
    if spec_kw.get("normalization_type", "LN") is None:  # no final norm: norm=False reads the same
        assert torch.equal(logit_lens(m, x, norm=False).logits, lens.logits)


def test_lens_on_the_tiny_vlm_with_an_image():
    from interp.data.crossmodal import encode, make_samples, vqa_tokenizer
    from interp.models.transformer import TransformerSpec
    from interp.models.vlm import VLMSpec, build_vlm, wrap_vlm

    tok = vqa_tokenizer()
    spec = VLMSpec(
        decoder=TransformerSpec(n_layers=2, d_model=32, n_heads=4, n_ctx=80, d_vocab=len(tok)),
        d_vision=16,
        image_token_id=tok.convert_tokens_to_ids("<image>"),
    )
    m = wrap_vlm(build_vlm(spec, tok), tok)
    b = encode(tok, make_samples(2, 0, "test")[0])
    inputs = {"tokens": b["tokens"], "pixels": b["pixels"]}
    lens = logit_lens(m, inputs, positions=-1)
    # one position read alone runs the read-out on other shapes than the forward: rounding only
    assert lens.logits.shape == (3, 2, len(tok)) and lens.final_gap < 1e-5
    assert torch.equal(lens.output, m(inputs)[:, -1])
    assert logit_lens(m, inputs).final_gap == 0.0


def test_lens_on_a_hugging_face_gpt2_saved_with_save_pretrained(tmp_path):
    transformers = pytest.importorskip("transformers")
    cfg = transformers.GPT2Config(n_layer=2, n_embd=32, n_head=4, n_positions=32, vocab_size=60)
    torch.manual_seed(0)
    hf = transformers.GPT2LMHeadModel(cfg).eval()
    hf.save_pretrained(tmp_path / "gpt2")
    m = interp.load_model(str(tmp_path / "gpt2"), device="cpu")
    x = _tokens(n=2, pos=7, vocab=60, seed=4)
    lens = logit_lens(m, x)
    assert lens.names == m.resid_names() and lens.logits.shape == (3, 2, 7, 60)
    assert lens.final_gap == 0.0
    with torch.no_grad():
        assert torch.allclose(lens.logits[-1], hf(x).logits, atol=1e-5)
    # GPT-2's own final norm: the last hidden state through ln_f and lm_head
    with torch.no_grad():
        h = hf(x, output_hidden_states=True).hidden_states
    assert torch.allclose(lens.logits[0], hf.lm_head(hf.transformer.ln_f(h[0])), atol=1e-5)


def test_lens_refuses_a_model_without_an_unembedding(tiny_rnn):
    with pytest.raises(TypeError, match="ln_final and unembed"):
        unembed(tiny_rnn, torch.zeros(1, 16))
