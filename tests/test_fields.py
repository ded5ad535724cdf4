"""Typed config fields: model names, devices and bounds refuse bad values with a clear message."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from interp.fields import Count, Device, Fraction, ModelName, Seed


class C(BaseModel):
    model: ModelName = "zoo:code-lm-tiny"
    models: list[ModelName] = []
    n: Count = 1
    seed: Seed = 0
    frac: Fraction = 0.5
    device: Device = "auto"


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(model="zoo:code-lm-tinny"), "Did you mean: code-lm-tiny"),
        (dict(model="hf:"), "no name after 'hf:'"),
        (dict(model="/no/such/dir"), "existing directory"),
        (
            dict(model="~no-such-user-here/m"),
            "home directory",
        ),  # found by the property test in test_configs
        (dict(models=["zoo:code-lm-tiny", "zoo:nope"]), "unknown zoo recipe 'nope'"),
        (dict(n=0), "greater than or equal to 1"),
        (dict(n=10**12), "less than or equal to"),
        (dict(seed=-1), "greater than or equal to 0"),
        (dict(frac=float("nan")), "frac"),
        (dict(frac=1.5), "less than or equal to 1"),
        (dict(device="bogus"), "unknown device 'bogus'"),
    ],
)
def test_bad_values_are_refused_with_what_is_valid(kwargs, words):
    with pytest.raises(ValidationError, match=words):
        C(**kwargs)


def test_good_values_pass(tmp_path):
    (tmp_path / "config.json").write_text("{}")  # a save_pretrained directory
    c = C(
        model=str(tmp_path),
        models=["hf:gpt2", "zoo:{variant}-s{seed}"],
        n=3,
        seed=2**32 - 1,
        frac=1.0,
        device="cuda:1",
    )
    assert c.model == str(tmp_path) and c.device == "cuda:1"
