"""SAELens's file layout for our SAEs, both ways: a folder with ``cfg.json`` +
``sae_weights.safetensors``.

    SAE.save(path); SAE.load(path)    # which call write_saelens / read_saelens here

What SAELens (``sae_lens.saes``, format 6) writes, and what it means:

- ``cfg.json``: ``architecture`` (``"standard"``, ``"topk"``, ``"jumprelu"``: our kinds relu,
  topk, jumprelu, via :data:`interp.sae.model.KINDS`), ``d_in``, ``d_sae``, ``dtype``, ``device``,
  ``apply_b_dec_to_input`` (subtract ``b_dec`` before the encoder), ``normalize_activations``
  and ``reshape_activations`` (we read only ``"none"``: the others rescale or reshape inputs at
  run time), top-k's ``k`` and ``rescale_acts_by_decoder_norm`` (we read only ``false``), and
  ``metadata`` (free-form provenance: ``sae_lens_version``, ``hook_name``, ...). We keep our
  training settings (kind, ``input_scale``, ``bandwidth``, ...) under ``metadata.interp``,
  which SAELens carries along and otherwise ignores.
- ``sae_weights.safetensors``: ``W_enc [d_in, d_sae]``, ``W_dec [d_sae, d_in]``, ``b_enc [d_sae]``,
  ``b_dec [d_in]``, and JumpReLU's ``threshold [d_sae]``.
- encode: ``act((x - b_dec) @ W_enc + b_enc)``; decode: ``f @ W_dec + b_dec``. Standard's act is
  ReLU; TopK keeps the k largest pre-activations, then ReLU; JumpReLU is
  ``relu(pre) * [pre > threshold]``. Ours are the same (see the kinds in ``model.py``).

Two conversions. Our ``input_scale`` is folded into the weights (:meth:`SAE.folded`, which our
encode/decode use too), so what we write computes bit for bit what we computed, in SAELens and
back in here. Our JumpReLU trains ``log_threshold``; we write ``threshold = exp(log_threshold)``
and read back the float ``log_threshold`` whose ``exp`` is nearest the threshold
(:func:`log_of_threshold`): exactly it for every file we wrote, and for most of SAELens's;
float32 ``exp`` skips some float32 values, and there we are a few ulps off (a code changes
only where a pre-activation lies within those few ulps of its threshold).

Older layouts read too: SAELens's before 6.0 (top-level ``hook_name``, ``activation_fn_str``,
top-k's ``activation_fn_kwargs.k``) and this project's own before it wrote SAELens's (a
``kind`` field, ``log_threshold`` on disk).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Float

if TYPE_CHECKING:  # model.py imports this module: only the annotations name SAE
    from interp.sae.model import SAE

# model.py's SAE.save / SAE.load call in here, so this module imports nothing from it: it is
# handed the SAE ("SAE" below is interp.sae.model.SAE) and the kind registry KINDS.

WEIGHTS_FILE = "sae_weights.safetensors"
CFG_FILE = "cfg.json"
# SAELens reads a cfg.json without metadata.sae_lens_version as its pre-6.0 layout.
FORMAT_VERSION = "6.0.0"
DTYPES = ("float32", "float64")  # SAEConfig.dtype

# Keys of SAELens's format-6 cfg.json (SAEConfig.to_dict and TopKSAEConfig), handled one by one
# below.
_MATH_KEYS = {
    "architecture",
    "d_in",
    "d_sae",
    "dtype",
    "device",
    "apply_b_dec_to_input",
    "normalize_activations",
    "reshape_activations",
    "metadata",
    "k",
    "rescale_acts_by_decoder_norm",
}
# Keys that do not change encode/decode: pre-6.0 provenance (SAELens's LLM_METADATA_KEYS and
# the runner's), and training-only settings a training config writes beside the SAE's.
_HARMLESS_KEYS = {
    "model_name",
    "hook_name",
    "hook_point",
    "hook_layer",
    "hook_head_index",
    "hook_point_head_index",
    "model_class_name",
    "model_from_pretrained_kwargs",
    "prepend_bos",
    "exclude_special_tokens",
    "neuronpedia_id",
    "context_size",
    "seqpos_slice",
    "dataset_path",
    "dataset_trust_remote_code",
    "sae_lens_version",
    "sae_lens_training_version",
    "hook_name_out",
    "hook_head_index_out",
    "decoder_init_norm",
    "l1_coefficient",
    "lp_norm",
    "l1_warm_up_steps",
    "jumprelu_init_threshold",
    "jumprelu_bandwidth",
    "jumprelu_sparsity_loss_mode",
    "l0_coefficient",
    "l0_warm_up_steps",
    "pre_act_loss_coefficient",
    "jumprelu_tanh_scale",
    "jumprelu_ste_to_input",
    "use_sparse_activations",
    "aux_loss_coefficient",
}
# Pre-6.0 keys read into the format-6 ones.
_OLD_KEYS = {
    "activation_fn_str",
    "activation_fn",
    "activation_fn_kwargs",
    "finetuning_scaling_factor",
}
# What our save wrote beside SAEConfig's fields before it wrote SAELens's layout.
_OLD_INTERP_EXTRAS = {
    "architecture",
    "normalize_activations",
    "activation_fn_str",
    "activation_fn_kwargs",
}
# Our training settings kept in metadata.interp (the rest of SAEConfig is in SAELens's own fields).
_INTERP_FIELDS = ("kind", "input_scale", "k", "threshold_init", "bandwidth", "init_seed")


def _error(path: Path, what: str) -> ValueError:
    return ValueError(f"SAE file {path / CFG_FILE}: {what}")


# ------------------------------------------------------------------ thresholds
def log_of_threshold(threshold: Float[torch.Tensor, " d_sae"]) -> Float[torch.Tensor, " d_sae"]:
    """``log_threshold`` (same dtype) whose ``exp()`` is ``threshold`` bit for bit where the
    float grid allows it, else the nearest (a few ulps off); thresholds <= 0 give ``-inf``
    (exp 0: ``relu(pre) * [pre > t]`` is the same for every t <= 0)."""
    t = threshold.clamp_min(0)
    guess = t.double().log().to(t.dtype)  # [d_sae]
    # A float's exp is at most an ulp or so off, so the exact log is among a few neighbours of the
    # guess.
    steps = [guess]
    up, down = guess, guess
    for _ in range(8):
        up = torch.nextafter(up, torch.full_like(up, float("inf")))
        down = torch.nextafter(down, torch.full_like(down, -float("inf")))
        steps += [up, down]
    cand = torch.stack(steps)  # [17, d_sae], the guess first
    miss = (cand.exp() - t).abs()  # [17, d_sae]
    best = cand.gather(0, miss.argmin(0, keepdim=True))[
        0
    ]  # argmin: the first (nearest the guess) of ties
    return torch.where(t > 0, best, torch.full_like(best, -float("inf")))


# ------------------------------------------------------------------ write
def saelens_cfg(sae: SAE, kinds: Mapping[str, Any]) -> dict[str, Any]:
    """The ``cfg.json`` dict SAELens's ``SAEConfig.to_dict`` would write for ``sae``
    (``kinds``: the registry, for the kinds that have an architecture)."""
    c = sae.cfg
    arch = sae.kind.architecture
    if arch is None:
        raise ValueError(
            f"SAE kind {c.kind!r} has no SAELens architecture; kinds that have one: "
            f"{sorted(k for k, v in kinds.items() if v.architecture)}"
        )
    cfg: dict[str, Any] = {
        "d_in": c.d_in,
        "d_sae": c.d_sae,
        "dtype": c.dtype,
        "device": "cpu",
        "apply_b_dec_to_input": c.apply_b_dec_to_input,
        "normalize_activations": "none",
        "reshape_activations": "none",
        "metadata": {
            "sae_lens_version": FORMAT_VERSION,
            "hook_name": c.hook_name,
            "interp": {f: getattr(c, f) for f in _INTERP_FIELDS},
        },
    }
    if arch == "topk":
        cfg.update(k=c.k, rescale_acts_by_decoder_norm=False)
    cfg["architecture"] = arch
    return cfg


def saelens_tensors(sae: SAE) -> dict[str, torch.Tensor]:
    """SAELens's tensors for ``sae``, acting on raw inputs (``input_scale`` folded in)."""
    out = {k: v.detach().contiguous().cpu() for k, v in sae.folded().items()}
    if sae.kind.architecture == "jumprelu":
        # The very values encode compares against.
        out["threshold"] = sae.log_threshold.detach().exp().contiguous().cpu()
    return out


