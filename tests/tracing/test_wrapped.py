"""What the tracing layer answers about the module a bridge wraps: whether the final norm is
part of Hugging Face's base model, and a cast that reaches parameters the bridge does not list."""

from __future__ import annotations

import pytest
import torch

from interp.tracing.wrapped import cast_wrapped, final_norm_in_base_model
from tests.conftest import load_hf_models


@pytest.fixture(scope="module")
def hf(tmp_path_factory):
    return load_hf_models(tmp_path_factory.mktemp("hf"), archs=("gpt2", "bert"))


def test_the_final_norm_is_in_the_base_model_of_gpt2_not_of_bert(hf, tiny_gpt):
    assert final_norm_in_base_model(hf["gpt2"])  # ln_f closes GPT2Model
    assert not final_norm_in_base_model(hf["bert"])  # the MLM head's transform norm
    assert not final_norm_in_base_model(tiny_gpt)  # a zoo model wraps no Hugging Face model


def test_cast_wrapped_reaches_parameters_outside_the_bridge(hf):
    m = hf["gpt2"]
    wrapped = m.module.original_model
    extra = torch.nn.Linear(2, 2)  # a part only the wrapped module holds (a VLM's projector)
    wrapped.add_module("projector_for_test", extra)
    try:
        cast_wrapped(m, torch.float64)
        assert extra.weight.dtype == torch.float64
        assert all(p.dtype == torch.float64 for p in m.module.parameters())
    finally:
        cast_wrapped(m, torch.float32)
        del wrapped.projector_for_test
    assert extra.weight.dtype == torch.float32
