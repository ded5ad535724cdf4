"""The general workflows on the real pretrained model (SmolLM2-135M-Instruct), each preset named
``real`` run end to end at a small size on the one model the session loads.

Sizes are cut (a 135M model does ~100-300 tokens/s on 2 CPU cores); what the presets measure
at full size is in docs/real_model.md."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import interp
from interp import runs

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]  # 600 s is short on a loaded machine
REAL = "pretrained:smollm2-135m"


@pytest.fixture
def shared_real(real_model, monkeypatch):
    """Analyses that load ``pretrained:smollm2-135m`` get the session's model (loaded once)."""
    load = interp.load_model

    def loader(name, *args, **kwargs):
        return real_model if name == REAL else load(name, *args, **kwargs)

    monkeypatch.setattr(interp, "load_model", loader)
    return real_model


def preset(experiment: str, **smaller) -> dict:
    values = dict(runs.experiments()[experiment].presets["real"])
    assert values["model"] == REAL
    return {**values, **smaller}


def test_check_passes_on_the_real_model(shared_real):
    result = interp.analyses.get("check").run(
        dict(
            model=REAL,
            n_prompts=2,
            seq_len=16,
            timing_batch=(2, 16),
            timing_batches=1,
            repeats=1,
            device="cpu",
        )
    )
    assert all(c.holds for c in result.criteria), result.summary()
    assert result.metrics["plain_routed_hooks"] > 0  # collect takes the fast path on it


def test_model_report_real_preset(shared_real):
    result = interp.analyses.get("model_report").run(
        preset("model_report", n_prompts=2, seq_len=12, batch_size=2, task_prompts=2)
    )
    crit = {c.name: c for c in result.criteria}
    assert all(c.holds for c in result.criteria if c.kind == "sanity"), result.summary()
    # the unigram baseline is fitted on training text, scored on the evaluation tokens
    assert result.metrics["unigram_loss"] > 0 and np.isfinite(result.metrics["unigram_loss"])
    assert crit["lens_improves_with_depth"].holds
    # IOI heads by activation and attribution patching, on prompts built from its tokenizer
    assert result.metrics["task"] == "ioi_natural" and crit["task_clean_metric_positive"].holds
    assert result.arrays["task_activation_patching"].shape == (30, 9)
    assert np.isfinite(crit["attribution_tracks_activation_patching"].value)


def test_sae_real_preset(shared_real, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(4):
        (corpus / f"m{i}.py").write_text(f"def add_{i}(a, b):\n    return a + b\n\n" * 40)
    result = interp.analyses.get("sae").run(
        preset(
            "sae",
            corpus=str(corpus),
            n_train=8,
            n_eval=2,
            seq_len=24,
            d_sae=64,
            k=8,
            steps=30,
            batch_size=64,
            collect_batch=4,
            feature_k=3,
            cache_store=False,
        )
    )
    crit = {c.name: c for c in result.criteria}
    assert crit["error_term_makes_splice_exact"].holds and crit["decoder_rows_unit_norm"].holds, (
        result.summary()
    )
    assert result.metrics["skip_first"] == 1 and result.metrics["train_tokens"] == 8 * 23


def test_task_prompts_from_the_real_tokenizer(real_model):
    from interp.data.sae_circuits import make_task

    m = real_model
    ioi = make_task("ioi_natural", m.tokenizer, 8, seed=0)
    assert (ioi.clean[:, 0] == m.start_token_id).all()
    with torch.no_grad():
        logits = m(ioi.clean)[torch.arange(8), ioi.answer_pos]
    diff = logits.gather(1, ioi.answer[:, None]) - logits.gather(1, ioi.wrong[:, None])
    assert diff.mean() > 1.0 and (diff > 0).float().mean() >= 0.75, (
        diff.squeeze()
    )  # a real IOI behaviour
    gt = make_task("greater_than", m.tokenizer, 8, seed=0)  # SmolLM2 splits years into digits
    digits = [m.tokenizer.convert_tokens_to_ids(str(d)) for d in range(10)]
    for text, good, bad in zip(gt.texts, gt.good_mask, gt.bad_mask, strict=True):
        tens = int(text.split("year ")[1][2])  # "... year 1732 to ..." -> 3
        assert [bool(good[i]) for i in digits] == [d > tens for d in range(10)]
        assert [bool(bad[i]) for i in digits] == [d < tens for d in range(10)]
    with torch.no_grad():
        p = m(gt.clean)[torch.arange(8), gt.answer_pos].softmax(-1)
    assert ((p * gt.good_mask).sum(-1) - (p * gt.bad_mask).sum(-1)).mean() > 0.3
