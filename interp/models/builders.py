"""The builder table, and loading a saved model directory.

A saved directory (:mod:`interp.models.io`) names its builder; :data:`BUILDERS` maps that
name to the function that makes the untrained module from ``(spec dict, tokenizer)`` and to
the model's kind. The table is plain data, read in one place: nothing has to be imported
first for a directory to load. A new architecture is one more row (or a call of
:func:`register_builder` from user code, which refuses a name that is taken).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Callable, NamedTuple, Union

from interp.models.io import MODEL_FILE, _native, load_canonical_state_dict
from interp.utils import read_json, unknown_name_error


class Builder(NamedTuple):
    build: Union[str, Callable[[dict, Any], Any]]  # "module:function" or the function itself
    kind: str  # "transformer", "rnn" or "vlm": how tracing treats the model


BUILDERS: dict[str, Builder] = {
    "transformer": Builder("interp.models.transformer:build_transformer", "transformer"),
    "rnn": Builder("interp.models.rnn:build_rnn", "rnn"),
    "ngram_lstm": Builder("interp.models.ngram_layer:build_ngram_lstm", "rnn"),
    "hmm_rnn": Builder("interp.models.hmm_rnn:build_hmm_rnn", "rnn"),
    "vlm": Builder("interp.models.vlm:build_vlm", "vlm"),
}


def register_builder(name: str, build: Callable[[dict, Any], Any], kind: str = "transformer") -> None:
    """Teach ``load_model`` a new architecture: ``build(spec, tokenizer)`` makes it untrained."""
    if name in BUILDERS:
        raise ValueError(f"model builder {name!r} exists already ({BUILDERS[name].build}); pick another name")
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
    """Load a directory written by :func:`interp.models.io.save_model` as an ``interp.Model``."""
    from safetensors.torch import load_file

    from interp.tracing.model import Model

    path = Path(path)
    meta = read_json(path / MODEL_FILE)
    build, kind = builder_for(meta["builder"])
    tokenizer = None
    if (path / "tokenizer").is_dir():
        from transformers import PreTrainedTokenizerFast

        tokenizer = PreTrainedTokenizerFast.from_pretrained(str(path / "tokenizer"))
    module = build(meta["spec"], tokenizer)
    try:
        state = load_file(str(path / "model.safetensors"))
    except Exception as e:  # safetensors raises its own error types
        raise ValueError(f"cannot read weights {path / 'model.safetensors'}: {e}") from None
    load_canonical_state_dict(_native(module), state)
    module.eval()
    if device is not None:
        import contextlib
        import io as stdio

        with contextlib.redirect_stdout(stdio.StringIO()):  # TransformerLens prints "Moving model to device"
            module.to(device)
    saved_id = meta.get("model_id", "")
    model_id = model_id or (saved_id if saved_id.startswith("zoo:") else str(path))
    model = Model(module, backend="tl", tokenizer=tokenizer, model_id=model_id,
                  kind=kind, spec={"builder": meta["builder"], "spec": meta["spec"]},
                  example_input=_example_input(kind, meta["spec"]))
    if meta.get("train_log") is not None:  # zoo models keep the loss (and eval) log of their training
        model.train_log = meta["train_log"]
    return model


def _example_input(kind: str, spec: dict):
    import torch

    if kind == "rnn" and spec.get("d_input"):
        return torch.zeros(1, 3, spec["d_input"])
    return torch.zeros(1, 4, dtype=torch.long)
