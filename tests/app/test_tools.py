"""The dashboard's tool pages: the live explorer and the run comparison (AppTest).

Zoo models here are tiny untrained transformers registered as recipes in the test (they
build instantly); the reversal section is checked on a tiny untrained model saved with the
facts config a reversal recipe records."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import BaseModel
from streamlit.testing.v1 import AppTest

from tests.app.test_app import APP_DIR, make_run  # noqa: F401  (reuses the fake-run writer)

TIMEOUT = 180  # an upper bound for a loaded machine; the tests wait for content, not a clock
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
    return Model(
        build_transformer(spec, tokenizer=tok),
        backend="tl",
        tokenizer=tok,
        kind="transformer",
        spec={"builder": "transformer", "spec": spec.model_dump(mode="json")},
    )


PROMPTS = ("def add a b : return a + b", "x = 1 + 2")


def _register_tiny(name: str, prompts=()) -> str:
    from interp.models import zoo

    zoo.recipe(name, _TinyCfg(), prompts=prompts)(_tiny_lm)
    zoo.load(name)
    return f"zoo:{name}"


@pytest.fixture
def explorer_model(tmp_path, monkeypatch):
    """One built zoo model without example prompts (the page falls back on its vocabulary)."""
    from interp.models import zoo

    monkeypatch.setenv("INTERP_CACHE", str(tmp_path / "cache"))
    yield _register_tiny("test-explorer-lm")
    zoo._RECIPES.pop("test-explorer-lm", None)


@pytest.fixture
def prompted_models(tmp_path, monkeypatch):
    """Two built zoo models: "test-a-plain" (no prompts) and "test-z-prompted" (PROMPTS)."""
    from interp.models import zoo

    monkeypatch.setenv("INTERP_CACHE", str(tmp_path / "cache"))
    yield _register_tiny("test-a-plain"), _register_tiny("test-z-prompted", PROMPTS)
    zoo._RECIPES.pop("test-a-plain", None)
    zoo._RECIPES.pop("test-z-prompted", None)


def _explorer_script(app_dir: str):
    import sys

    sys.path.insert(0, app_dir)
    from explorer import explorer_page

    explorer_page()


def explorer() -> AppTest:
    return AppTest.from_function(
        _explorer_script, args=(str(APP_DIR),), default_timeout=TIMEOUT
    ).run()


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
    assert p.lens_target_prob[-1] == pytest.approx(
        out[0, -1].softmax(-1)[p.target_id].item(), abs=1e-5
    )
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
    at = explorer()
    assert not at.exception, at.exception
    assert at.selectbox[0].value == explorer_model
    headers = [h.value for h in at.subheader]
    assert {"Tokens", "Next-token predictions", "Attention patterns", "Per-head ablation"} <= set(
        headers
    )
    assert len(at.get("plotly_chart")) >= 4
    at.toggle(key="ablate").set_value(True).run()
    assert not at.exception, at.exception
    assert not at.error
    at.text_area[0].set_value("").run()
    assert at.error and "type a prompt" in at.error[0].value


def test_explorer_without_models_says_how_to_build(tmp_path, monkeypatch):
    from interp.models import pretrained

    monkeypatch.setenv("INTERP_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(pretrained, "is_installed", lambda name: False)  # nor the real model
    at = explorer()
    assert not at.exception
    at.selectbox[0].set_value("a local directory…").run()
    assert any("interp zoo build" in i.value for i in at.info)
    at.text_input[0].set_value(str(tmp_path / "nowhere")).run()
    assert at.error and "Could not load" in at.error[0].value


def _compare_script(app_dir: str):
    import sys

    sys.path.insert(0, app_dir)
    from compare import compare_page

    compare_page()


def test_compare_page_shows_runs_side_by_side(tmp_path, monkeypatch, fake_analysis):
    monkeypatch.setenv("INTERP_RUNS", str(tmp_path / "runs"))
    make_run(tmp_path / "runs", "20240131-094501-aaaaaa", claim_value=0.12)
    make_run(tmp_path / "runs", "20240201-094501-bbbbbb", claim_value=0.01)
    at = AppTest.from_function(_compare_script, args=(str(APP_DIR),), default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert list(table["criterion"])[:2] == ["exact_identity", "transformer_beats_lstm"]
    row = table[table["criterion"] == "transformer_beats_lstm"].iloc[0]
    assert "0.12 (holds)" in row.values and "0.01 (does not hold)" in row.values
    assert len(at.get("plotly_chart")) == 2


@pytest.fixture
def fake_analysis():
    import interp.analyses as analyses
    from tests.app.test_app import FakeConfig, fake_run

    analyses.register("fake_analysis", FakeConfig, title="Fake analysis")(fake_run)
    yield
    analyses._REGISTRY.pop("fake_analysis", None)


# ------------------------------------------------------------------ the explorer's prompts
def test_explorer_opens_on_a_model_with_prompts_and_its_first_prompt(prompted_models):
    plain, prompted = prompted_models
    at = explorer()
    assert not at.exception, at.exception
    assert at.selectbox[0].options[:2] == [
        prompted,
        plain,
    ]  # a model with example prompts comes first
    assert at.selectbox[0].value == prompted
    assert at.text_area[0].value == PROMPTS[0] and not at.warning
    examples = at.selectbox(key=f"example-{prompted}")
    assert examples.options == list(PROMPTS)  # shown as the prompts themselves
    examples.set_value(1).run()
    assert not at.exception and at.text_area[0].value == PROMPTS[1]
    at.text_area[0].set_value("def zzz a").run()
    assert [w.value for w in at.warning] and "'zzz'" in at.warning[
        0
    ].value  # unknown words are said
    at.selectbox[0].set_value(plain).run()
    assert not at.exception and not at.warning
    # no example prompts: the model's own first words (the Python default would be <|unk|> here)
    assert at.text_area[0].value == " ".join(WORDS[:12])


def test_explorer_reads_the_prompts_of_a_saved_directorys_recipe(prompted_models, tmp_path):
    from interp.models import zoo

    at = explorer()
    at.selectbox[0].set_value("a local directory…").run()
    at.text_input[0].set_value(str(zoo.get("test-z-prompted").path)).run()
    assert not at.exception and not at.error
    assert at.text_area[0].value == PROMPTS[0]


def _cheap_tokenizer(config, cache: dict):
    """The tokenizer a recipe's model reads, built without training the model (built once per
    kind in ``cache``); None for a model that reads token ids or noise."""
    from interp.data.corpus import load_corpus
    from interp.data.crossmodal import vqa_tokenizer
    from interp.data.reversal import make_facts
    from interp.data.sae_circuits import template_vocab
    from interp.data.tokenizer import train_bpe, word_tokenizer
    from interp.models.recipes.code_lm import CODE_LM_TINY, LMRecipe
    from interp.models.recipes.crossmodal import VLMRecipe
    from interp.models.recipes.ngram_heads import ICLLRecipe
    from interp.models.recipes.reversal import ReversalRecipe
    from interp.models.recipes.rnn_hmm import HMMRecipe
    from interp.models.recipes.sae_circuits import CircuitLMRecipe

    # code-lm-tiny's own tokenizer; the larger recipes' BPEs split code into fewer tokens
    def bpe():
        corpus = load_corpus(
            CODE_LM_TINY.corpus, max_chars=CODE_LM_TINY.max_chars, seed=CODE_LM_TINY.seed
        )
        return train_bpe(corpus.train, vocab_size=CODE_LM_TINY.vocab_size)

    if isinstance(config, (ICLLRecipe, HMMRecipe)):
        return None
    kinds = {
        LMRecipe: ("bpe", bpe),
        CircuitLMRecipe: ("words", lambda: word_tokenizer(template_vocab())),
        VLMRecipe: ("vqa", vqa_tokenizer),
    }
    if isinstance(config, ReversalRecipe):
        key, build = config.facts.model_dump_json(), lambda: make_facts(config.facts).tokenizer()
    elif type(config) in kinds:
        key, build = kinds[type(config)]
    else:
        raise AssertionError(
            f"no cheap tokenizer for {type(config).__name__}: add one to this test"
        )
    if key not in cache:
        cache[key] = build()
    return cache[key]


def test_every_recipes_example_prompts_read_without_unknown_tokens(monkeypatch):
    """Every zoo recipe's prompts tokenize without <|unk|> and fit the model's context; DFA
    prompts are strings over the DFA alphabet; the HMM RNNs read noise and have none."""
    from interp.data.ngram_heads import from_string
    from interp.models import zoo
    from interp.models.recipes.ngram_heads import ICLLRecipe
    from interp.models.recipes.rnn_hmm import HMMRecipe

    monkeypatch.syspath_prepend(str(APP_DIR))
    from explorer import unknown_tokens

    cache: dict = {}
    for name in zoo.names():
        r = zoo.get(name)
        spec = getattr(r.config, "spec", None) or getattr(r.config, "transformer", None)
        n_ctx = getattr(spec, "n_ctx", None)
        if isinstance(r.config, HMMRecipe):
            assert not r.prompts, name
            continue
        assert r.prompts, f"zoo recipe {name} has no example prompts"
        if isinstance(r.config, ICLLRecipe):
            for p in r.prompts:  # raises on a character outside the DFA vocabulary
                assert len(from_string(p)) <= (n_ctx or 10**9), (name, p)
            continue
        tok = _cheap_tokenizer(r.config, cache)
        for p in r.prompts:
            assert not unknown_tokens(tok, p), (name, p, unknown_tokens(tok, p))
            if n_ctx:  # BOS + the prompt + room for a completion
                assert len(tok.encode(p, add_special_tokens=False)) + 2 <= max(n_ctx, 16), (name, p)


# ------------------------------------------------------------------ reversal fact models
@pytest.fixture
def fact_model_dir(tmp_path):
    """A tiny untrained causal transformer on token-level facts, saved as a reversal recipe saves
    one (its interp_model.json holds recipe_config.facts)."""
    from interp.data.reversal import FactsConfig, make_facts
    from interp.models.io import save_model
    from interp.models.transformer import build_transformer
    from interp.tracing.model import Model
    from tests.conftest import build_spec

    facts_cfg = FactsConfig(
        variant="token", n_pairs=12, n_train_templates=3, n_heldout_templates=1, seed=0
    )
    facts = make_facts(facts_cfg)
    tok = facts.tokenizer()
    spec = build_spec(d_vocab=len(tok), n_ctx=max(16, facts.seq_len))
    m = Model(
        build_transformer(spec, tokenizer=tok),
        backend="tl",
        tokenizer=tok,
        kind="transformer",
        spec={"builder": "transformer", "spec": spec.model_dump(mode="json")},
    )
    path = tmp_path / "fact-model"
    save_model(
        m,
        path,
        extra={"recipe_config": {"facts": facts_cfg.model_dump(mode="json"), "objective": "clm"}},
    )
    return path, facts


def test_explorer_asks_a_fact_model_on_request(fact_model_dir, tmp_path, monkeypatch):
    import interp
    from interp.models.recipes.reversal import example_questions

    monkeypatch.setenv("INTERP_CACHE", str(tmp_path / "empty-cache"))
    path, facts = fact_model_dir
    questions = example_questions(facts.config)
    at = explorer()
    at.selectbox[0].set_value("a local directory…").run()
    at.text_input[0].set_value(str(path)).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "Ask the fact model" in [h.value for h in at.subheader]
    assert at.text_area[0].value == questions[0][0]  # the generic prompt is a fact question too
    box = at.text_input(key=f"fact-q-{path}")
    assert box.value == questions[0][0]
    assert not [d for d in at.dataframe]  # nothing runs before the button is pressed
    at.button(key="fact_go").click().run()
    assert not at.exception and not at.warning
    frame = at.dataframe[0].value
    assert list(frame["rank"]) == [1, 2, 3, 4, 5] and list(frame["log-prob"]) == sorted(
        frame["log-prob"], reverse=True
    )
    # one-token names: the likeliest completion is the argmax next token (specials excluded)
    import torch

    m = interp.load_model(str(path), device="cpu")
    ids = [m.tokenizer.bos_token_id] + [m.tokenizer.get_vocab()[w] for w in questions[0][0].split()]
    padded = torch.tensor(
        [ids + [m.tokenizer.pad_token_id] * (facts.seq_len - len(ids))]
    )  # [1, seq_len]
    with torch.no_grad():
        lp = m.module(padded)[0, len(ids) - 1].log_softmax(-1)  # [vocab]
    lp[: len(m.tokenizer.all_special_ids)] = -float("inf")
    assert frame["completion"][0] == m.tokenizer.decode([int(lp.argmax())])
    assert frame["log-prob"][0] == pytest.approx(float(lp.max()), abs=1e-3)
    box.set_value("who is zzzunknown").run()
    at.button(key="fact_go").click().run()
    assert not at.exception and any("unknown words" in w.value for w in at.warning)


def test_explorer_offers_no_fact_section_to_other_models(explorer_model):
    at = explorer()
    assert not at.exception and "Ask the fact model" not in [h.value for h in at.subheader]


def test_explorer_steers_on_request(explorer_model, tmp_path):
    """The steering panel: nothing runs before the button; then both completions and the
    per-token shift; a saved CAA vector steers too; a bad path is a warning, not a crash."""
    at = explorer()
    at.selectbox[0].set_value(explorer_model).run()  # not the real model the page may offer first
    assert "Steering" in [h.value for h in at.subheader]
    n_charts = len(at.get("plotly_chart"))
    at.text_input(key="steer_plus").set_value("return a + b").run()
    at.text_input(key="steer_minus").set_value("x = 1").run()
    at.slider(key="steer_coef").set_value(10.0).run()
    at.button(key="steer_go").click().run()
    assert not at.exception and not at.warning, [w.value for w in at.warning]
    assert len(at.get("plotly_chart")) == n_charts + 1
    assert len(at.code) >= 3  # the tokens, then unsteered and steered completions
    np.save(tmp_path / "v.npy", np.ones(32, dtype=np.float32))
    at.selectbox(key="steer_source").set_value("a saved CAA vector (.npy)").run()
    at.text_input(key="steer_path").set_value(str(tmp_path / "v.npy")).run()
    at.button(key="steer_go").click().run()
    assert not at.exception and not at.warning, [w.value for w in at.warning]
    at.text_input(key="steer_path").set_value(str(tmp_path / "missing.npy")).run()
    at.button(key="steer_go").click().run()
    assert not at.exception and at.warning and "Could not steer" in at.warning[0].value
