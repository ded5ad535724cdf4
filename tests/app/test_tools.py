"""The dashboard's tool pages: the live explorer and the run comparison (AppTest)."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import BaseModel
from streamlit.testing.v1 import AppTest

from tests.app.test_app import APP_DIR, make_run  # noqa: F401  (reuses the fake-run writer)

TIMEOUT = 60
WORDS = "def add a b return x = 1 2 ( ) : , + print".split()


class _TinyCfg(BaseModel):
    seed: int = 0


def _tiny_lm(cfg):
    """An untrained tiny transformer with a word tokenizer (builds instantly)."""
    from interp.data.tokenizer import word_tokenizer
    from interp.models.transformer import build_transformer
    from interp.tracing.model import Model
    from tests.conftest import build_spec

    tok = word_tokenizer(WORDS)
    spec = build_spec(d_vocab=len(tok))
    return Model(build_transformer(spec, tokenizer=tok), backend="tl", tokenizer=tok, kind="transformer",
                 spec={"builder": "transformer", "spec": spec.model_dump(mode="json")})


@pytest.fixture
def explorer_model(tmp_path, monkeypatch):
    from interp.models import zoo

    monkeypatch.setenv("INTERP_CACHE", str(tmp_path / "cache"))
    zoo.recipe("test-explorer-lm", _TinyCfg())(_tiny_lm)
    zoo.load("test-explorer-lm")
    yield "zoo:test-explorer-lm"
    zoo._RECIPES.pop("test-explorer-lm", None)


def _explorer_script():
    import sys


    sys.path.insert(0, str(APP_DIR))
    from explorer import explorer_page

    explorer_page()


def test_probe_prompt_invariants(explorer_model):
    import interp
    from interp.methods.prompt_probe import probe_prompt

    m = interp.load_model(explorer_model)
    p = probe_prompt(m, "def add a b : return a + b", target="x")
    L, H = m.n_layers, m.cfg.n_heads
    assert p.patterns.shape[:2] == (L, H)
    np.testing.assert_allclose(p.patterns.sum(-1), 1, atol=1e-5)
    out, _ = interp.trace(m, "def add a b : return a + b")
    # the lens at the last layer is the model's own prediction
    assert p.lens_target_prob[-1] == pytest.approx(out[0, -1].softmax(-1)[p.target_id].item(), abs=1e-5)
    assert p.head_effect.shape == (L, H) and np.abs(p.head_effect).max() > 0
    assert p.target == "x" and len(p.top_tokens) == 10


def test_probe_prompt_on_an_rnn_gives_predictions_only(tmp_path):
    import interp
    from interp.data.tokenizer import word_tokenizer
    from interp.methods.prompt_probe import probe_prompt
    from interp.models.rnn import HookedRNN, RNNSpec

    tok = word_tokenizer(WORDS)
    m = interp.wrap(HookedRNN(RNNSpec(cell="gru", d_hidden=8, d_vocab=len(tok))), tokenizer=tok)
    m.kind = "rnn"
    p = probe_prompt(m, "def add a b")
    assert p.patterns is None and len(p.top_tokens) == 10
    assert np.all(np.diff(p.top_probs) <= 0)


def test_explorer_page_renders_all_panels(explorer_model):
    at = AppTest.from_function(_explorer_script, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, at.exception
    assert at.selectbox[0].value == explorer_model
    headers = [h.value for h in at.subheader]
    assert {"Tokens", "Next-token predictions", "Attention patterns", "Per-head ablation"} <= set(headers)
    assert len(at.get("plotly_chart")) >= 4
    at.toggle(key="ablate").set_value(True).run()
    assert not at.exception, at.exception
    assert not at.error
    at.text_area[0].set_value("").run()
    assert at.error and "type a prompt" in at.error[0].value


def test_explorer_without_models_says_how_to_build(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_CACHE", str(tmp_path / "empty-cache"))
    at = AppTest.from_function(_explorer_script, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception
    at.selectbox[0].set_value("a local directory…").run()
    assert any("interp zoo build" in i.value for i in at.info)
    at.text_input[0].set_value(str(tmp_path / "nowhere")).run()
    assert at.error and "Could not load" in at.error[0].value


def _compare_script():
    import sys


    sys.path.insert(0, str(APP_DIR))
    from compare import compare_page

    compare_page()


def test_compare_page_shows_runs_side_by_side(tmp_path, monkeypatch, fake_analysis):
    monkeypatch.setenv("INTERP_RUNS", str(tmp_path / "runs"))
    make_run(tmp_path / "runs", "20240131-094501-aaaaaa", claim_value=0.12)
    make_run(tmp_path / "runs", "20240201-094501-bbbbbb", claim_value=0.01)
    at = AppTest.from_function(_compare_script, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert list(table["criterion"])[:2] == ["exact_identity", "transformer_beats_lstm"]
    row = table[table["criterion"] == "transformer_beats_lstm"].iloc[0]
    assert "0.12 (holds)" in row.values and "0.01 (fails)" in row.values
    assert len(at.get("plotly_chart")) == 2


@pytest.fixture
def fake_analysis():
    import interp.analyses as analyses
    from tests.app.test_app import FakeConfig, fake_run

    analyses.register("fake_analysis", FakeConfig, title="Fake analysis")(fake_run)
    yield
    analyses._REGISTRY.pop("fake_analysis", None)
