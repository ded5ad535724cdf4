"""The model zoo: named, seeded recipes that train once and then load from the cache.

A recipe is a pydantic config plus a ``build(config) -> Model`` function, registered with
:func:`recipe`. Its identity is a hash of its config: change the recipe and it retrains.
A recipe also carries example prompts (inputs the model was trained to read: Python code
for a code LM, template sentences for a circuit LM, ...), kept outside the config so that
they never change the hash; the dashboard's explorer opens on the first one.
Recipes live in :mod:`interp.models.recipes`, one module per family, listed in its
``FAMILIES`` (imported explicitly, on first use of the registry).

Cache layout: ``<cache>/zoo/<name>-<hash>/`` as written by :func:`interp.models.io.save_model`.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from pydantic import BaseModel

from interp.utils import cache_dir, clean_stale_tmp, config_hash, file_lock, unknown_name_error

RECIPE_VERSION = 1


@dataclass(frozen=True)
class Recipe:
    name: str
    config: BaseModel
    build: Callable[[BaseModel], Any]
    description: str
    prompts: tuple[str, ...] = ()  # example inputs in the model's own language (not part of the key)

    @property
    def key(self) -> str:
        return config_hash({"name": self.name, "config": self.config.model_dump(mode="json"), "v": RECIPE_VERSION})

    @property
    def path(self) -> Path:
        return cache_dir() / "zoo" / f"{self.name}-{self.key}"


_RECIPES: dict[str, Recipe] = {}
_LOADED = False


def recipe(name: str, config: BaseModel, description: str = "", prompts: Sequence[str] = ()):
    """Register ``build(config) -> interp.Model`` as zoo recipe ``name``; ``prompts`` are example
    inputs the model reads well (the explorer's default prompt is the first)."""

    def deco(build: Callable[[BaseModel], Any]):
        if not str(build.__module__).startswith("interp.models.recipes."):
            _discover()  # user code: compare with every zoo recipe, not only those imported so far
        if name in _RECIPES:
            raise ValueError(f"zoo recipe {name!r} is registered twice "
                             f"({_RECIPES[name].build.__module__} and {build.__module__})")
        _RECIPES[name] = Recipe(name, config, build, description or (build.__doc__ or "").strip().split("\n")[0],
                                tuple(prompts))
        return build

    return deco


def _discover() -> None:
    global _LOADED
    if _LOADED:
        return
    from interp.models.recipes import import_all

    import_all()
    _LOADED = True


def names() -> list[str]:
    _discover()
    return sorted(_RECIPES)


def get(name: str) -> Recipe:
    _discover()
    if name not in _RECIPES:
        raise unknown_name_error("zoo recipe", name, sorted(_RECIPES))
    return _RECIPES[name]


def unknown(name: str) -> str:
    """The message for an unknown recipe name (close matches first)."""
    _discover()
    return unknown_name_error("zoo recipe", name, sorted(_RECIPES)).args[0]


def is_built(name: str) -> bool:
    from interp.models.io import MODEL_FILE

    return (get(name).path / MODEL_FILE).exists()


def load(name: str, *, device: Any = None, rebuild: bool = False):
    """Load recipe ``name`` from the cache, training it first if needed."""
    from interp.models.builders import load_model_dir
    from interp.models.io import MODEL_FILE, save_model

    r = get(name)
    # one builder at a time per recipe: a second process waits here, then loads what the first built
    with file_lock(r.path.parent / ".locks" / f"{r.path.name}.lock"):
        clean_stale_tmp(r.path.parent)  # hidden .tmp leftovers of builds that crashed over a day ago
        if rebuild and r.path.exists():
            shutil.rmtree(r.path)
        if not (r.path / MODEL_FILE).exists():
            model = r.build(r.config)
            model.model_id = f"zoo:{name}"
            save_model(model, r.path, extra={"recipe": name, "recipe_key": r.key,
                                             "recipe_config": r.config.model_dump(mode="json"),
                                             "train_log": getattr(model, "train_log", None)})
    return load_model_dir(r.path, device=device, model_id=f"zoo:{name}")


def scratch_dir(name: str, config: BaseModel) -> Path:
    """A working directory per (recipe name, config): an interrupted build's checkpoint lives here."""
    key = config_hash({"name": name, "config": config.model_dump(mode="json"), "v": RECIPE_VERSION})
    path = cache_dir() / "zoo" / ".work" / f"{name}-{key}"
    path.mkdir(parents=True, exist_ok=True)
    return path
