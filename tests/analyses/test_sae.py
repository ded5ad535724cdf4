"""The sae experiment end to end on a tiny LM with its own tokenizer: criteria, metrics,
feature pages."""

from __future__ import annotations

import numpy as np
import pytest

import interp
from interp.sae.features import FeaturePages


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    from tests.analyses.test_bigram import CODE, lm_with_tokenizer

    d = tmp_path_factory.mktemp("sae")
    corpus = d / "corpus"
    corpus.mkdir()
    for i in range(8):
        (corpus / f"mod{i}.py").write_text(CODE.replace("add", f"add{i}") * 3)
    return lm_with_tokenizer(d / "m", corpus), corpus


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["topk", "relu"])
def test_sae_experiment_end_to_end(tiny_lm, kind):
    path, corpus = tiny_lm
    result = interp.analyses.get("sae").run(
        dict(
            model=str(path),
            corpus=str(corpus),
            kind=kind,
            n_train=32,
            n_eval=8,
            seq_len=16,
            d_sae=64,
            k=8,
            steps=150,
            batch_size=128,
            feature_k=3,
        )
    )
    crit = {c.name: c for c in result.criteria}
    assert crit["error_term_makes_splice_exact"].holds and crit["decoder_rows_unit_norm"].holds, (
        result.summary()
    )
    assert {"loss_recovered", "l0_at_most_64"} <= set(crit)
    m = result.metrics
    assert 0 <= m["dead_frac"] <= 1 and 0 <= m["fvu"] and m["ce_zero"] != m["ce_clean"]
    if kind == "topk":
        assert m["l0"] == pytest.approx(8)
    assert result.arrays["latent_density"].shape == (64,)
    pages = FeaturePages.from_result(result)  # the Features page reads these
    assert len(pages.density) == 64 and np.all((pages.density >= 0) & (pages.density <= 1))
    assert {"loss", "density", "training"} <= set(result.figures)


def test_the_quick_preset_validates_and_a_text_free_model_is_refused(tiny_gpt, tmp_path):
    cfg = interp.runs.build_config("sae", "quick")
    assert cfg.kind == "topk" and cfg.model == "zoo:code-lm-tiny"
    tiny_gpt.save(tmp_path / "m")
    with pytest.raises(ValueError, match="no tokenizer"):
        interp.analyses.get("sae").run({"model": str(tmp_path / "m"), "seq_len": 8})


def test_a_temporary_store_of_several_shards_is_read_before_it_is_removed(tiny_lm):
    """130 training windows fill three 64-item shards; the run reads what it needs of the
    temporary store (its width) before removing it (a regression: it read it after)."""
    path, corpus = tiny_lm
    result = interp.analyses.get("sae").run(
        dict(
            model=str(path),
            corpus=str(corpus),
            n_train=130,
            n_eval=4,
            seq_len=8,
            d_sae=32,
            k=4,
            steps=20,
            batch_size=128,
            feature_k=2,
        )
    )
    assert result.metrics["d_in"] > 0 and result.metrics["train_tokens"] == 130 * 7
