"""How ``interp.generate`` runs one step: which cache each model gets, the zoo models' NativeKV
against full forwards, and the Hugging Face cache hand-over the bridge needs."""

from __future__ import annotations

import pytest
import torch

import interp
from interp.tracing.steps import NativeKV, cache_kind, hf_cache_kwargs, hf_model


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from interp.models.transformer import build_transformer
    from interp.tracing.model import Model
    from tests.conftest import build_spec, load_hf_models

    root = tmp_path_factory.mktemp("steps")
    out = load_hf_models(root, archs=("gpt2", "llama"))
    out["zoo"] = Model(
        build_transformer(build_spec(positional_embedding_type="rotary")),
        backend="tl",
        kind="transformer",
        model_id="zoo",
    )
    out["root"] = root
    return out


def test_cache_kind_per_model(models, tiny_rnn):
    assert cache_kind(models["gpt2"]) == cache_kind(models["llama"]) == "hf"
    assert cache_kind(models["zoo"]) == "native"
    assert cache_kind(tiny_rnn) == "none"
    assert cache_kind(interp.wrap(torch.nn.Linear(2, 2))) == "none"
    assert hf_model(models["zoo"]) is None and hf_model(models["llama"]) is not None


def test_native_kv_steps_equal_full_forwards(models):
    """Feeding a sequence one token at a time through NativeKV gives each position's logits of
    one full forward (rotary phases from the given position ids)."""
    m = models["zoo"]
    native = m.module.original_model
    x = torch.tensor([[3, 1, 4, 1, 5, 9, 2, 6]])
    mask = torch.ones_like(x)
    with torch.no_grad():
        full = native(input_ids=x)
        kv = NativeKV(m)
        steps = []
        with kv.active():
            for t in range(x.shape[1]):
                steps.append(
                    native(
                        input_ids=x[:, t : t + 1],
                        attention_mask=mask[:, : t + 1],
                        position_ids=torch.tensor([[t]]),
                    )[:, -1]
                )
    torch.testing.assert_close(torch.stack(steps, 1), full, atol=1e-5, rtol=1e-5)
    assert "forward" not in vars(kv.attns[0])  # the class's own forward is back


def test_bridged_llama_needs_the_cache_hand_over(models):
    """transformers 5 hands Llama's attention the cache as ``cache``, which the bridge ignores:
    the bridged model's own ``generate`` then differs from the plain model's, and agrees once
    ``hf_cache_kwargs`` passes the cache on."""
    import transformers as T

    m = models["llama"]
    plain = T.AutoModelForCausalLM.from_pretrained(models["root"] / "llama").eval()
    x = torch.tensor([[1, 5, 7, 9, 11, 3]])
    kw = dict(
        max_new_tokens=8,
        do_sample=False,
        pad_token_id=0,
        eos_token_id=None,
        return_dict_in_generate=True,
        output_logits=True,
    )
    with torch.no_grad():
        want = torch.stack(plain.generate(x, **kw).logits, 1)
        with hf_cache_kwargs(m):
            fixed = torch.stack(hf_model(m).generate(x, **kw).logits, 1)
        bare = torch.stack(hf_model(m).generate(x, **kw).logits, 1)
    torch.testing.assert_close(fixed, want, atol=1e-4, rtol=1e-4)
    assert (bare[:, 1:] - want[:, 1:]).abs().max() > 1e-3  # without it the cached steps go wrong
