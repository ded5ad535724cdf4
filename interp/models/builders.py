"""The builder table, and loading a saved model directory.

A saved directory (:mod:`interp.models.io`) names its builder; :data:`BUILDERS` maps that
name to the function that makes the untrained module from ``(spec dict, tokenizer)`` and to
the model's kind. The table is plain data, read in one place: nothing has to be imported
first for a directory to load. A new architecture is one more row (or a call of
:func:`register_builder` from user code, which refuses a name that is taken).
"""

from __future__ import annotations

import contextlib
import importlib
import io as stdio
import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import ValidationError

from interp.models.io import MODEL_FILE, _native, load_canonical_state_dict
from interp.utils import ConfigError, check_fits, read_json, unknown_name_error

# torch and interp.tracing.model (which imports torch) are imported inside the functions that
# build or wrap a model: the zoo reads weight headers through this module on light paths (the
# dashboard's model menu) that must not pay for torch.


class Builder(NamedTuple):
    build: str | Callable[[dict, Any], Any]  # "module:function" or the function itself
    kind: str  # "transformer", "rnn" or "vlm": how tracing treats the model


BUILDERS: dict[str, Builder] = {
    "transformer": Builder("interp.models.transformer:build_transformer", "transformer"),
    "rnn": Builder("interp.models.rnn:build_rnn", "rnn"),
    "ngram_lstm": Builder("interp.models.ngram_layer:build_ngram_lstm", "rnn"),
    "hmm_rnn": Builder("interp.models.hmm_rnn:build_hmm_rnn", "rnn"),
    "vlm": Builder("interp.models.vlm:build_vlm", "vlm"),
}


def register_builder(
    name: str, build: Callable[[dict, Any], Any], kind: str = "transformer"
) -> None:
    """Teach ``load_model`` a new architecture: ``build(spec, tokenizer)`` makes it untrained."""
    if name in BUILDERS:
        raise ValueError(
            f"model builder {name!r} exists already ({BUILDERS[name].build}); pick another name"
        )
    BUILDERS[name] = Builder(build, kind)


def builder_for(name: str) -> tuple[Callable[[dict, Any], Any], str]:
    """``(build, kind)`` of builder ``name`` (KeyError listing the builders otherwise)."""
    if name not in BUILDERS:
        raise unknown_name_error("model builder", name, sorted(BUILDERS))
    build, kind = BUILDERS[name]
    if isinstance(build, str):
        module, fn = build.split(":")
        build = getattr(importlib.import_module(module), fn)
    return build, kind


def load_model_dir(path: Any, device: Any = None, model_id: str | None = None):
    """Load a directory written by :func:`interp.models.io.save_model` as an ``interp.Model``.

    Checked before and after the weights are read, each failure a ``ConfigError`` (a
    ``ValueError``) naming the file: the builder is known and its spec valid; the spec's
    parameters fit in memory and match the weight file's size (a spec that would allocate
    gigabytes is refused before anything is allocated); names and shapes match; every weight
    is finite."""
    from interp.tracing.model import Model

    path = Path(path)
    try:
        meta = read_json(path / MODEL_FILE)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    build, kind = _builder_of(meta, path / MODEL_FILE)
    tokenizer = None
    if (path / "tokenizer").is_dir():
        from transformers import PreTrainedTokenizerFast

        tokenizer = PreTrainedTokenizerFast.from_pretrained(str(path / "tokenizer"))
    weights = path / "model.safetensors"
    file_bytes = weights_problem(weights)
    if isinstance(file_bytes, str):
        raise ConfigError(file_bytes)
    _check_spec_size(build, meta["spec"], tokenizer, file_bytes, path / MODEL_FILE)
    module = _build(build, meta["spec"], tokenizer, path / MODEL_FILE)
    from safetensors.torch import load_file

    try:
        state = load_file(str(weights))
    except Exception as e:  # safetensors raises its own error types
        raise ConfigError(f"cannot read weights {weights}: {e}") from None
    try:
        load_canonical_state_dict(_native(module), state)
    except (ValueError, RuntimeError) as e:
        msg = str(e).replace("Error(s) in loading state_dict", "").strip(" :")
        raise ConfigError(
            f"{weights} does not fit the spec in {path / MODEL_FILE}: {msg[:600]}"
        ) from None
    bad = sorted(
        k for k, v in state.items() if v.is_floating_point() and not bool(v.isfinite().all())
    )
    if bad:
        names = ", ".join(bad[:5]) + (" ..." if len(bad) > 5 else "")
        raise ConfigError(
            f"{weights}: weights hold NaN or infinite values ({names}); the "
            "checkpoint is damaged (or diverged in training)"
        )
    module.eval()
    if device is not None:
        # TransformerLens prints "Moving model to device"
        with contextlib.redirect_stdout(stdio.StringIO()):
            module.to(device)
    saved_id = meta.get("model_id", "")
    zoo_id = isinstance(saved_id, str) and saved_id.startswith("zoo:")
    model_id = model_id or (saved_id if zoo_id else str(path))
    model = Model(
        module,
        backend="tl",
        tokenizer=tokenizer,
        model_id=model_id,
        kind=kind,
        spec={"builder": meta["builder"], "spec": meta["spec"]},
        example_input=_example_input(kind, meta["spec"]),
    )
    if (
        meta.get("train_log") is not None
    ):  # zoo models keep the loss (and eval) log of their training
        model.train_log = meta["train_log"]
    return model


