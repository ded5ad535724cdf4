"""The saved-model directory format: ``model.safetensors`` + ``interp_model.json`` + ``tokenizer/``.

``interp_model.json`` names the builder (a key of :data:`interp.models.builders.BUILDERS`)
and its spec, so a directory is self-describing. This module writes directories and holds
the state-dict helpers; :func:`interp.models.builders.load_model_dir` reads them. It imports
nothing of ``interp`` but :mod:`interp.utils`, so ``Model.save`` can use it without a cycle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from interp.utils import atomic_path, owned_dir_problem, read_json, write_json

# safetensors.torch (torch) is imported inside save_model: the zoo and the dashboard read
# MODEL_FILE from here without loading torch.

MODEL_FILE = "interp_model.json"
FORMAT = 1


def _native(module: Any) -> Any:
    """The module whose weights are saved: a bridge's native model, or the module itself."""
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
        raise ValueError(
            f"weights do not fit the model: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    module.load_state_dict(full)


def model_dir_problem(path: Path) -> str:
    """ "" when ``path`` is a saved-model directory holding only what :func:`save_model` writes,
    else why it must not be replaced (see :func:`interp.utils.atomic_path`)."""

    def marker(p: Path) -> bool:
        meta = read_json(p / MODEL_FILE)
        return isinstance(meta, dict) and "builder" in meta and "format" in meta

    def allowed(rel: str) -> bool:
        return rel in (MODEL_FILE, "model.safetensors") or rel.startswith("tokenizer/")

    return owned_dir_problem(path, "a saved model", allowed, marker)


def save_model(model: Any, path: Any, *, extra: dict | None = None) -> Path:
    """Write ``model`` (an :class:`interp.Model` built from a registered builder) atomically.

    An existing ``path`` is replaced only if it is a saved-model directory holding nothing but
    what this writes; any other directory is left alone (``FileExistsError`` names it)."""
    from safetensors.torch import save_file

    path = Path(path)
    builder = model.spec.get("builder")
    if builder is None:
        raise ValueError(
            f"{model.model_id} was not built from a registered builder; save its module yourself"
        )
    state = {
        k: v.detach().cpu().contiguous()
        for k, v in canonical_state_dict(_native(model.module)).items()
    }
    with atomic_path(path, owned=model_dir_problem) as tmp:
        tmp.mkdir()
        save_file(state, str(tmp / "model.safetensors"))
        meta = {
            "format": FORMAT,
            "builder": builder,
            "spec": model.spec["spec"],
            "model_id": model.model_id,
            **(extra or {}),
        }
        write_json(tmp / MODEL_FILE, meta)
        if model.tokenizer is not None:
            model.tokenizer.save_pretrained(str(tmp / "tokenizer"))
    return path
