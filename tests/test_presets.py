"""Presets: every preset of every experiment (and of the benchmark) validates, and lists only
what differs from its Config's defaults (a key whose removal leaves the validated config
unchanged repeats a default, even where a default depends on other fields)."""

from __future__ import annotations

import shutil
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, model_validator

import interp.analyses as analyses
from interp import bench, runs


def _all_presets() -> list[tuple[str, type, dict[str, dict]]]:
    """``(what, Config, presets)`` for every experiment and the benchmark."""
    out = [
        (name, analyses.get(exp.analysis).Config, exp.presets)
        for name, exp in runs.experiments().items()
    ]
    return out + [("benchmarks/bench", bench.Config, bench.presets())]


def _dump(Config: type, values: dict) -> dict:
    return runs.config_from_presets(Config, {"p": values}, "p").model_dump(mode="json")


def _leaves(Config: type, values: dict, prefix: str = "") -> list[str]:
    """Dotted paths of the values a preset sets; a nested config's dict is walked into."""
    out = []
    for key, value in values.items():
        path = prefix + key
        field = Config.model_fields.get(key.split(".")[0]) if "." not in key else None
        sub = field.annotation if field is not None else None
        if isinstance(value, dict) and isinstance(sub, type) and issubclass(sub, BaseModel):
            out += _leaves(sub, value, path + ".")
        else:
            out.append(path)
    return out


def _without(values: dict, path: str) -> dict:
    """``values`` with the leaf at dotted ``path`` removed (``path`` as :func:`_leaves` gives
    it)."""
    out = dict(values)
    if path in out:
        del out[path]
        return out
    head, _, rest = path.partition(".")
    out[head] = _without(out[head], rest)
    return out


def repeated_defaults(Config: type, presets: dict[str, dict]) -> list[str]:
    """``preset: key`` for every key whose removal leaves the validated config unchanged."""
    found = []
    for preset, values in presets.items():
        full = _dump(Config, values or {})
        found += [
            f"{preset}: {p}"
            for p in _leaves(Config, values or {})
            if _same_without(Config, values, p, full)
        ]
    return found


def _same_without(Config: type, values: dict, path: str, full: dict) -> bool:
    """Whether ``values`` without ``path`` validates to ``full``; a key whose removal makes the
    config invalid (it pairs with another key, e.g. a primary feature among the features) is
    needed, not a repeated default."""
    try:
        return _dump(Config, _without(values, path)) == full
    except ValueError:
        return False


def check_no_repeated_defaults() -> None:
    bad = {
        what: r
        for what, Config, presets in _all_presets()
        if (r := repeated_defaults(Config, presets))
    }
    assert not bad, f"presets repeating their Config's defaults (remove them): {bad}"


# ------------------------------------------------------------------ the real presets
def test_every_preset_validates():
    seen = 0
    for what, Config, presets in _all_presets():
        assert {"quick", "full"} <= set(presets), what
        for preset in presets:
            cfg = runs.config_from_presets(Config, presets, preset, what=what)
            assert isinstance(cfg, Config)
            assert (
                Config.model_validate(cfg.model_dump(mode="json")) == cfg
            )  # round-trips through JSON
            seen += 1
    assert seen >= 2 * len(runs.experiments()) + 2


def test_presets_list_only_what_differs_from_the_defaults():
    check_no_repeated_defaults()


# ------------------------------------------------------------------ the check itself
def _plant(tmp_path, text: str, name: str = "planted") -> None:
    """An experiments directory: the real experiments and benchmark plus ``<name>.yaml``."""
    src = runs.experiments_dir()
    for f in src.glob("*.yaml"):
        shutil.copy(f, tmp_path / f.name)
    (tmp_path / "benchmarks").mkdir()
    shutil.copy(src / "benchmarks" / "bench.yaml", tmp_path / "benchmarks" / "bench.yaml")
    (tmp_path / f"{name}.yaml").write_text(text)


def test_a_planted_default_fails_the_check(tmp_path, monkeypatch):
    default = analyses.get("model_report").Config.model_fields["n_prompts"].default
    _plant(
        tmp_path,
        f"analysis: model_report\npresets:\n  quick: {{n_prompts: {default}, seq_len: 7}}\n"
        "  full: {}\n",
    )
    monkeypatch.setenv("INTERP_EXPERIMENTS", str(tmp_path))
    assert "planted" in runs.experiments()
    with pytest.raises(AssertionError, match=r"planted.*quick: n_prompts") as err:
        check_no_repeated_defaults()
    assert "seq_len" not in str(err.value)  # 7 is not the default: it stays


def test_a_planted_nested_default_fails_the_check(tmp_path, monkeypatch):
    Config = analyses.get("ngram_heads").Config
    nested = [p for p in runs.field_paths(Config) if "." in p]
    if not nested:
        pytest.skip("ngram_heads has no nested config any more")
    head, _, leaf = nested[0].partition(".")
    default = getattr(getattr(Config(), head), leaf)
    _plant(
        tmp_path,
        "analysis: ngram_heads\npresets:\n  quick: {}\n"
        f"  full:\n    {head}: {{{leaf}: {default}}}\n",
    )
    monkeypatch.setenv("INTERP_EXPERIMENTS", str(tmp_path))
    with pytest.raises(AssertionError, match=rf"full: {head}\.{leaf}"):
        check_no_repeated_defaults()


class _Derived(BaseModel):
    """A config whose ``b`` defaults to twice ``a``."""

    model_config = ConfigDict(extra="forbid")

    a: int = 1
    b: int | None = None
    seed: int = 0

    @model_validator(mode="after")
    def _derive(self) -> Any:
        if self.b is None:
            self.b = 2 * self.a
        return self


def test_defaults_that_depend_on_other_fields():
    # b=4 is what a=2 derives anyway: repeated; b=2 with a=2 is not (and neither is a then)
    assert repeated_defaults(
        _Derived, {"x": {"a": 2, "b": 4}, "y": {"a": 2, "b": 2}, "z": {"a": 1}}
    ) == ["x: b", "z: a"]
