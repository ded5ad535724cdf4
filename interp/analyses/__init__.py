"""The analyses, registered by name. The registry is the one place an analysis is added:
the CLI, the dashboard menu, the demo and the tests all read it.

Each module in this package defines a pydantic ``Config`` (with a ``seed`` field and a
``model`` field naming a zoo model, a directory or ``hf:<name>``) and a ``run(config) ->
Result`` function registered with :func:`register`::

    @register("model_report", Config, title="Model report")
    def run(config: Config) -> Result: ...

    interp.analyses.names()                   # registered analyses
    interp.analyses.get("model_report").run({"model": "zoo:code-lm-tiny"})
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from interp.utils import unknown_name_error


@dataclass(frozen=True)
class Analysis:
    """A registered analysis: its config class, run function and description."""

    name: str
    Config: type[BaseModel]
    fn: Callable[[Any], Any]
    title: str
    description: str
    paper: str = ""
    figure_order: tuple[str, ...] = field(default_factory=tuple)

    def config(self, values: Any = None) -> BaseModel:
        """Validate ``values`` (a Config, a dict or None for defaults) into a Config."""
        if isinstance(values, self.Config):
            return values
        return self.Config(**dict(values or {}))

    def run(self, config: Any = None):
        """Run the analysis; returns a :class:`interp.Result` with the config attached."""
        cfg = self.config(config)
        result = self.fn(cfg)
        result.analysis = self.name
        result.config = cfg.model_dump(mode="json")
        return result


_REGISTRY: dict[str, Analysis] = {}
_LOADED = False


def register(
    name: str,
    Config: type[BaseModel],
    *,
    title: str | None = None,
    paper: str = "",
    figure_order: tuple[str, ...] = (),
):
    """Decorator: register ``run(config) -> Result`` as analysis ``name``."""
    if "seed" not in Config.model_fields:
        raise TypeError(
            f"analysis {name!r}: its Config must have a 'seed' field (every run is seeded)"
        )

    def deco(fn: Callable[[Any], Any]):
        if not str(fn.__module__).startswith(__name__ + "."):
            # user code: compare with every built-in analysis, not only those imported so far
            _discover()
        if name in _REGISTRY:
            raise ValueError(
                f"analysis {name!r} is registered twice ({_REGISTRY[name].fn.__module__} and "
                f"{fn.__module__})"
            )
        doc = (fn.__doc__ or Config.__doc__ or "").strip().split("\n")[0]
        _REGISTRY[name] = Analysis(name, Config, fn, title or name, doc, paper, tuple(figure_order))
        return fn

    return deco


def _discover() -> None:
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


def names() -> list[str]:
    """Names of the registered analyses."""
    _discover()
    return sorted(_REGISTRY)


def get(name: str) -> Analysis:
    """The registered analysis ``name`` (KeyError listing close names otherwise)."""
    _discover()
    if name not in _REGISTRY:
        raise unknown_name_error("analysis", name, sorted(_REGISTRY))
    return _REGISTRY[name]


__all__ = ["Analysis", "register", "names", "get"]
