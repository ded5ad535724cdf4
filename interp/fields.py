"""Typed config fields shared by every analysis: checked when the config is built, before
any model is loaded or trained, so a bad ``--set`` value fails at once with the field, the
value and what is valid.

    class Config(BaseModel):
        model: ModelName = "zoo:code-lm-tiny"
        n_prompts: Count = 32
        device: Device = "auto"
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import annotated_types as at
from pydantic import AfterValidator, BeforeValidator

from interp.data.corpus import EMPTY_CORPUS, ENGLISH, STDLIB, corpus_files

# Resource checks live in utils (models/ and tracing/ use them too); re-exported for analyses.
from interp.utils import ConfigError, check_disk, check_fits, memory_bytes, resolve_device  # noqa: F401

# The zoo and pretrained registries are imported inside the model-name validator: every
# analysis config imports this module, and most never name a zoo model.

MAX_COUNT = 10**9  # no count in any experiment comes near this; a bigger one is a typo


def check_model_name(name: str) -> str:
    """``zoo:<recipe>`` (a registered recipe, ``zoo:<recipe>@<seed>`` for another training
    seed), ``hf:<name>``, ``hf-llava:<name>``, ``pretrained:<name>`` (an installed real
    model), a ``.gguf`` file, or a directory holding ``interp_model.json``, ``config.json``
    or one ``.gguf`` file. Names with ``{...}`` are templates that
    an analysis fills in (e.g. ``zoo:reversal-{variant}-...``) and are checked once filled."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(
            "a model name is needed: 'zoo:<recipe>', 'hf:<name>', 'pretrained:<name>', a .gguf "
            "file or a directory"
        )
    if "{" in name:
        return name
    for prefix in ("hf:", "hf-llava:"):
        if name.startswith(prefix):
            if not name[len(prefix) :].strip():
                raise ValueError(f"{name!r}: no name after {prefix!r} (e.g. '{prefix}gpt2')")
            return name
    if name.startswith("zoo:"):
        from interp.models import zoo

        try:
            zoo.get(name[4:])  # a recipe, or <recipe>@<training seed>
        except (KeyError, ValueError):
            raise ValueError(zoo.unknown(name[4:])) from None
        return name
    if name.startswith("pretrained:"):
        from interp.models import pretrained

        try:
            pretrained.get(name[len("pretrained:") :])
        except KeyError as e:
            raise ValueError(e.args[0]) from None
        return name
    try:
        path = Path(name).expanduser()
    except RuntimeError:  # "~user" of a user that does not exist
        raise ValueError(f"{name!r}: no such user's home directory") from None
    if path.is_file() and path.suffix.lower() == ".gguf":
        return name
    if not path.is_dir():
        raise ValueError(
            f"{name!r} is not 'zoo:<recipe>', 'hf:<name>', 'pretrained:<name>', a .gguf file or "
            "an existing directory"
        )
    if not (
        (path / "interp_model.json").exists()
        or (path / "config.json").exists()
        or any(p.suffix.lower() == ".gguf" for p in path.iterdir())
    ):
        raise ValueError(
            f"{name!r} holds neither interp_model.json (interp), config.json (save_pretrained) "
            "nor a .gguf file"
        )
    return name


def check_seq_len(m, seq_len: int, field: str = "seq_len") -> int:
    """``seq_len`` if the model ``m`` can read that many positions, else :class:`ConfigError`."""
    n_ctx = getattr(getattr(m, "cfg", None), "n_ctx", None)
    if n_ctx is not None and seq_len > n_ctx:
        raise ConfigError(
            f"{field}={seq_len} is longer than the context of {m.model_id} "
            f"(n_ctx={n_ctx}); valid: 2..{n_ctx}"
        )
    return seq_len


def check_layer(m, layer: int, field: str = "layer") -> int:
    """``layer`` if model ``m`` has that block (negative: from the end), else ConfigError."""
    L = m.n_layers
    if not -L <= layer < L:
        raise ConfigError(
            f"{field}={layer}: {m.model_id} has {L} layers; "
            f"valid: 0..{L - 1} (or -{L}..-1 from the end)"
        )
    return layer


_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def check_device(device: str) -> str:
    if not _DEVICE.match(str(device)):
        raise ValueError(
            f"unknown device {device!r}; valid: 'auto', 'cpu', 'cuda', 'cuda:<index>', 'mps'"
        )
    return device


def check_devices_present(cfg: object) -> None:
    """:class:`ConfigError` when a ``device`` field of ``cfg`` names a device this machine lacks
    (``cuda`` on a CPU-only torch, ``cuda:3`` on a one-GPU machine). Run before any work; kept
    out of the field validator so that a preset written for a GPU still validates anywhere."""
    device = getattr(cfg, "device", None)
    if isinstance(device, str):
        try:
            resolve_device(device)
        except ValueError as e:
            raise ConfigError(str(e)) from None


MIN_CORPUS_CHARS = 2000  # a corpus is split by file into train and held-out text; less is no corpus


def check_corpus(source: str) -> str:
    """``"stdlib"``, a text file, or a folder of ``.py/.txt/.md/.rst`` files holding at least
    :data:`MIN_CORPUS_CHARS` characters; checked before any model is loaded or trained."""
    if not isinstance(source, str) or not source.strip():
        raise ValueError(EMPTY_CORPUS)
    if source in (STDLIB, ENGLISH):
        return source
    try:
        files = corpus_files(source)
    except FileNotFoundError as e:  # pydantic reports ValueErrors only
        raise ValueError(str(e)) from None
    size = 0
    for f in files:
        try:
            size += f.stat().st_size
        except OSError:
            continue
        if size >= MIN_CORPUS_CHARS:
            return source
    raise ValueError(
        f"corpus {source!r} holds {size} bytes of text; at least {MIN_CORPUS_CHARS} "
        "are needed (it is split into train and held-out files)"
    )


def _no_bool(value: object) -> object:
    """``True`` is not a number here: ``--set n_prompts=true`` must fail, not become 1."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got the boolean {value!r}")
    return value


ModelName = Annotated[str, AfterValidator(check_model_name)]
Device = Annotated[str, AfterValidator(check_device)]
CorpusSource = Annotated[str, AfterValidator(check_corpus)]
# Bounds as annotated-types constraints, so they hold for a field and for the items of a list.
# NaN fails every bound, and so does infinity. A boolean is refused before int/float coercion.
_NB = BeforeValidator(_no_bool)
Count = Annotated[int, _NB, at.Ge(1), at.Le(MAX_COUNT)]  # how many of something: at least one
NonNegInt = Annotated[int, _NB, at.Ge(0), at.Le(MAX_COUNT)]  # zero allowed (e.g. optional extras)
Seed = Annotated[int, _NB, at.Ge(0), at.Le(2**32 - 1)]  # numpy takes seeds in [0, 2^32)
Fraction = Annotated[float, _NB, at.Ge(0.0), at.Le(1.0)]
PositiveFloat = Annotated[float, _NB, at.Gt(0.0), at.Le(1e6)]
NonNegFloat = Annotated[float, _NB, at.Ge(0.0), at.Le(1e6)]
