"""Every experiment's config refuses bad values with a clean validation error, before any work.

``interp run X --set field=value`` builds the config with :func:`interp.runs.build_config`; a
bad value must come back as ``ValueError`` naming the field (the CLI turns it into exit 2),
never as another exception and never as a run that fails later."""

from __future__ import annotations

import typing

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from typer.testing import CliRunner

import interp
from interp import runs
from interp.cli import app

EXPERIMENTS = sorted(runs.experiments())

garbage = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.sampled_from(
        ["bogus", "zoo:", "zoo:no-such-model", "hf:", "-1", "0", "1e400", "nan", "[]", "{}"]
    ),
)


def _fields(Config: type[BaseModel]) -> list[str]:
    return [f for f in Config.model_fields if f != "seed"] + ["seed"]


@pytest.mark.parametrize("experiment", EXPERIMENTS)
@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_random_bad_values_give_a_clean_validation_error(experiment, data):
    Config = interp.analyses.get(runs.get_experiment(experiment).analysis).Config
    field = data.draw(st.sampled_from(_fields(Config)))
    value = data.draw(garbage)
    try:
        runs.build_config(experiment, "quick", {field: value})
    except ValueError as e:
        assert field in str(e)  # the message names the field
    except KeyError:  # pragma: no cover - only unknown keys raise it, and every key here is known
        raise


def _has_bounds(metadata) -> bool:
    flat = [
        x for m in metadata for x in (getattr(m, "metadata", None) or [m])
    ]  # Field(...) holds its own
    kinds = {type(m).__name__ for m in flat}
    return bool(kinds & {"Ge", "Gt"}) and bool(kinds & {"Le", "Lt"}) or bool(kinds & {"Interval"})


def _bounded(info) -> bool:
    """Bounds on the field, or on the items of a list / tuple field."""
    if _has_bounds(info.metadata):
        return True
    items = [a for a in typing.get_args(info.annotation) if a is not type(None)]
    return bool(items) and all(_has_bounds(getattr(a, "__metadata__", ())) for a in items)


def _numeric(annotation) -> bool:
    """int / float, Optional of them, or a list / tuple of them."""
    base = lambda a: typing.get_args(a)[0] if typing.get_origin(a) is typing.Annotated else a  # noqa: E731
    args = [base(a) for a in typing.get_args(annotation)]
    return (
        annotation in (int, float)
        or bool(args)
        and all(a in (int, float, type(None)) for a in args)
    )


@pytest.mark.parametrize("name", interp.analyses.names())
def test_every_number_field_has_bounds(name):
    Config = interp.analyses.get(name).Config
    loose = [
        f
        for f, info in Config.model_fields.items()
        if _numeric(info.annotation) and not _bounded(info)
    ]
    assert not loose, (
        f"{name}: number fields without bounds (use interp.fields types or Field(ge=, le=)): "
        f"{loose}"
    )


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_meaningless_values_are_refused_up_front(experiment):
    Config = interp.analyses.get(runs.get_experiment(experiment).analysis).Config
    counts = [
        f
        for f, info in Config.model_fields.items()
        if info.annotation is int
        and any(type(m).__name__ == "Ge" and m.ge >= 1 for m in info.metadata)
    ]
    for field in counts:
        for bad in (0, -3, 10**12):
            with pytest.raises(ValueError, match=field):
                runs.build_config(experiment, "quick", {field: bad})
    for field in [f for f in ("model", "device") if f in Config.model_fields]:
        with pytest.raises(ValueError, match=field):
            runs.build_config(experiment, "quick", {field: "bogus"})


def test_cli_exits_2_naming_field_value_and_valid_range():
    out = CliRunner().invoke(app, ["run", "model_report", "--set", "n_prompts=0"])
    assert (
        out.exit_code == 2
        and "n_prompts" in out.output
        and "greater than or equal to 1" in out.output
    )
    out = CliRunner().invoke(app, ["run", "model_report", "--set", "model=zoo:code-lm-tinny"])
    assert out.exit_code == 2 and "code-lm-tiny" in out.output  # the close match is named


def test_a_sequence_longer_than_the_loaded_model_reads_exits_2(tiny_gpt, tmp_path):
    tiny_gpt.save(tmp_path / "m")  # n_ctx 32
    out = CliRunner().invoke(
        app, ["run", "model_report", "--set", f"model={tmp_path / 'm'}", "--set", "seq_len=40"]
    )
    assert out.exit_code == 2, out.output
    assert "seq_len=40 is longer than the context" in out.output and "n_ctx=32" in out.output