def write_saelens(sae: SAE, path: str | Path, kinds: Mapping[str, Any]) -> Path:
    """Write ``sae`` to the folder ``path`` in SAELens's layout; returns ``path``."""
    from safetensors.torch import save_file

    from interp.utils import atomic_path

    path = Path(path)
    cfg = saelens_cfg(sae, kinds)
    _refuse_foreign_cfg(path / CFG_FILE)
    path.mkdir(parents=True, exist_ok=True)
    with atomic_path(path / WEIGHTS_FILE) as tmp:
        save_file(saelens_tensors(sae), str(tmp))
    with atomic_path(path / CFG_FILE) as tmp:
        Path(tmp).write_text(json.dumps(cfg, indent=2))
    return path


def _refuse_foreign_cfg(cfg_file: Path) -> None:
    """An existing ``cfg.json`` is overwritten only if it describes an SAE (``d_in``, ``d_sae``):
    saving into a folder that holds another program's ``cfg.json`` would destroy it."""
    if not cfg_file.exists():
        return
    try:
        raw = json.loads(cfg_file.read_text())
        ours = isinstance(raw, dict) and "d_in" in raw and "d_sae" in raw
    except (OSError, ValueError):
        ours = False
    if not ours:
        raise FileExistsError(
            f"{cfg_file} exists and is not an SAE config; it was left as it is. "
            "Save the SAE into another folder"
        )


