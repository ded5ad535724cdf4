"""interp: a mechanistic-interpretability workbench.

Public API (see README.md and docs/architecture.md)::

    import interp
    m = interp.load_model("zoo:code-lm-tiny")
    out, acts = interp.trace(m, "def f(x):", capture=["blocks.0.hook_resid_post"])
    store = interp.collect(m, dataset, hooks=["blocks.0.hook_resid_post"])
    g = interp.generate(m, ["def f(x):"], max_new_tokens=16, edits={...})
    result = interp.analyses.get("model_report").run(config)

Heavy dependencies (torch, transformer-lens, nnsight) are imported lazily, so that
``interp --help`` and ``import interp`` stay fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> module that defines it. The one place the public API is declared.
_PUBLIC = {
    "load_model": "interp.models.load",
    "wrap": "interp.tracing.model",
    "Model": "interp.tracing.model",
    "trace": "interp.tracing.trace",
    "collect": "interp.tracing.collect",
    "generate": "interp.tracing.generate",
    "ActivationStore": "interp.tracing.store",
    "Result": "interp.results",
    "Criterion": "interp.results",
}
_SUBMODULES = {
    "analyses",
    "models",
    "tracing",
    "data",
    "methods",
    "sae",
    "plotting",
    "runs",
    "utils",
}

__all__ = sorted([*_PUBLIC, *_SUBMODULES, "__version__"])

# For type checkers and IDEs only; `name as name` marks each one as a re-export.
if TYPE_CHECKING:  # pragma: no cover
    from interp import analyses as analyses
    from interp import data as data
    from interp import methods as methods
    from interp import models as models
    from interp import plotting as plotting
    from interp import runs as runs
    from interp import sae as sae
    from interp import tracing as tracing
    from interp import utils as utils
    from interp.models.load import load_model as load_model
    from interp.results import Criterion as Criterion
    from interp.results import Result as Result
    from interp.tracing.collect import collect as collect
    from interp.tracing.generate import generate as generate
    from interp.tracing.model import Model as Model
    from interp.tracing.model import wrap as wrap
    from interp.tracing.store import ActivationStore as ActivationStore
    from interp.tracing.trace import trace as trace


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"interp.{name}")
    else:
        raise AttributeError(f"module 'interp' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
