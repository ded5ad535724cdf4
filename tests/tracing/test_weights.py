"""Weight sites: every block matrix of zoo and Hugging Face models is found once, with its
head axis, and the masking parametrization reaches exactly those weights."""

from __future__ import annotations

import pytest
import torch

from interp.tracing.weights import find_sites, logits_of, masked, native
from tests.conftest import build_spec


def make(**spec_kw):
    from interp.models.transformer import build_transformer
    from interp.tracing.model import Model

    spec = build_spec(**spec_kw)
    return Model(
        build_transformer(spec),
        backend="tl",
        kind="transformer",
        model_id="m",
        spec={"builder": "transformer", "spec": spec.model_dump(mode="json")},
    )


def test_sites_cover_every_block_matrix():
    sites = find_sites(make())
    assert [s.key for s in sites[:6]] == [
        f"blocks.0.{x}" for x in ("W_Q", "W_K", "W_V", "W_O", "W_in", "W_out")
    ]
    assert len(sites) == 12 and sum(s.size for s in sites) == 2 * (4 * 32 * 32 + 2 * 32 * 128)
    assert {s.n_heads for s in sites if s.matrix in ("W_Q", "W_O")} == {4}
    attn = find_sites(make(n_layers=3, n_heads=2, attn_only=True))
    assert len(attn) == 12 and {s.matrix for s in attn} == {"W_Q", "W_K", "W_V", "W_O"}
    assert [s.key for s in find_sites(make(), matrices=["W_in"], layers=[1])] == ["blocks.1.W_in"]


def test_masked_context_rejects_wrong_shapes(tiny_gpt):
    from dataclasses import replace

    s = find_sites(tiny_gpt)[0]
    with pytest.raises(ValueError, match="shape"):
        with masked(tiny_gpt, [replace(s, shape=(3, 3))], lambda site: None):
            pass


def _hf(arch: str, tmp_path):
    """A tiny Hugging Face model of ``arch`` with random weights, saved and loaded as interp loads
    a checkpoint."""
    import transformers as T

    import interp

    torch.manual_seed(0)
    small = dict(
        vocab_size=50,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=32,
    )
    hf = {
        "gpt2": lambda: T.GPT2LMHeadModel(
            T.GPT2Config(vocab_size=50, n_embd=32, n_layer=2, n_head=4, n_positions=32)
        ),
        "neox": lambda: T.GPTNeoXForCausalLM(T.GPTNeoXConfig(**small)),
        "llama": lambda: T.LlamaForCausalLM(T.LlamaConfig(**small, num_key_value_heads=2)),
    }[arch]()
    hf.save_pretrained(tmp_path / arch)
    return interp.load_model(str(tmp_path / arch), device="cpu")


@pytest.mark.parametrize(
    "arch, matrices",
    [
        # GPT-2: Conv1D weights (W_O, W_in, W_out); the bridge splits c_attn into per-head q/k/v
        # and the unused fused copy is no site. GPT-NeoX: the same for query_key_value.
        ("gpt2", ["W_Q", "W_K", "W_V", "W_O", "W_in", "W_out"]),
        ("neox", ["W_Q", "W_K", "W_V", "W_O", "W_in", "W_out"]),
        ("llama", ["W_Q", "W_K", "W_V", "W_O", "W_in", "W_gate", "W_out"]),
    ],
)
def test_sites_and_identity_masks_on_hugging_face_weight_kinds(tmp_path, arch, matrices):
    m = _hf(arch, tmp_path)
    sites = find_sites(m)
    assert [s.matrix for s in sites if s.layer == 0] == matrices and {s.layer for s in sites} == {
        0,
        1,
    }
    kv_heads = (
        2 if arch == "llama" else 4
    )  # Llama: grouped-query attention, 4 query and 2 key/value heads
    assert {s.matrix: s.n_heads for s in sites if s.layer == 0 and s.n_heads} == {
        "W_Q": 4,
        "W_K": kv_heads,
        "W_V": kv_heads,
        "W_O": 4,
    }
    x = torch.randint(0, 50, (2, 6), generator=torch.Generator().manual_seed(1))
    root = native(m)
    base = logits_of(root(x))
    with masked(m, sites, lambda s: torch.ones(s.shape)):
        torch.testing.assert_close(logits_of(root(x)), base, atol=0, rtol=0)
    for s in sites:  # every site is used by the forward: zeroing it alone changes the output
        with masked(m, [s], lambda s: torch.zeros(s.shape)):
            assert not torch.allclose(logits_of(root(x)), base), s.key