def _builder_of(meta: Any, where: Path) -> tuple[Callable[[dict, Any], Any], str]:
    if not (
        isinstance(meta, dict)
        and isinstance(meta.get("builder"), str)
        and isinstance(meta.get("spec"), dict)
    ):
        raise ConfigError(
            f"{where} needs a 'builder' (one of {sorted(BUILDERS)}) and a 'spec' object"
        )
    try:
        return builder_for(meta["builder"])
    except KeyError as e:
        raise ConfigError(f"{where}: {e.args[0]}") from None


def _build(build: Callable[[dict, Any], Any], spec: dict, tokenizer: Any, where: Path) -> Any:
    try:
        return build(spec, tokenizer)
    except (ValidationError, TypeError, ValueError, KeyError) as e:
        first = str(e).splitlines()[0][:300]
        raise ConfigError(f"{where}: its spec cannot build a model ({first})") from None


def weights_problem(weights: Path) -> int | str:
    """The bytes of tensor data a safetensors file declares, or what is wrong with it (missing,
    truncated, not safetensors), read from its header alone (no tensor is loaded)."""
    try:
        size = weights.stat().st_size
        with open(weights, "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            if n > min(size, 100 * 2**20):
                raise ValueError
            header = json.loads(f.read(n))
    except FileNotFoundError:
        return f"cannot read weights {weights}: the file is missing"
    except (struct.error, ValueError, UnicodeDecodeError):
        return f"cannot read weights {weights}: not a safetensors file (damaged or truncated)"
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    if size < 8 + n + end:
        need = 8 + n + end
        return (
            f"cannot read weights {weights}: truncated, {size} bytes where its header needs {need}"
        )
    return end


def _check_spec_size(
    build: Callable[[dict, Any], Any], spec: dict, tokenizer: Any, file_bytes: int, where: Path
) -> None:
    """Build on the meta device (nothing allocated) and compare the parameters' bytes with the
    weight file's: a spec far bigger than its weights, or than memory, is refused here."""
    import torch

    try:
        with torch.device("meta"):
            module = build(spec, tokenizer)
    except Exception:  # noqa: BLE001 - a builder that cannot build on meta: the real build reports
        return
    need = sum(p.numel() * p.element_size() for p in module.parameters())  # shared weights once
    check_fits({"parameters": need}, f"The spec in {where} does not fit this machine.")
    if need > 2 * file_bytes + 2**20:
        raise ConfigError(
            f"{where}: its spec makes {need / 2**20:.1f} MiB of parameters, but the "
            f"weights file holds {file_bytes / 2**20:.1f} MiB; the spec does not "
            "describe these weights"
        )


def _example_input(kind: str, spec: dict):
    import torch

    if kind == "rnn" and spec.get("d_input"):
        return torch.zeros(1, 3, spec["d_input"])
    return torch.zeros(1, 4, dtype=torch.long)
