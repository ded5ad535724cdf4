"""The builder table and loading a saved directory (interp/models/builders.py)."""

from __future__ import annotations

import pytest
import torch

from interp.models import builders
from interp.models.builders import BUILDERS, builder_for, load_model_dir, register_builder


def test_every_builder_resolves_to_a_function_and_a_kind():
    for name in BUILDERS:
        build, kind = builder_for(name)
        assert callable(build) and kind in ("transformer", "rnn", "vlm")
    with pytest.raises(KeyError, match="transformer"):  # the closest names are listed
        builder_for("transformerr")


def test_a_registered_builder_loads_a_directory_back(tiny_rnn, tokens, tmp_path, monkeypatch):
    from interp.models.rnn import build_rnn

    monkeypatch.setattr(
        builders, "BUILDERS", dict(BUILDERS)
    )  # the table is restored after the test
    register_builder("my_rnn", build_rnn, kind="rnn")
    tiny_rnn.spec = {**tiny_rnn.spec, "builder": "my_rnn"}
    tiny_rnn.save(tmp_path / "m")
    back = load_model_dir(tmp_path / "m", device="cpu", model_id="mine")
    assert back.model_id == "mine" and back.kind == "rnn" and back.backend == "tl"
    torch.testing.assert_close(back(tokens), tiny_rnn(tokens))
    with pytest.raises(ValueError, match="exists already"):
        register_builder("my_rnn", build_rnn)


def test_unreadable_weights_are_named(tiny_gpt, tmp_path):
    tiny_gpt.save(tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="cannot read weights"):
        load_model_dir(tmp_path / "m")
