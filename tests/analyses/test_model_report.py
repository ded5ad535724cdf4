"""model_report end to end at tiny size, on two different models."""

from __future__ import annotations

import numpy as np
import pytest

import interp


@pytest.mark.parametrize("spec_kw", [dict(), dict(n_layers=3, n_heads=2, attn_only=True)])
def test_model_report_on_tiny_models(tmp_path, spec_kw):
    from interp.models.transformer import build_transformer
    from interp.tracing.model import Model
    from tests.conftest import build_spec

    spec = build_spec(**spec_kw)
    m = Model(
        build_transformer(spec),
        backend="tl",
        kind="transformer",
        spec={"builder": "transformer", "spec": spec.model_dump(mode="json")},
    )
    m.save(tmp_path / "m")
    analysis = interp.analyses.get("model_report")
    result = analysis.run(
        {"model": str(tmp_path / "m"), "n_prompts": 6, "seq_len": 10, "batch_size": 4}
    )
    sanity = [c for c in result.criteria if c.kind == "sanity"]
    assert len(sanity) == 3 and all(c.holds for c in sanity), result.summary()
    L, H = spec.n_layers, spec.n_heads
    assert result.arrays["head_loss_increase"].shape == (L, H)
    assert result.arrays["logit_lens_loss"].shape == (L + 1,)
    assert result.arrays["prompt_patterns"].shape[:2] == (L, H)
    assert np.all(
        (result.arrays["prev_token_score"] >= 0) & (result.arrays["prev_token_score"] <= 1)
    )
    # the lens at the last layer is the model itself: same loss as the clean run
    assert result.arrays["logit_lens_loss"][-1] == pytest.approx(
        result.metrics["clean_loss"], rel=1e-4
    )
    result.save(tmp_path / "run")
    assert interp.Result.load(tmp_path / "run").figure("logit_lens") is not None


def test_model_report_rejects_an_rnn(tmp_path, tiny_rnn):
    tiny_rnn.save(tmp_path / "rnn")
    with pytest.raises(ValueError, match="transformer"):
        interp.analyses.get("model_report").run({"model": str(tmp_path / "rnn")})


@pytest.mark.slow
def test_model_report_on_a_gpt2_shaped_checkpoint_with_its_own_tokenizer(tmp_path):
    """A saved Hugging Face GPT-2 (random weights) with its own BPE: the prompts are tokenized by
    that tokenizer and every sanity criterion holds (they are properties of any correct tracer)."""
    import torch
    import transformers as T

    from interp.data.tokenizer import train_bpe

    tok = train_bpe(
        ["def add(a, b):\n    return a + b\n\nfor i in range(10):\n    print(i)\n" * 20] * 10,
        vocab_size=300,
    )
    torch.manual_seed(0)
    T.GPT2LMHeadModel(
        T.GPT2Config(
            vocab_size=len(tok),
            n_embd=32,
            n_layer=2,
            n_head=4,
            n_positions=64,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.bos_token_id,
        )
    ).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    result = interp.analyses.get("model_report").run(
        {"model": str(tmp_path), "n_prompts": 6, "seq_len": 10, "batch_size": 4}
    )
    sanity = [c for c in result.criteria if c.kind == "sanity"]
    assert len(sanity) == 3 and all(c.holds for c in sanity), result.summary()
    assert result.arrays["head_loss_increase"].shape == (2, 4)
    assert result.arrays["logit_lens_loss"][-1] == pytest.approx(
        result.metrics["clean_loss"], rel=1e-4
    )


def test_model_report_task_patching_on_a_template_model(tmp_path):
    """task=ioi on a tiny model whose word tokenizer holds the IOI template's words: activation
    and attribution patching per head come back with one value per head, and their agreement is a
    finite correlation (a random model's heads still move its logit difference)."""
    from interp.data.sae_circuits import template_vocab
    from interp.data.tokenizer import word_tokenizer
    from interp.models.transformer import build_transformer
    from interp.tracing.model import Model
    from tests.conftest import build_spec

    tok = word_tokenizer(template_vocab())
    spec = build_spec(d_vocab=len(tok))
    Model(
        build_transformer(spec, tokenizer=tok),
        backend="tl",
        tokenizer=tok,
        kind="transformer",
        spec={"builder": "transformer", "spec": spec.model_dump(mode="json")},
    ).save(tmp_path / "m")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(3):
        (corpus / f"t{i}.txt").write_text(
            "when Mary and John went to the store , John gave a drink to Mary . " * 30
        )
    result = interp.analyses.get("model_report").run(
        {
            "model": str(tmp_path / "m"),
            "corpus": str(corpus),
            "n_prompts": 2,
            "seq_len": 8,
            "task": "ioi",
            "task_prompts": 4,
        }
    )
    crit = {c.name: c for c in result.criteria}
    assert {"task_clean_metric_positive", "attribution_tracks_activation_patching"} <= set(crit)
    assert result.arrays["task_activation_patching"].shape == (spec.n_layers, spec.n_heads)
    assert np.isfinite(crit["attribution_tracks_activation_patching"].value)
    assert len(result.metrics["task_top_heads"]) == 5
    assert result.figure("task_patching") is not None
