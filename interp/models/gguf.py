"""GGUF checkpoints (what llama.cpp and ollama users have), converted once to safetensors.

``load_model("path/to/model.gguf")`` (or a directory holding exactly one ``.gguf`` file)
calls :func:`convert`: transformers' own GGUF loader dequantises the file, the model is
rebuilt from its config without the ``quantization_config`` (the GGUF-loaded model refuses
``save_pretrained``), and the result is saved as an ordinary Hugging Face directory under
``<cache>/gguf/<stem>-<sha256[:16]>/``. The directory is keyed by the file's content, written
atomically (a crash leaves no half directory that a later load would take) and under a lock
(two processes converting the same file wait for each other). A second load costs what a
safetensors load costs, plus hashing the file.

:func:`inspect` reads the header alone: architecture, quantisation types, tensor count. It
names a damaged or truncated file, and an architecture or quantisation transformers cannot
read, before any conversion starts.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from interp.utils import atomic_path, cache_dir, file_lock, read_json, write_json

# The gguf package, transformers and torch are imported inside the functions that read or convert
# a GGUF file: the pretrained-model listing (the dashboard's menu) asks this module whether a
# model is converted without loading them.

INFO_FILE = (
    "interp_gguf.json"  # written last into a converted directory: its presence marks it complete
)
_FORMAT = 1


@dataclass(frozen=True)
class GGUFInfo:
    """What a GGUF file's header says."""

    path: str
    architecture: str
    quantization: list[str]  # the tensor types present, most common first (e.g. ["Q4_1", "F32"])
    n_tensors: int
    size_bytes: int
    name: str = ""  # general.name, when the file has one
    metadata: dict[str, Any] = field(default_factory=dict)  # a few scalar header fields

    @property
    def main_quantization(self) -> str:
        return self.quantization[0] if self.quantization else "unknown"


def find_gguf(path: str | Path) -> Path | None:
    """The GGUF file ``path`` names: the file itself, or the one ``.gguf`` file in a directory
    (None when ``path`` is neither). A directory with several is an error listing them."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() == ".gguf":
        return path
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".gguf" and p.is_file())
        if len(files) > 1:
            raise ValueError(
                f"{path} holds {len(files)} GGUF files ({', '.join(f.name for f in files)}): "
                f"pass the one to load, e.g. load_model('{files[0]}')"
            )
        return files[0] if files else None
    return None


def supported_architectures() -> list[str]:
    """Architectures transformers' GGUF loader can read (its own table)."""
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    return sorted(a for a in GGUF_SUPPORTED_ARCHITECTURES if a not in ("general", "tokenizer"))


def supported_quantizations() -> list[str]:
    """Tensor types the ``gguf`` package can dequantise."""
    from gguf import GGMLQuantizationType
    from gguf.quants import _type_traits  # the dequantisers the package implements

    return sorted(
        {t.name for t in GGMLQuantizationType if t in _type_traits} | {"F32", "F16", "BF16", "F64"}
    )


