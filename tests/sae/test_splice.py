"""SAEs spliced into the forward pass: exact with the error term, reconstruction without it,
latents as hook names that capture, edit, ablate and patch (zoo and Hugging Face models)."""

from __future__ import annotations

import pytest
import torch

import interp
from interp.sae.model import SAE, SAEConfig
from interp.sae.splice import spliced
from interp.tracing.trace import patch, zero_ablate

HOST = "blocks.0.hook_resid_post"
LAST = "blocks.1.hook_resid_post"


def _sae(d_in: int, d_sae: int = 64, seed: int = 0) -> SAE:
    """A random SAE with non-zero biases (so decode(0) = b_dec is not zero)."""
    sae = SAE(SAEConfig(d_in=d_in, d_sae=d_sae, init_seed=seed))
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        sae.b_dec.copy_(0.1 * torch.randn(d_in, generator=g))
        sae.b_enc.copy_(0.05 * torch.randn(d_sae, generator=g))
    return sae


@pytest.fixture
def hf_gpt2(tmp_path):
    """A GPT-2-shaped Hugging Face model with random weights, saved and loaded back."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from interp.data.tokenizer import word_tokenizer

    tok = word_tokenizer(list("abcdefghij"))
    torch.manual_seed(0)
    hf = GPT2LMHeadModel(
        GPT2Config(
            vocab_size=len(tok),
            n_embd=32,
            n_layer=2,
            n_head=4,
            n_positions=32,
            bos_token_id=0,
            eos_token_id=2,
        )
    ).eval()
    hf.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    return interp.load_model(str(tmp_path))


def _ids(m, n=3, t=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, m.d_vocab, (n, t), generator=g)


@pytest.mark.parametrize("model", ["tiny_gpt", "hf_gpt2"])
def test_error_term_makes_the_spliced_forward_exact(model, request):
    m = request.getfixturevalue(model)
    x = _ids(m)
    clean, _ = interp.trace(m, x)
    # residual stream at two layers, and an attention-output SAE on hook_z (flattened heads)
    saes = {HOST: _sae(32), LAST: _sae(32, seed=1), "blocks.1.attn.hook_z": _sae(32, seed=2)}
    with spliced(m, saes, error_term=True):
        z = "blocks.1.attn.hook_z.hook_sae_acts_post"
        out, acts = interp.trace(m, x, capture=[z, f"{HOST}.hook_sae_error"])
        assert acts[f"{HOST}.hook_sae_error"].abs().max() > 1e-2  # the SAE is far from exact...
        assert acts[z].shape == (*x.shape, 64)  # [batch, pos, head, d_head] went in flattened
    torch.testing.assert_close(out, clean, atol=1e-5, rtol=0)  # ...and the output is unchanged
    assert not m._splices and f"{HOST}.hook_sae_acts_post" not in m.hook_names
    again, _ = interp.trace(m, x)
    assert torch.equal(again, clean)  # leaving the splice removes it


@pytest.mark.parametrize("model", ["tiny_gpt", "hf_gpt2"])
def test_without_error_term_the_reconstruction_replaces_the_activation(model, request):
    m = request.getfixturevalue(model)
    x, sae = _ids(m), _sae(32)
    clean, _ = interp.trace(m, x)
    manual, _ = interp.trace(m, x, edits={HOST: lambda a: sae(a)})
    with spliced(m, {HOST: sae}):
        out, acts = interp.trace(m, x, capture=[HOST, f"{HOST}.hook_sae_recons"])
    assert (out - clean).abs().max() > 1e-3
    torch.testing.assert_close(out, manual, atol=1e-6, rtol=0)
    assert torch.equal(
        acts[HOST], acts[f"{HOST}.hook_sae_recons"]
    )  # the hook reads the SAE's output


def test_captured_parts_match_the_sae(tiny_gpt, tokens):
    sae = _sae(32)
    _, ref = interp.trace(tiny_gpt, tokens, capture=[HOST])
    a = ref[HOST]
    parts = ["input", "acts_post", "recons", "error", "output"]
    with spliced(tiny_gpt, {HOST: sae}, error_term=True):
        names = [f"{HOST}.hook_sae_{p}" for p in parts]
        order = tiny_gpt.hook_names
        assert [order.index(n) for n in names] == sorted(order.index(n) for n in names)
        assert order.index(names[-1]) + 1 == order.index(HOST)
        _, acts = interp.trace(tiny_gpt, tokens, capture=[*names, HOST])
    got = {p: acts[n] for p, n in zip(parts, names, strict=True)}
    assert got["acts_post"].shape == (*tokens.shape, 64)
    assert torch.equal(got["input"], a)
    torch.testing.assert_close(got["acts_post"], sae.encode(a), atol=1e-6, rtol=0)
    torch.testing.assert_close(got["recons"], sae.decode(got["acts_post"]), atol=1e-6, rtol=0)
    torch.testing.assert_close(got["error"], a - sae(a), atol=1e-6, rtol=0)
    torch.testing.assert_close(acts[HOST], a, atol=1e-6, rtol=0)
    assert torch.equal(got["output"], acts[HOST])


def test_zero_ablating_every_latent_substitutes_b_dec(tiny_gpt, tokens):
    sae = _sae(32)
    manual, _ = interp.trace(
        tiny_gpt, tokens, edits={HOST: lambda a: sae.b_dec.expand_as(a).clone()}
    )
    with spliced(tiny_gpt, {HOST: sae}):
        out, _ = interp.trace(tiny_gpt, tokens, edits={f"{HOST}.hook_sae_acts_post": zero_ablate()})
    torch.testing.assert_close(out, manual, atol=1e-6, rtol=0)


def test_identity_edits_of_sae_names_change_nothing(tiny_gpt, tokens):
    with spliced(tiny_gpt, {HOST: _sae(32)}, error_term=True):
        names = [n for n in tiny_gpt.hook_names if ".hook_sae_" in n]
        assert len(names) == 5
        base, _ = interp.trace(tiny_gpt, tokens)
        edited, _ = interp.trace(tiny_gpt, tokens, edits={n: (lambda a: a) for n in names})
    assert torch.equal(base, edited)


def test_a_latent_edit_reaches_the_output_through_the_decoder(tiny_gpt, tokens):
    sae = _sae(32)
    latents = f"{HOST}.hook_sae_acts_post"
    with spliced(tiny_gpt, {HOST: sae}, error_term=True):
        _, acts = interp.trace(tiny_gpt, tokens, capture=[latents])
        j = int(acts[latents].abs().sum((0, 1)).argmax())  # the most active latent

        def drop(f):
            f = f.clone()
            f[..., j] = 0
            return f

        out, _ = interp.trace(tiny_gpt, tokens, edits={latents: drop})
    clean, _ = interp.trace(tiny_gpt, tokens)
    assert (out - clean).abs().max() > 1e-4
    # SAELens semantics: the error term comes from the clean activation, so the output moves by
    # exactly the change in the reconstruction
    manual, _ = interp.trace(
        tiny_gpt, tokens, edits={HOST: lambda a: sae.decode(drop(sae.encode(a))) + (a - sae(a))}
    )
    torch.testing.assert_close(out, manual, atol=1e-6, rtol=0)


def test_latents_patched_from_another_run(tiny_gpt, tokens):
    # at the last block nothing but per-position layers follow, so patching every latent from
    # run B into run A (no error term) gives run B's spliced output
    a, b = tokens[:3], tokens[3:]
    latents = f"{LAST}.hook_sae_acts_post"
    with spliced(tiny_gpt, {LAST: _sae(32)}):
        out_b, acts_b = interp.trace(tiny_gpt, b, capture=[latents])
        out_a, _ = interp.trace(tiny_gpt, a)
        patched, _ = interp.trace(tiny_gpt, a, edits={latents: patch(acts_b[latents])})
    assert (out_a - out_b).abs().max() > 1e-3
    torch.testing.assert_close(patched, out_b, atol=1e-6, rtol=0)


def test_batched_equals_unbatched_and_collect_equals_trace(tiny_gpt, tokens):
    from interp.tracing.runners import BridgeRunner, PlainRunner, Reducer, make_runner

    names = [f"{HOST}.hook_sae_acts_post", f"{LAST}.hook_sae_recons", LAST]
    reduce = Reducer("all", None, None)
    assert isinstance(make_runner(tiny_gpt, [HOST], reduce), PlainRunner)
    with spliced(tiny_gpt, {HOST: _sae(32), LAST: _sae(32, seed=1)}):
        assert isinstance(
            make_runner(tiny_gpt, [HOST], reduce), BridgeRunner
        )  # the bridge-hook path
        _, full = interp.trace(tiny_gpt, tokens, capture=names)
        for i in range(len(tokens)):
            _, one = interp.trace(tiny_gpt, tokens[i : i + 1], capture=names)
            for n in names:
                torch.testing.assert_close(one[n][0], full[n][i], atol=1e-6, rtol=0)
        store = interp.collect(tiny_gpt, tokens, hooks=names, batch_size=4)
        last = interp.collect(tiny_gpt, tokens, hooks=names[0], positions="last", batch_size=4)
    for n in names:
        torch.testing.assert_close(torch.as_tensor(store[n]), full[n], atol=1e-6, rtol=0)
    torch.testing.assert_close(
        torch.as_tensor(last[names[0]]), full[names[0]][:, -1], atol=1e-6, rtol=0
    )
    assert isinstance(make_runner(tiny_gpt, [HOST], reduce), PlainRunner)  # fast path is back


def test_a_spliced_store_on_disk_is_not_resumed_as_an_unspliced_one(tiny_gpt):
    from interp.tracing.collect import weights_fingerprint

    plain = weights_fingerprint(tiny_gpt)
    with spliced(tiny_gpt, {HOST: _sae(32)}):
        with_sae = weights_fingerprint(tiny_gpt)
    assert with_sae != plain and weights_fingerprint(tiny_gpt) == plain


def test_gradients_reach_the_latents(tiny_gpt, tokens):
    latents = f"{HOST}.hook_sae_acts_post"
    with spliced(tiny_gpt, {HOST: _sae(32)}, error_term=True):
        out, acts = interp.trace(tiny_gpt, tokens, capture=[latents], grad=True)
    (g,) = torch.autograd.grad(out[..., 0].sum(), acts[latents])
    assert g.shape == acts[latents].shape and g.abs().sum() > 0


def test_an_rnn_hidden_state_can_be_spliced(tiny_rnn, tokens):
    h = "rnn.hook_h"  # fires once per time step; the SAE's names are stacked like it
    clean, _ = interp.trace(tiny_rnn, tokens)
    sae = _sae(16, d_sae=24)
    with spliced(tiny_rnn, {h: sae}, error_term=True):
        out, acts = interp.trace(tiny_rnn, tokens, capture=[h, f"{h}.hook_sae_acts_post"])
        store = interp.collect(tiny_rnn, tokens, hooks=[f"{h}.hook_sae_acts_post"], batch_size=4)
    torch.testing.assert_close(out, clean, atol=1e-5, rtol=0)
    assert acts[f"{h}.hook_sae_acts_post"].shape == (*tokens.shape, 24)
    torch.testing.assert_close(
        acts[f"{h}.hook_sae_acts_post"], sae.encode(acts[h]), atol=1e-5, rtol=0
    )
    torch.testing.assert_close(
        torch.as_tensor(store[f"{h}.hook_sae_acts_post"]),
        acts[f"{h}.hook_sae_acts_post"],
        atol=1e-6,
        rtol=0,
    )


def test_names_and_errors_are_clear(tiny_gpt, tokens):
    with spliced(tiny_gpt, {HOST: _sae(32)}):
        assert f"{HOST}.hook_sae_error" not in tiny_gpt.hook_names  # no error term, no error hook
        with pytest.raises(KeyError, match="hook_sae_acts_post"):
            interp.trace(tiny_gpt, tokens, capture=[f"{HOST}.hook_sae_act_post"])
        with pytest.raises(ValueError, match="one SAE per hook"):
            with spliced(tiny_gpt, {"blocks.0.hook_out": _sae(32)}):  # an alias of HOST
                pass
        with pytest.raises(ValueError, match="spliced SAE"):
            with spliced(tiny_gpt, {f"{HOST}.hook_sae_recons": _sae(32)}):
                pass
        assert tiny_gpt.hook("resid_post", 0) == HOST
    with pytest.raises(KeyError, match="hook_resid_post"):
        with spliced(tiny_gpt, {"blocks.0.hook_resid_psot": _sae(32)}):
            pass
    with spliced(tiny_gpt, {HOST: _sae(16)}):
        with pytest.raises(ValueError, match="d_in=16"):
            interp.trace(tiny_gpt, tokens)
    with pytest.raises(ValueError, match="cfg.hook_name"):
        with spliced(tiny_gpt, _sae(32)):
            pass
    sae = _sae(32)
    sae.cfg.hook_name = HOST
    with spliced(tiny_gpt, [sae]):
        assert f"{HOST}.hook_sae_acts_post" in tiny_gpt.hook_names
    assert not tiny_gpt._splices


def test_an_nnsight_model_is_refused():
    m = interp.wrap(torch.nn.Sequential(torch.nn.Linear(4, 4)))
    with pytest.raises(RuntimeError, match="TransformerLens"):
        with spliced(m, {"0.hook_out": _sae(4)}):
            pass
