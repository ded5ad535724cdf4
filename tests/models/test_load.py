"""load_model: interp directories, save_pretrained directories (GPT-2, BERT), errors."""

from __future__ import annotations

import pytest
import torch
import transformers as T
from transformers import BertConfig, BertForMaskedLM, BertModel, GPT2Config, GPT2LMHeadModel

import interp
from interp.data.tokenizer import word_tokenizer


def _check_hidden_states(m, hf, ids, n_layers, final_is_normed):
    with torch.no_grad():
        ref = hf(ids, output_hidden_states=True)
    names = [f"blocks.{layer}.hook_resid_post" for layer in range(n_layers)]
    out, acts = interp.trace(m, ids, capture=["blocks.0.hook_resid_pre", *names])
    torch.testing.assert_close(out, ref.logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(
        acts["blocks.0.hook_resid_pre"], ref.hidden_states[0], atol=1e-5, rtol=0
    )
    # HF's last hidden state of GPT-2 is after the final LayerNorm; BERT's is the block output.
    last = n_layers - 1 if final_is_normed else n_layers
    for layer in range(last):
        torch.testing.assert_close(
            acts[names[layer]], ref.hidden_states[layer + 1], atol=1e-5, rtol=0
        )


def test_gpt2_save_pretrained_matches_hf(tmp_path):
    tok = word_tokenizer(list("abcdefghij"))
    torch.manual_seed(0)
    hf = GPT2LMHeadModel(
        GPT2Config(
            vocab_size=len(tok),
            n_embd=32,
            n_layer=3,
            n_head=4,
            n_positions=32,
            bos_token_id=0,
            eos_token_id=2,
        )
    ).eval()
    hf.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    m = interp.load_model(str(tmp_path))
    assert m.kind == "transformer" and m.tokenizer is not None
    ids = torch.tensor([[0, 5, 6, 7, 8, 9, 10, 11]])
    _check_hidden_states(m, hf, ids, 3, final_is_normed=True)
    assert "blocks.2.attn.hook_z" in m.hook_names


def test_bert_save_pretrained_matches_hf(tmp_path):
    tok = word_tokenizer(list("abcdefgh"))
    torch.manual_seed(0)
    hf = BertForMaskedLM(
        BertConfig(
            vocab_size=len(tok),
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            max_position_embeddings=32,
        )
    ).eval()
    hf.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    m = interp.load_model(str(tmp_path))
    ids = torch.tensor([[0, 5, 6, 7, 8, 9, 2]])
    _check_hidden_states(m, hf, ids, 2, final_is_normed=False)


def test_interp_dir_round_trip_transformer_and_rnn(tmp_path, tiny_gpt, tiny_rnn, tokens):
    tiny_gpt.save(tmp_path / "gpt")
    tiny_rnn.save(tmp_path / "rnn")
    g2 = interp.load_model(str(tmp_path / "gpt"))
    r2 = interp.load_model(str(tmp_path / "rnn"))
    assert torch.equal(g2(tokens), tiny_gpt(tokens))
    assert torch.equal(r2(tokens), tiny_rnn(tokens))
    assert r2.kind == "rnn" and "rnn.hook_h" in r2.hook_names


def test_corrupted_weights_are_a_clear_error(tmp_path, tiny_gpt):
    tiny_gpt.save(tmp_path / "gpt")
    (tmp_path / "gpt" / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="model.safetensors"):
        interp.load_model(str(tmp_path / "gpt"))


def test_bad_names_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="zoo"):
        interp.load_model("no/such/dir")
    with pytest.raises(KeyError, match="code-lm-tiny"):
        interp.load_model("zoo:code-lm-tinny")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="config.json"):
        interp.load_model(str(tmp_path / "empty"))


def test_hf_without_a_name_and_a_truncated_checkpoint_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="no Hugging Face name after 'hf:'"):
        interp.load_model("hf:")
    GPT2LMHeadModel(
        GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50, n_positions=16)
    ).save_pretrained(tmp_path)
    f = tmp_path / "model.safetensors"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with pytest.raises(ValueError, match="model.safetensors is damaged or truncated"):
        interp.load_model(str(tmp_path))


def test_headless_bert_loads_with_its_hidden_states_exact(tmp_path):
    torch.manual_seed(0)
    hf = BertModel(
        BertConfig(
            vocab_size=40,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            max_position_embeddings=32,
        )
    ).eval()
    hf.save_pretrained(tmp_path)  # architecture "BertModel": no MLM head
    m = interp.load_model(str(tmp_path))
    assert m.tokenizer is None and m.has_lm_head is False
    ids = torch.tensor([[1, 5, 6, 7, 8, 9, 2]])
    with torch.no_grad():
        ref = hf(ids, output_hidden_states=True).hidden_states
    _, acts = interp.trace(m, ids, capture=m.resid_names())
    for name, want in zip(m.resid_names(), ref, strict=True):
        torch.testing.assert_close(acts[name], want, atol=1e-5, rtol=0)


@pytest.mark.parametrize("arch", ["llama", "gpt2", "neox"])
def test_a_checkpoint_saved_without_a_tokenizer_loads_for_token_ids(tmp_path, arch):
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
        "llama": lambda: T.LlamaForCausalLM(
            T.LlamaConfig(**small, num_key_value_heads=2)
        ),  # grouped-query
        "neox": lambda: T.GPTNeoXForCausalLM(T.GPTNeoXConfig(**small)),
        "gpt2": lambda: T.GPT2LMHeadModel(
            T.GPT2Config(vocab_size=50, n_embd=32, n_layer=2, n_head=4, n_positions=32)
        ),
    }[arch]().eval()
    hf.save_pretrained(tmp_path)
    m = interp.load_model(str(tmp_path))
    assert m.tokenizer is None and m.has_lm_head
    ids = torch.tensor([[3, 5, 6, 7, 8, 9]])
    with torch.no_grad():
        want = hf(ids).logits
    out, _ = interp.trace(m, ids)
    torch.testing.assert_close(out, want, atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="no tokenizer"):
        interp.trace(m, "some text")


def test_an_architecture_transformerlens_cannot_bridge_is_named_with_a_way_out(tmp_path):
    T.XLNetLMHeadModel(
        T.XLNetConfig(vocab_size=50, d_model=32, n_layer=1, n_head=4, d_inner=64)
    ).save_pretrained(tmp_path)
    with pytest.raises(
        ValueError,
        match=r"architecture XLNetLMHeadModel is not one TransformerLens 4 can bridge.*"
        r"interp.wrap\(model\)",
    ):
        interp.load_model(str(tmp_path))
