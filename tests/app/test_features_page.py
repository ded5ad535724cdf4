"""The Features page (AppTest) on a run whose result holds feature pages computed from a tiny
model's store: it renders a latent, search by id and by a promoted token works, token text is
escaped, and an empty runs root says how to make a run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

import interp
from interp.results import Result
from interp.sae.features import feature_pages
from interp.sae.model import SAE, SAEConfig
from interp.utils import write_json

APP_DIR = Path(__file__).resolve().parents[2] / "app"
TIMEOUT = 120  # an upper bound for a loaded machine; the tests wait for content, not a clock
VOCAB = ["<b>"] + [f"w{i}" for i in range(1, 50)]  # token 0 would break raw HTML unless escaped


def _script(app_dir: str) -> None:
    import sys

    sys.path.insert(0, app_dir)
    from features import features_page

    features_page()


def page() -> AppTest:
    return AppTest.from_function(_script, args=(str(APP_DIR),), default_timeout=TIMEOUT).run()


@pytest.fixture
def pages(tiny_gpt, tmp_path):
    hook = tiny_gpt.hook("resid_post", 0)
    x = torch.randint(0, 50, (8, 10), generator=torch.Generator().manual_seed(0))
    x[0, :3] = 0  # "<b>" appears in contexts
    store = interp.collect(tiny_gpt, x, [hook], batch_size=4, out=tmp_path / "store", shard_size=3)
    sae = SAE(SAEConfig(d_in=tiny_gpt.cfg.d_model, d_sae=16, init_seed=0))
    return feature_pages(sae, store, hook, model=tiny_gpt, tokenizer=VOCAB, k=4, context=3)


@pytest.fixture
def run_with_pages(pages, tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    monkeypatch.setenv("INTERP_RUNS", str(runs))
    result = pages.to_result(Result("sae", {"seed": 0}))
    path = runs / "sae" / "20240131-094501-abcdef"
    result.save(path)
    write_json(
        path / "run.json",
        {"experiment": "sae", "preset": "quick", "analysis": "sae", "created": "20240131-094501"},
    )
    other = runs / "other" / "20240131-094502-abcdef"  # a run without pages is not listed
    Result("other").save(other)
    write_json(
        other / "run.json",
        {
            "experiment": "other",
            "preset": "quick",
            "analysis": "other",
            "created": "20240131-094502",
        },
    )
    return path


def _text(at: AppTest) -> str:
    return "\n".join(
        str(el.value)
        for kind in ("title", "subheader", "markdown", "caption", "info", "warning", "error")
        for el in at.get(kind)
    )


def test_a_saved_run_renders_a_latent_with_highlighted_contexts(run_with_pages, pages):
    at = page()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert len(at.selectbox[0].options) == 1  # the run without pages is not listed
    text = _text(at)
    assert "Latent 0" in text and "Top contexts" in text
    html = [str(m.value) for m in at.markdown if "<span" in str(m.value)]
    assert len(html) == len(pages.contexts(0)) > 0
    assert "rgba(" in html[0] and "underline" in html[0]
    assert len(at.get("plotly_chart")) == 2  # histogram and logit effects
    assert f"{pages.token_str(int(pages.promoted[0, 0]))!r}" in text


def test_search_by_id_and_by_a_promoted_token(run_with_pages, pages):
    at = page()
    at.text_input[0].input("7").run()
    assert not at.exception and "Latent 7" in _text(at)
    token = pages.token_str(int(pages.promoted[3, 0]))
    at.text_input[0].input(token).run()
    assert not at.exception
    options = [int(o) for o in at.selectbox[-1].options] if len(pages.search(token)) > 1 else [3]
    assert 3 in options and set(options) == set(pages.search(token))
    if len(options) > 1:
        at.selectbox[-1].select(3).run()
    assert "Latent 3" in _text(at)
    with_b = int(
        np.flatnonzero((pages.ctx_tokens == 0).any((1, 2)))[0]
    )  # a latent with "<b>" in a context
    at.text_input[0].input(str(with_b)).run()
    html = "".join(str(m.value) for m in at.markdown if "<span" in str(m.value))
    assert ">&lt;b&gt;</span>" in html and "><b></span>" not in html  # token text is escaped
    at.text_input[0].input("no-such-token").run()
    assert "No latent matches" in _text(at)


def test_an_empty_runs_root_says_how_to_make_one(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_RUNS", str(tmp_path / "empty"))
    at = page()
    assert not at.exception
    assert "No runs with SAE feature pages yet" in _text(at) and "to_result" in _text(at)


def test_the_app_with_the_features_page_in_its_menu_starts(run_with_pages):
    at = AppTest.from_file(str(APP_DIR / "Home.py"), default_timeout=TIMEOUT).run()
    assert not at.exception and not at.error  # the menu built (page icon and import included)
    assert "interp dashboard" in _text(at)
