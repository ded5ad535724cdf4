"""The saved-directory format (interp/models/io.py): each weight once under its shortest
native name, every alias restored on load."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from interp.models.io import MODEL_FILE, canonical_state_dict, load_canonical_state_dict, save_model
from interp.tracing.model import wrap


def test_a_bridge_saves_each_weight_once_and_loads_every_alias(tiny_gpt):
    native = tiny_gpt.module.original_model
    state = canonical_state_dict(native)
    full = native.state_dict()
    assert len(state) < len(full)  # the bridge aliases weights under several keys
    assert not any("_original_component" in k for k in state)
    assert len({t.data_ptr() for t in state.values()}) == len(state)
    fresh = {k: torch.randn_like(v) for k, v in state.items()}
    load_canonical_state_dict(native, fresh)
    for k, v in canonical_state_dict(native).items():
        assert torch.equal(v, fresh[k])


def test_weights_that_do_not_fit_are_named():
    lin = nn.Linear(2, 2)
    with pytest.raises(ValueError, match=r"missing \['bias'\], unexpected \['extra'\]"):
        load_canonical_state_dict(lin, {"weight": torch.zeros(2, 2), "extra": torch.zeros(1)})


def test_save_model_writes_the_builder_and_refuses_a_model_without_one(tiny_gpt, tmp_path):
    path = save_model(tiny_gpt, tmp_path / "m", extra={"note": "kept"})
    meta = json.loads((path / MODEL_FILE).read_text())
    assert (
        meta["builder"] == "transformer"
        and meta["note"] == "kept"
        and meta["spec"]["d_model"] == 32
    )
    assert (path / "model.safetensors").is_file() and not (path / "tokenizer").exists()
    with pytest.raises(ValueError, match="not built from a registered builder"):
        save_model(wrap(nn.Linear(2, 2), model_id="lin"), tmp_path / "lin")