def inspect(path: str | Path) -> GGUFInfo:
    """Read a GGUF file's header and tensor table; a damaged or truncated file is a
    ``ValueError`` that names it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no GGUF file {path}")
    reader = _reader(path)

    def scalar(key: str) -> Any:
        f = reader.fields.get(key)
        if f is None or not f.data:
            return None
        try:
            return f.contents()
        except Exception:  # noqa: BLE001 - an odd field type is just not reported
            return None

    arch = scalar("general.architecture")
    if not isinstance(arch, str) or not arch:
        raise ValueError(
            f"{path} is not a usable GGUF model: its header has no general.architecture"
        )
    types = Counter(t.tensor_type.name for t in reader.tensors)
    keys = (
        "general.name",
        f"{arch}.block_count",
        f"{arch}.embedding_length",
        f"{arch}.attention.head_count",
        f"{arch}.attention.head_count_kv",
        f"{arch}.context_length",
        "general.file_type",
    )
    meta = {k: v for k in keys if isinstance(v := scalar(k), (int, float, str))}
    return GGUFInfo(
        path=str(path),
        architecture=arch,
        quantization=[t for t, _ in types.most_common()],
        n_tensors=len(reader.tensors),
        size_bytes=path.stat().st_size,
        name=str(meta.get("general.name", "")),
        metadata=meta,
    )


def _reader(path: Path):
    """A ``gguf.GGUFReader`` on ``path``; a damaged or truncated file becomes a clear error."""
    from gguf import GGUFReader

    try:
        reader = GGUFReader(str(path))
    except Exception as e:  # noqa: BLE001 - the gguf package raises ValueError, struct errors, IndexError...
        raise ValueError(
            f"{path} is not a readable GGUF file (damaged or truncated?): {type(e).__name__}: {e}"
        ) from None
    size = path.stat().st_size
    for t in (
        reader.tensors
    ):  # a truncated file can still parse its header: check every tensor lies inside it
        if int(t.data_offset) + int(t.n_bytes) > size:
            raise ValueError(
                f"{path} is truncated: tensor {t.name} ends at byte "
                f"{int(t.data_offset) + int(t.n_bytes):,} but the file has {size:,} bytes"
            )
    return reader


def check_supported(info: GGUFInfo) -> None:
    """Refuse, naming both, an architecture or a quantisation type transformers cannot read."""
    archs = supported_architectures()
    if info.architecture not in archs:
        raise ValueError(
            f"{info.path}: architecture {info.architecture!r} (quantisation "
            f"{info.main_quantization}) is not one transformers' GGUF loader reads. "
            f"Supported architectures: {', '.join(archs)}"
        )
    quants = set(supported_quantizations())
    bad = [q for q in info.quantization if q not in quants]
    if bad:
        raise ValueError(
            f"{info.path}: quantisation {', '.join(bad)} (architecture {info.architecture}) "
            f"cannot be dequantised by the gguf package. Supported: {', '.join(sorted(quants))}"
        )


def file_hash(path: str | Path, chunk: int = 1 << 22) -> str:
    """sha256 of a file's content."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def converted_dir(path: str | Path, digest: str | None = None) -> Path:
    """Where the conversion of ``path`` lives (whether or not it exists yet)."""
    path = Path(path)
    digest = digest or file_hash(path)
    return cache_dir() / "gguf" / f"{path.stem}-{digest[:16]}"


def is_converted(path: str | Path) -> bool:
    out = converted_dir(path)
    return (out / INFO_FILE).is_file()


def convert(path: str | Path, *, rebuild: bool = False) -> Path:
    """Convert a GGUF file once into a cached Hugging Face directory and return its path."""
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise FileNotFoundError(f"no GGUF file {path}")
    digest = file_hash(path)
    out = converted_dir(path, digest)
    if (
        out / INFO_FILE
    ).is_file() and not rebuild:  # keyed by content: a changed file converts anew
        return out
    info = inspect(path)
    check_supported(info)
    with file_lock(out.parent / ".locks" / f"{out.name}.lock"):
        if (
            out / INFO_FILE
        ).is_file() and not rebuild:  # another process converted it while we waited
            return out
        with atomic_path(out) as tmp:
            _write_converted(path, tmp)
            write_json(
                tmp / INFO_FILE,
                {
                    "format": _FORMAT,
                    "source": str(path),
                    "sha256": digest,
                    **{k: v for k, v in asdict(info).items() if k != "path"},
                },
            )
    return out


def _write_converted(path: Path, out: Path) -> None:
    """Dequantise ``path`` with transformers' GGUF loader and save a plain model and tokenizer."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    d, name = str(path.parent), path.name
    try:
        quantised = AutoModelForCausalLM.from_pretrained(d, gguf_file=name, trust_remote_code=False)
        tokenizer = AutoTokenizer.from_pretrained(d, gguf_file=name, trust_remote_code=False)
    except Exception as e:  # noqa: BLE001 - transformers raises many types; name the file
        raise ValueError(f"transformers could not read {path}: {type(e).__name__}: {e}") from None
    config = quantised.config
    if hasattr(config, "quantization_config"):
        del (
            config.quantization_config
        )  # a plain float model: save_pretrained refuses a GGUF-quantised one
    config = AutoConfig.for_model(**config.to_dict())
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(quantised.state_dict(), strict=False)
    missing = [k for k in missing if not (config.tie_word_embeddings and k == "lm_head.weight")]
    if missing or unexpected:
        raise ValueError(
            f"converting {path}: the rebuilt model's weights do not match the GGUF file's "
            f"(missing {missing[:5]}, unexpected {unexpected[:5]})"
        )
    plain.eval()
    out.mkdir(parents=True, exist_ok=True)
    plain.save_pretrained(out)
    tokenizer.save_pretrained(out)


def converted_info(directory: str | Path) -> dict[str, Any] | None:
    """The conversion record of a converted directory (None for any other directory)."""
    p = Path(directory) / INFO_FILE
    return read_json(p) if p.is_file() else None