# ------------------------------------------------------------------ read
def _modern(raw: dict[str, Any]) -> dict[str, Any]:
    """A pre-6.0 SAELens cfg in format-6 keys (what SAELens's handle_pre_6_0_config does)."""
    cfg = dict(raw)
    if "hook_point" in cfg:
        cfg.setdefault("hook_name", cfg.pop("hook_point"))
    act = cfg.pop("activation_fn_str", None) or cfg.pop("activation_fn", None) or "relu"
    kwargs = cfg.pop("activation_fn_kwargs", None) or {}
    if act == "topk":
        cfg["architecture"] = "topk"
        cfg.setdefault("k", kwargs.get("k"))
    elif act != "relu":
        cfg["_activation_fn"] = act  # refused below, by name
    if isinstance(cfg.get("normalize_activations"), bool):
        cfg["normalize_activations"] = (
            "expected_average_only_in" if cfg["normalize_activations"] else "none"
        )
    cfg.setdefault("architecture", "standard")
    meta = dict(cfg.get("metadata") or {})
    for key in ("hook_name", "model_name", "sae_lens_version", "sae_lens_training_version"):
        if key in cfg:
            meta.setdefault(key, cfg.pop(key))
    cfg["metadata"] = meta
    return cfg


def _config(raw: dict[str, Any], path: Path, kinds: Mapping[str, Any]) -> dict[str, Any]:
    """Our SAEConfig's fields for a SAELens cfg.json, or a ValueError naming what we cannot
    honour."""
    cfg = _modern(raw)
    unknown = sorted(set(cfg) - _MATH_KEYS - _HARMLESS_KEYS - _OLD_KEYS - {"_activation_fn"})
    if unknown:
        raise _error(
            path,
            f"unknown field(s) {unknown}; known: {sorted(_MATH_KEYS)} and SAELens's "
            f"provenance and training fields",
        )
    if "_activation_fn" in cfg:
        raise _error(
            path, f"activation_fn {cfg['_activation_fn']!r} is not supported; valid: 'relu', 'topk'"
        )
    by_arch = {v.architecture: k for k, v in kinds.items() if v.architecture}
    arch = cfg["architecture"]
    if arch not in by_arch:
        raise _error(path, f"unknown architecture {arch!r}; valid: {sorted(by_arch)}")
    for key, want in (
        ("normalize_activations", "none"),
        ("reshape_activations", "none"),
        ("rescale_acts_by_decoder_norm", False),
        ("finetuning_scaling_factor", False),
    ):
        got = cfg.get(key, want)
        if got is None and key == "normalize_activations":
            got = "none"
        if got != want:
            raise _error(
                path, f"{key} {got!r} is not supported (it changes encode/decode); valid: {want!r}"
            )
    dtype = str(cfg.get("dtype", "float32")).removeprefix("torch.")
    if dtype not in DTYPES:
        raise _error(path, f"dtype {cfg.get('dtype')!r} is not supported; valid: {list(DTYPES)}")
    for key in ("d_in", "d_sae"):
        if not isinstance(cfg.get(key), int) or cfg[key] < 1:
            raise _error(path, f"{key} must be a positive integer, got {cfg.get(key)!r}")
    meta = cfg["metadata"]
    ours = dict(meta.get("interp") or {})
    kind = by_arch[arch]
    if ours.get("kind") in kinds and kinds[ours["kind"]].architecture == arch:
        kind = ours["kind"]  # a kind of ours that shares the architecture's math
    fields: dict[str, Any] = {
        f: ours[f] for f in ("k", "threshold_init", "bandwidth", "init_seed") if f in ours
    }
    if arch == "topk":
        if not isinstance(cfg.get("k"), int) or cfg["k"] < 1:
            raise _error(path, f"topk needs a positive integer k, got {cfg.get('k')!r}")
        fields["k"] = cfg["k"]  # SAELens's field, not ours in metadata, is what SAELens would use
    # input_scale is folded into the tensors on disk, so the SAE we build has 1.
    return dict(
        d_in=cfg["d_in"],
        d_sae=cfg["d_sae"],
        kind=kind,
        dtype=dtype,
        input_scale=1.0,
        hook_name=meta.get("hook_name"),
        apply_b_dec_to_input=bool(cfg.get("apply_b_dec_to_input", True)),
        **fields,
    )


