"""Save and load models: ``model.safetensors`` + ``interp_model.json`` + ``tokenizer/``.

``interp_model.json`` names the builder (``transformer``, ``rnn`` or one a module registers
with :func:`register_builder`) and its spec, so a directory is self-describing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from interp.utils import atomic_path, read_json, unknown_name_error

MODEL_FILE = "interp_model.json"
FORMAT = 1

# builder name -> (spec dict -> nn.Module or bridge, how to reach the weights, kind)
_BUILDERS: dict[str, tuple[Callable[[dict, Any], Any], Callable[[Any], Any], str]] = {}


def register_builder(name: str, build: Callable[[dict, Any], Any], weights: Callable[[Any], Any] = lambda m: m,
                     kind: str = "transformer") -> None:
    """Teach ``load_model`` a new architecture: ``build(spec, tokenizer)`` makes it untrained;
    ``weights(module)`` is the ``nn.Module`` whose state dict is saved."""
    _BUILDERS[name] = (build, weights, kind)


def _build_transformer(spec: dict, tokenizer: Any):
    from interp.models.transformer import TransformerSpec, build_transformer

    return build_transformer(TransformerSpec(**spec), tokenizer=tokenizer)


def _build_rnn(spec: dict, tokenizer: Any):
    from interp.models.rnn import HookedRNN, RNNSpec

    return HookedRNN(RNNSpec(**spec))


def _native(module: Any) -> Any:
    return getattr(module, "original_model", module)


def _plain(key: str) -> str:
    return key.replace("._original_component", "").replace("_original_component.", "")


def _alias_groups(module: Any) -> list[list[str]]:
    """State-dict keys grouped by the tensor they share (a bridge aliases each weight)."""
    groups: dict[tuple, list[str]] = {}
    for key, value in module.state_dict(keep_vars=True).items():
        groups.setdefault((value.data_ptr(), tuple(value.shape)), []).append(key)
    return list(groups.values())


def canonical_state_dict(module: Any) -> dict:
    """State dict with each tensor saved once, under its shortest plain native name.

    A bridge re-parents the native model's submodules, so one weight appears under several
    keys (``layers.0.attn.q._original_component.weight``, ``layers.0.mlp.in.weight`` and
    ``layers.0.mlp.fc_in.weight`` ...); safetensors refuses shared tensors."""
    state = module.state_dict()
    out = {}
    for keys in _alias_groups(module):
        name = min((_plain(k) for k in keys), key=lambda k: (len(k), k))
        out[name] = state[keys[0]]
    return out


def load_canonical_state_dict(module: Any, state: dict) -> None:
    """Inverse of :func:`canonical_state_dict`: fill every aliased key from its saved name."""
    full, missing = {}, []
    used = set()
    for keys in _alias_groups(module):
        name = min((_plain(k) for k in keys), key=lambda k: (len(k), k))
        if name not in state:
            missing.append(name)
            continue
        used.add(name)
        for k in keys:
            full[k] = state[name]
    unexpected = sorted(set(state) - used)
    if missing or unexpected:
        raise ValueError(f"weights do not fit the model: missing {missing[:5]}, unexpected {unexpected[:5]}")
    module.load_state_dict(full)


register_builder("transformer", _build_transformer, _native, kind="transformer")
register_builder("rnn", _build_rnn, kind="rnn")


def builder_for(name: str):
    if name not in _BUILDERS:
        from interp.models import zoo

        zoo.names()  # imports the recipe modules, which register their builders
    if name not in _BUILDERS:
        raise unknown_name_error("model builder", name, _BUILDERS)
    return _BUILDERS[name]


def save_model(model: Any, path: Any, *, extra: dict | None = None) -> Path:
    """Write ``model`` (an :class:`interp.Model` built from a registered builder) atomically."""
    from safetensors.torch import save_file

    path = Path(path)
    builder = model.spec.get("builder")
    if builder is None:
        raise ValueError(f"{model.model_id} was not built from a registered builder; save its module yourself")
    _, weights, _ = builder_for(builder)
    state = {k: v.detach().cpu().contiguous() for k, v in canonical_state_dict(weights(model.module)).items()}
    with atomic_path(path) as tmp:
        tmp.mkdir()
        save_file(state, str(tmp / "model.safetensors"))
        meta = {"format": FORMAT, "builder": builder, "spec": model.spec["spec"], "model_id": model.model_id,
                **(extra or {})}
        from interp.utils import write_json

        write_json(tmp / MODEL_FILE, meta)
        if model.tokenizer is not None:
            model.tokenizer.save_pretrained(str(tmp / "tokenizer"))
    return path


def load_model_dir(path: Any, device: Any = None, model_id: str | None = None):
    """Load a directory written by :func:`save_model`."""
    from safetensors.torch import load_file

    from interp.tracing.model import Model

    path = Path(path)
    meta = read_json(path / MODEL_FILE)
    build, weights, kind = builder_for(meta["builder"])
    tokenizer = None
    if (path / "tokenizer").is_dir():
        from transformers import PreTrainedTokenizerFast

        tokenizer = PreTrainedTokenizerFast.from_pretrained(str(path / "tokenizer"))
    module = build(meta["spec"], tokenizer)
    try:
        state = load_file(str(path / "model.safetensors"))
    except Exception as e:  # safetensors raises its own error types
        raise ValueError(f"cannot read weights {path / 'model.safetensors'}: {e}") from None
    load_canonical_state_dict(weights(module), state)
    module.eval()
    if device is not None:
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):  # TransformerLens prints "Moving model to device"
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
