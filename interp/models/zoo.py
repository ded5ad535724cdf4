"""The model zoo: named, seeded recipes that train once and then load from the cache.

A recipe is a pydantic config plus a ``build(config) -> Model`` function, registered with
:func:`recipe`. Its identity is a hash of its config: change the recipe and it retrains.
A recipe also carries example prompts (inputs the model was trained to read: Python code
for a code LM, template sentences for a circuit LM, ...), kept outside the config so that
they never change the hash; the dashboard's explorer opens on the first one.
Recipes live in :mod:`interp.models.recipes`, one module per family, listed in its
``FAMILIES`` (imported explicitly, on first use of the registry).

Training seeds: ``<recipe>@<N>`` is the recipe trained with its config's ``seed`` set to N
(e.g. ``zoo:code-lm-tiny@7``), cached under its own key. ``@N`` equal to the recipe's own seed
is the recipe itself, and for a family registered per seed (``circuit-lm-s0``, ``-s1``, ...)
``circuit-lm-s0@1`` is ``circuit-lm-s1`` when their configs agree, so no model trains twice.

Cache layout: ``<cache>/zoo/<name>-<hash>/`` as written by :func:`interp.models.io.save_model`.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from interp.models import builders
from interp.models.io import MODEL_FILE, save_model
from interp.utils import (
    ConfigError,
    cache_dir,
    clean_stale_tmp,
    config_hash,
    file_lock,
    unknown_name_error,
)

RECIPE_VERSION = 1


@dataclass(frozen=True)
class Recipe:
    name: str
    config: BaseModel
    build: Callable[[BaseModel], Any]
    description: str
    prompts: tuple[
        str, ...
    ] = ()  # example inputs in the model's own language (not part of the key)

    @property
    def key(self) -> str:
        return config_hash(
            {"name": self.name, "config": self.config.model_dump(mode="json"), "v": RECIPE_VERSION}
        )

    @property
    def path(self) -> Path:
        return cache_dir() / "zoo" / f"{self.name}-{self.key}"


_RECIPES: dict[str, Recipe] = {}
_VARIANTS: dict[str, Recipe] = {}  # "<recipe>@<seed>" variants made on first use
_LOADED = False


def recipe(name: str, config: BaseModel, description: str = "", prompts: Sequence[str] = ()):
    """Register ``build(config) -> interp.Model`` as zoo recipe ``name``; ``prompts`` are example
    inputs the model reads well (the explorer's default prompt is the first)."""

    def deco(build: Callable[[BaseModel], Any]):
        if not str(build.__module__).startswith("interp.models.recipes."):
            _discover()  # user code: compare with every zoo recipe, not only those imported so far
        if name in _RECIPES:
            raise ValueError(
                f"zoo recipe {name!r} is registered twice "
                f"({_RECIPES[name].build.__module__} and {build.__module__})"
            )
        _RECIPES[name] = Recipe(
            name,
            config,
            build,
            description or (build.__doc__ or "").strip().split("\n")[0],
            tuple(prompts),
        )
        return build

    return deco


def _discover() -> None:
    global _LOADED
    if _LOADED:
        return
    # the recipe modules register themselves here (they import this module) and train with torch
    from interp.models.recipes import import_all

    import_all()
    _LOADED = True


def names() -> list[str]:
    _discover()
    return sorted(_RECIPES)


def get(name: str) -> Recipe:
    """The recipe ``name``, or ``<recipe>@<seed>``: that recipe with training seed ``seed``."""
    _discover()
    if "@" in name:
        return seed_variant(*_split_seed(name))
    if name not in _RECIPES:
        raise unknown_name_error("zoo recipe", name, sorted(_RECIPES))
    return _RECIPES[name]


def _split_seed(name: str) -> tuple[str, int]:
    base, _, seed = name.rpartition("@")
    if not seed.isdigit() or not base:
        raise ValueError(
            f"zoo model {name!r}: after '@' comes a training seed, a whole number >= 0 "
            f"(e.g. '{base or 'code-lm-tiny'}@1')"
        )
    return base, int(seed)


def default_seed(name: str) -> int:
    """The training seed recipe ``name`` (or ``<recipe>@<seed>``) uses."""
    return int(get(name).config.seed)  # type: ignore[attr-defined]


def seed_variant(base: str, seed: int) -> Recipe:
    """Recipe ``base`` with its config's ``seed`` set to ``seed``: the recipe itself when that is
    its own seed, a registered sibling ``<family>-s<seed>`` with the same config, else a new
    recipe ``<base>@<seed>`` (its own cache key)."""
    r = get(base)
    if "seed" not in type(r.config).model_fields:
        raise ValueError(
            f"zoo recipe {base!r} has no training seed, so {base}@{seed} means nothing"
        )
    if seed == r.config.seed:  # type: ignore[attr-defined]
        return r
    name = f"{base}@{seed}"
    config = reseeded(r.config, seed, name)
    family = re.match(r"^(.*)-s\d+$", base)
    sibling = _RECIPES.get(f"{family.group(1)}-s{seed}") if family else None
    # the sibling is this training seed if it differs only in name (and in init seeds its build
    # takes from ``seed`` anyway: reseeding it with its own seed must give this config)
    if sibling is not None and _same_but_name(reseeded(sibling.config, seed, name), config):
        return sibling
    if name not in _VARIANTS:
        _VARIANTS[name] = replace(
            r, name=name, config=config, description=f"{r.description} (training seed {seed})"
        )
    return _VARIANTS[name]


def reseeded(config: BaseModel, seed: int, name: str) -> BaseModel:
    """``config`` for training seed ``seed``: its ``seed`` (data order, sampling) and every
    nested ``init_seed`` (weight initialisation) set to ``seed``, its ``name`` to ``name``.
    Nested ``seed`` fields are data, not training (the facts, the languages) and stay."""

    def walk(c: BaseModel, top: bool) -> BaseModel:
        update: dict[str, Any] = {}
        for field in type(c).model_fields:
            value = getattr(c, field)
            if isinstance(value, BaseModel):
                update[field] = walk(value, False)
            elif field == "init_seed" or (top and field == "seed"):
                update[field] = seed
            elif top and field == "name" and isinstance(value, str):
                update[field] = name
        return c.model_copy(update=update)

    return walk(config, True)


def _same_but_name(a: BaseModel, b: BaseModel) -> bool:
    da, db = a.model_dump(mode="json"), b.model_dump(mode="json")
    da.pop("name", None)
    db.pop("name", None)
    return type(a) is type(b) and da == db


def unknown(name: str) -> str:
    """The message for an unknown recipe name (close matches first), or a bad ``@seed``."""
    _discover()
    try:
        get(name)
    except KeyError as e:
        return e.args[0]
    except ValueError as e:
        return str(e)
    return f"zoo recipe {name!r} exists"


def is_built(name: str) -> bool:
    """The recipe's cached model is there and whole (its weight file as long as its header says)."""
    return not damaged(name) and (get(name).path / "model.safetensors").exists()


def damaged(name: str) -> str:
    """Why the cached model of ``name`` cannot be loaded ("" when it is whole, or not built)."""
    path = get(name).path
    if not (path / MODEL_FILE).exists():
        return ""
    problem = builders.weights_problem(path / "model.safetensors")
    return problem if isinstance(problem, str) else ""


def load(name: str, *, device: Any = None, rebuild: bool = False):
    """Load recipe ``name`` from the cache, training it first if needed."""
    r = get(name)
    # one builder at a time per recipe: a second process waits here, then loads what the first
    # built
    lock = r.path.parent / ".locks" / f"{r.path.name}.lock"
    with file_lock(lock, what=f"building zoo model {name}"):
        clean_stale_tmp(r.path.parent)  # hidden .tmp leftovers of builds that crashed a day ago
        if rebuild and r.path.exists():
            shutil.rmtree(r.path)
        if not (r.path / MODEL_FILE).exists():
            model = r.build(r.config)
            model.model_id = f"zoo:{r.name}"
            save_model(
                model,
                r.path,
                extra={
                    "recipe": r.name,
                    "recipe_key": r.key,
                    "recipe_config": r.config.model_dump(mode="json"),
                    "train_log": getattr(model, "train_log", None),
                },
            )
    try:
        return builders.load_model_dir(r.path, device=device, model_id=f"zoo:{r.name}")
    except ValueError as e:  # a cached model damaged on disk (truncated copy, full disk, ...)
        raise ConfigError(
            f"the cached zoo model {name} cannot be loaded: {e}. Rebuild it: "
            f"interp zoo build {name} --rebuild (or zoo.load({name!r}, "
            "rebuild=True))"
        ) from None


def scratch_dir(name: str, config: BaseModel) -> Path:
    """A working directory per (recipe name, config): an interrupted build's checkpoint lives
    here."""
    key = config_hash({"name": name, "config": config.model_dump(mode="json"), "v": RECIPE_VERSION})
    path = cache_dir() / "zoo" / ".work" / f"{name}-{key}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def seeded_names(names: Sequence[str], run_seed: int) -> dict[str, str]:
    """The models a run with seed ``run_seed`` uses in place of ``names`` (``zoo:<recipe>`` each).

    Training seeds are ``b + run_seed * m``: ``b`` is a recipe's own seed and ``m`` the number
    of seeds the names already span (``max b + 1``). A run that names one model (``b = 0``)
    with seed 7 uses training seed 7; one that names ``circuit-lm-s0`` and ``-s1`` uses seeds
    {0, 1} at run seed 0, {2, 3} at 1, {4, 5} at 2, so runs of different seeds share no model.
    Names already pinned (``@N``), templates (``{...}``) and non-zoo names are left as they are.
    Returns ``{old: new}`` for the names that change."""
    zoo_names = [
        n for n in dict.fromkeys(names) if n.startswith("zoo:") and "@" not in n and "{" not in n
    ]
    if not zoo_names or run_seed == 0:
        return {}
    own = {n: default_seed(n[4:]) for n in zoo_names}
    span = max(own.values()) + 1
    out = {}
    for n in zoo_names:
        new = f"zoo:{seed_variant(n[4:], own[n] + run_seed * span).name}"
        if new != n:
            out[n] = new
    return out
