"""Zoo: recipes train once, load from the cache, retrain when the recipe changes."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
from pydantic import BaseModel

import interp
from interp.models import zoo
from interp.models.recipes.code_lm import LMRecipe, train_lm
from interp.models.train import TrainConfig
from interp.models.transformer import TransformerSpec

BUILDS = {"n": 0}


def _tiny_recipe(steps: int) -> LMRecipe:
    return LMRecipe(
        name="test-tiny-lm",
        max_chars=60_000,
        vocab_size=300,
        spec=TransformerSpec(n_layers=1, d_model=32, n_heads=2, n_ctx=32, d_vocab=300),
        train=TrainConfig(steps=steps, batch_size=8, lr=3e-3, warmup=2, log_every=5),
    )


def _build(cfg):
    BUILDS["n"] += 1
    return train_lm(cfg)


def test_recipe_trains_once_then_loads_from_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_CACHE", str(tmp_path))
    zoo.recipe("test-tiny-lm", _tiny_recipe(10))(_build)
    try:
        BUILDS["n"] = 0
        assert not zoo.is_built("test-tiny-lm")
        m1 = interp.load_model("zoo:test-tiny-lm")
        assert BUILDS["n"] == 1 and zoo.is_built("test-tiny-lm")
        files = {p.name for p in zoo.get("test-tiny-lm").path.iterdir()}
        assert {"model.safetensors", "interp_model.json", "tokenizer"} <= files
        m2 = interp.load_model("zoo:test-tiny-lm")
        assert BUILDS["n"] == 1  # loaded, not retrained
        x = m1.to_tokens("def f(x):\n    return x")
        assert torch.equal(m1(x), m2(x))
        assert m2.model_id == "zoo:test-tiny-lm" and m2.tokenizer is not None
        assert [e["step"] for e in m2.train_log] == [
            0,
            5,
            9,
        ]  # the training log is kept with the weights
        # a changed recipe has a new identity and retrains
        old_path = zoo.get("test-tiny-lm").path
        zoo._RECIPES.pop("test-tiny-lm")
        zoo.recipe("test-tiny-lm", _tiny_recipe(12))(_build)
        assert zoo.get("test-tiny-lm").path != old_path
        interp.load_model("zoo:test-tiny-lm")
        assert BUILDS["n"] == 2
    finally:
        zoo._RECIPES.pop("test-tiny-lm", None)


def test_recipes_are_seeded_and_deterministic(tmp_path, monkeypatch):
    cfg = _tiny_recipe(5)
    a = train_lm(cfg)
    b = train_lm(cfg)
    x = a.to_tokens("import os\n")
    assert torch.equal(a(x), b(x))


def test_zoo_lists_spine_recipes():
    assert {"code-lm-tiny", "code-lm", "attn-only-2l"} <= set(zoo.names())
    with pytest.raises(KeyError, match="Did you mean"):
        zoo.get("code-lm-tinny")


def test_duplicate_recipe_name_is_rejected():
    class C(BaseModel):
        x: int = 1

    with pytest.raises(ValueError, match="registered twice"):
        zoo.recipe("code-lm-tiny", C())(lambda c: None)


def test_two_processes_building_one_recipe_build_it_once(tmp_path):
    code = textwrap.dedent(f"""
        import time
        import interp
        from interp.models import zoo
        from tests.models.test_zoo import _tiny_recipe
        from interp.models.recipes.code_lm import train_lm

        def build(cfg):
            open({str(tmp_path / "builds")!r}, "a").write("built\\n")
            time.sleep(0.5)  # the other process arrives while this one builds
            return train_lm(cfg)

        zoo.recipe("test-race-lm", _tiny_recipe(3))(build)
        m = interp.load_model("zoo:test-race-lm", device="cpu")
        print(m.model_id)
    """)
    env = {**__import__("os").environ, "INTERP_CACHE": str(tmp_path / "cache"), "INTERP_QUIET": "1"}
    procs = [
        subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert all("zoo:test-race-lm" in o for o in outs)
    assert (tmp_path / "builds").read_text().split() == ["built"]  # the second waited and loaded