def _tensors(
    tensors: dict[str, torch.Tensor], cfg: dict[str, Any], arch: str, path: Path
) -> dict[str, torch.Tensor]:
    """The state dict of our SAE from SAELens's tensors, checked by name and shape."""
    d_in, d_sae = cfg["d_in"], cfg["d_sae"]
    shapes = {"W_enc": (d_in, d_sae), "W_dec": (d_sae, d_in), "b_enc": (d_sae,), "b_dec": (d_in,)}
    if arch == "jumprelu":
        shapes["threshold"] = (d_sae,)
    where = path / WEIGHTS_FILE
    if set(tensors) != set(shapes):
        raise ValueError(
            f"SAE file {where}: tensors {sorted(tensors)}, but a {arch} SAE "
            f"has {sorted(shapes)} (missing {sorted(set(shapes) - set(tensors))}, "
            f"unexpected {sorted(set(tensors) - set(shapes))})"
        )
    for name, shape in shapes.items():
        if tuple(tensors[name].shape) != shape:
            raise ValueError(
                f"SAE file {where}: tensor {name} has shape {list(tensors[name].shape)}; "
                f"d_in={d_in}, d_sae={d_sae} need {list(shape)}"
            )
    dtype = getattr(torch, cfg["dtype"])
    out = {k: v.to(dtype) for k, v in tensors.items()}
    if "threshold" in out:
        out["log_threshold"] = log_of_threshold(out.pop("threshold"))
    return out


def read_saelens(
    path: str | Path, kinds: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """``(SAEConfig fields, state dict)`` of the SAE in the folder ``path`` (SAELens's layout,
    old or new, or our old one); ``kinds``: the registry, mapping architectures to kinds."""
    from safetensors.torch import load_file

    from interp.utils import read_object

    path = Path(path)
    raw = read_object(path / CFG_FILE)  # missing, not JSON, not an object: a ValueError naming it
    try:
        tensors = load_file(str(path / WEIGHTS_FILE))
    except FileNotFoundError:
        raise FileNotFoundError(f"SAE folder {path} has no {WEIGHTS_FILE}") from None
    except Exception as e:  # noqa: BLE001 - safetensors raises its own error types
        raise ValueError(
            f"SAE file {path / WEIGHTS_FILE} cannot be read (damaged or truncated): {e}"
        ) from None
    if "kind" in raw and "metadata" not in raw:
        # This project's layout before SAELens's: our SAEConfig's fields, log_threshold on disk.
        return {k: v for k, v in raw.items() if k not in _OLD_INTERP_EXTRAS}, tensors
    cfg = _config(raw, path, kinds)
    return cfg, _tensors(tensors, cfg, kinds[cfg["kind"]].architecture, path)
