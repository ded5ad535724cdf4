"""Check a checkpoint before studying it: parity with its own forward, its hooks, collect's speed.

The first thing to run on a new model (``interp check <model>``). Three parts:

1. Parity. The traced model (a TransformerLens bridge) must compute what the model itself
   computes. For a Hugging Face checkpoint the reference is the Hugging Face model run with
   ``output_hidden_states=True``: its own module tree, with the bridge wrappers peeled off
   (same parameters, so the check costs no memory). Its logits (when the model has an LM
   head; a headless encoder has hidden states only) and its hidden states, layer by layer,
   are compared with ``interp.trace`` captures of :meth:`Model.resid_names`. Hugging Face's
   last hidden state follows its convention: after the final norm where the base model has
   one (GPT-2, GPT-NeoX, Llama), the last block's output where it does not (BERT). For a zoo
   or ``interp`` directory model the reference is the plain native module
   (:func:`interp.tracing.reference.reference_module`), read at the adapter table's modules.
   The tolerance is per dtype (:data:`TOLERANCE`), scaled by the size of the reference.
2. The hook list: how many hooks, which per-layer kinds on which layers, and whether
   ``m.hook(kind, l)`` resolves for the kinds every analysis leans on (:data:`REQUIRED_KINDS`).
3. Timing: ``interp.collect`` of every ``resid_post`` against a bare forward of the same
   plain module (the Hugging Face body, without the unembedding that collect skips),
   interleaved in one process. Reported as metrics and a figure, never as a criterion:
   a timed assertion fails on a busy machine.
"""

from __future__ import annotations

import logging
import os
import statistics
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import annotated_types as at
import numpy as np
import torch
from jaxtyping import Float
from pydantic import BaseModel, ConfigDict

import interp
from interp.analyses import register
from interp.fields import (
    MAX_COUNT,
    ConfigError,
    Count,
    Device,
    ModelName,
    Seed,
    check_fits,
    check_seq_len,
)
from interp.plotting import check as plots
from interp.results import Result
from interp.tracing.model import Model
from interp.tracing.reference import collect_path, native_forward, plain_routes, reference_module
from interp.tracing.trace import trace
from interp.tracing.wrapped import final_norm_in_base_model
from interp.utils import interleaved, paired_ratio, seed_everything

log = logging.getLogger(__name__)

# Max abs error allowed, as a fraction of max(1, max |reference|): fp32 keeps ~7 digits and the
# two paths differ only in the order of a few sums; half precisions keep ~3 digits.
TOLERANCE = {"float32": 1e-4, "float16": 1e-2, "bfloat16": 5e-2}

# Per-layer kinds that the analyses and methods address by ``m.hook(kind, l)``.
REQUIRED_KINDS = ("resid_pre", "resid_post", "pattern", "z")


class Config(BaseModel):
    """Settings of the checkpoint check."""

    model_config = ConfigDict(extra="forbid")

    model: ModelName = "zoo:code-lm-tiny"
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    n_prompts: Count = 4  # random token sequences for the parity check
    seq_len: Annotated[int, at.Ge(2), at.Le(MAX_COUNT)] = 16
    # [batch, pos] of each timed batch (pos capped at n_ctx)
    timing_batch: tuple[Count, Count] = (8, 32)
    timing_batches: Count = 4  # batches per timed call
    repeats: Count = 5  # interleaved timing rounds after one warm-up round
    device: Device = "auto"
    trust_remote_code: bool = False  # run a HF checkpoint's own code (auto_map): if you trust it
    seed: Seed = 0


@dataclass(frozen=True)
class Forward:
    """One forward's ``logits`` (None without an LM head) and ``L + 1`` ``hidden`` states (the
    embedding, then one per block); ``names``: the hooks the bridge read them at (empty for the
    reference)."""

    logits: Float[torch.Tensor, "batch pos vocab"] | None
    hidden: list[Float[torch.Tensor, "batch pos d_model"]]
    names: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Parity:
    """Part 1: the bridge against the model's own forward. ``source`` is ``"hf"`` or
    ``"native"``; errors are max abs differences, tolerances :data:`TOLERANCE` x max(1, max
    |reference|); the logits' are None without an LM head."""

    source: str
    final_hidden_is_normed: bool
    names: list[str]
    hidden_error: Float[np.ndarray, " states"]
    hidden_tolerance: float
    logits_error: float | None = None
    logits_tolerance: float | None = None


@dataclass(frozen=True)
class HookInventory:
    """Part 2: the hook list. ``kinds``: per-layer kind -> the layers it is found on;
    ``unresolved``: ``kind@layer`` pairs of a required kind the model has that fail."""

    n_hooks: int
    n_hooks_outside_blocks: int
    hooks_per_layer: list[int]
    kinds: dict[str, list[int]]
    missing_kinds: list[str]
    unresolved: list[str]


@dataclass(frozen=True)
class Timing:
    """Part 3: seconds per call of each variant (``bare``, ``collect``), interleaved; their
    paired ratio; what the bare forward ran; collect's route and ``[batches, batch, pos]``."""

    times: dict[str, list[float]]
    ratio: float
    bare_module: str
    collect_path: str
    shape: list[int]
    n_routed: int
    unrouted_kinds: list[str]


# ----------------------------------------------------------------- model and reference
def load_checked_model(config: Config) -> Model:
    """The configured model in the configured dtype; it must be a transformer with blocks."""
    extra = {"trust_remote_code": True} if config.trust_remote_code else {}  # explicit opt-in only
    m = interp.load_model(config.model, device=config.device, dtype=config.dtype, **extra)
    m.eval()
    if m.kind != "transformer" or not m.n_layers:
        raise ValueError(
            f"check compares a transformer with its own forward; {config.model} is a {m.kind}"
        )
    check_seq_len(m, config.seq_len)
    bad = [
        n
        for n, p in m.module.named_parameters()
        if p.is_floating_point() and not bool(p.isfinite().all())
    ]
    if bad:  # the weights are wrong, not the implementation: say so before any parity is measured
        names = ", ".join(bad[:5]) + (" ..." if len(bad) > 5 else "")
        raise ConfigError(
            f"{config.model}: weights hold NaN or infinite values ({names}); "
            "parity cannot be judged on them"
        )
    return m


def final_hidden_is_normed(m: Model, source: str) -> bool:
    """Whether the reference's last hidden state is after the final norm: Hugging Face applies
    it there when the norm belongs to the base model (GPT-2 ``ln_f``), not when it belongs to a
    head (BERT's MLM transform). The native reference is read at the blocks themselves."""
    return source == "hf" and final_norm_in_base_model(m)


def prompts(m: Model, n: int, seq_len: int, seed: int) -> torch.Tensor:
    """``[n, seq_len]`` random token ids (any checkpoint, with or without a tokenizer)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, int(m.d_vocab or m.cfg.d_vocab), (n, seq_len), generator=g)


def reference_forward(m: Model, ref: torch.nn.Module, source: str, ids: torch.Tensor) -> Forward:
    """The reference's logits (None without an LM head) and ``L + 1`` hidden states."""
    ids = ids.to(m.device)
    with torch.no_grad():
        if source == "hf":
            out = ref(ids, output_hidden_states=True)
            logits = (
                out.logits if getattr(m, "has_lm_head", True) and hasattr(out, "logits") else None
            )
            return Forward(logits, list(out.hidden_states))
        native = native_forward(m, ref, ids)
        return Forward(native["logits"], list(native["hidden"]))


def bridge_forward(m: Model, ids: torch.Tensor, normed_last: bool) -> Forward:
    """The bridge's logits and ``L + 1`` hidden states named as the reference's: the
    residual stream, with the final norm's output standing in for the last block's when
    ``normed_last``."""
    names = m.resid_names()
    if normed_last:
        names = names[:-1] + [m.hook("ln_final.hook_out")]
    with torch.no_grad():
        out, acts = trace(m, ids.to(m.device), capture=names)
    logits = out if getattr(m, "has_lm_head", True) else None
    return Forward(logits, [acts[n] for n in names], names)


def parity(m: Model, ids: torch.Tensor, dtype: str) -> Parity:
    """Per-layer max abs error of the bridge against the model's own forward, the logits'
    error, and the tolerances they are held to (:data:`TOLERANCE` x max(1, max |reference|))."""
    ref, source = reference_module(m)
    normed = final_hidden_is_normed(m, source)
    want = reference_forward(m, ref, source, ids)
    got = bridge_forward(m, ids, normed)
    if len(want.hidden) != len(got.hidden):
        raise ValueError(
            f"{m.model_id}: the reference has {len(want.hidden)} hidden states, "
            f"the bridge {len(got.hidden)} residual-stream hooks"
        )
    errors = np.array([_max_abs(a, b) for a, b in zip(got.hidden, want.hidden, strict=True)])
    scale = max(1.0, max(float(h.float().abs().max()) for h in want.hidden))
    logits_error = logits_tolerance = None
    if want.logits is not None and got.logits is not None:
        logits = _logits(want.logits)
        logits_error = _max_abs(_logits(got.logits), logits)
        logits_tolerance = TOLERANCE[dtype] * max(1.0, float(logits.float().abs().max()))
    return Parity(
        source=source,
        final_hidden_is_normed=normed,
        names=got.names,
        hidden_error=errors,
        hidden_tolerance=TOLERANCE[dtype] * scale,
        logits_error=logits_error,
        logits_tolerance=logits_tolerance,
    )


def _logits(x: Any) -> torch.Tensor:
    return x.logits if hasattr(x, "logits") else x


def _max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    if a.shape != b.shape:
        return float("inf")  # a shape mismatch is as wrong as it gets
    return float((a.float() - b.float()).abs().max())


# ----------------------------------------------------------------- hooks
def hook_inventory(m: Model) -> HookInventory:
    """The hook list: how many, per layer; the layers each per-layer kind is found on; and
    the ``kind@layer`` pairs where a required kind the model has fails to resolve."""
    names = m.hook_names
    n_layers = m.n_layers
    per_layer = [0] * n_layers
    suffixes: list[set[str]] = [set() for _ in range(n_layers)]
    for name in names:
        layer = m.layer_of(name)
        if layer is not None and layer < n_layers:
            per_layer[layer] += 1
            suffixes[layer].add(name.split(".", 2)[2])
    kinds = {
        kind: [layer for layer in range(n_layers) if suffix in suffixes[layer]]
        for kind, suffix in m.LAYER_HOOKS.items()
    }
    unresolved = []
    for kind in REQUIRED_KINDS:
        if not kinds[kind]:
            continue  # the model has no such activation at all (reported under missing_kinds)
        for layer in range(n_layers):
            try:
                m.hook(kind, layer)
            except (KeyError, IndexError):
                unresolved.append(f"{kind}@{layer}")
    return HookInventory(
        n_hooks=len(names),
        n_hooks_outside_blocks=len(names) - sum(per_layer),
        hooks_per_layer=per_layer,
        kinds=kinds,
        missing_kinds=[k for k in REQUIRED_KINDS if not kinds[k]],
        unresolved=unresolved,
    )


# ----------------------------------------------------------------- timing
def bare_module(ref: torch.nn.Module, source: str) -> tuple[torch.nn.Module, str]:
    """The module a bare forward runs: the Hugging Face body (the same work as collecting
    every ``resid_post``, which stops before the unembedding), or the whole native module."""
    if source == "hf" and getattr(ref, "base_model", ref) is not ref:
        return ref.base_model, f"{type(ref.base_model).__name__} (the body, without the head)"
    return ref, f"{type(ref).__name__} (the plain module, to the logits)"


def timing(m: Model, config: Config) -> Timing:
    """Seconds per call of a bare forward and of ``collect`` of every ``resid_post``,
    interleaved."""
    ref, source = reference_module(m)
    bare, bare_what = bare_module(ref, source)
    hooks = [m.hook("resid_post", layer) for layer in range(m.n_layers)]
    B, T = config.timing_batch
    T = min(T, int(getattr(m.cfg, "n_ctx", T) or T))
    x = prompts(m, B * config.timing_batches, T, config.seed + 1).to(m.device)
    batches = list(x.split(B))  # [B, T] each
    # time the work, not the launch
    sync = torch.cuda.synchronize if m.device.type == "cuda" else (lambda: None)
    variants = {
        "bare": lambda: ([bare(xb) for xb in batches], sync()),
        "collect": lambda: (interp.collect(m, x, hooks, batch_size=B), sync()),
    }
    with torch.no_grad(), _quiet():
        times = interleaved(variants, config.repeats)
    routes = plain_routes(m)
    return Timing(
        times=times,
        ratio=paired_ratio(times, "collect", "bare"),
        bare_module=bare_what,
        collect_path=collect_path(m, hooks),
        shape=[config.timing_batches, B, T],
        n_routed=routes["n_routed"],
        unrouted_kinds=routes["unrouted_kinds"],
    )


@contextmanager
def _quiet() -> Iterator[None]:
    """No progress bars while timing: the check measures collect, not the terminal."""
    old = os.environ.get("INTERP_QUIET")
    os.environ["INTERP_QUIET"] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("INTERP_QUIET", None)
        else:
            os.environ["INTERP_QUIET"] = old


# ----------------------------------------------------------------- the analysis
@register(
    "check",
    Config,
    title="Check a checkpoint: parity, hooks, collect speed",
    figure_order=("parity", "timing"),
)
def run(config: Config) -> Result:
    """Parity of the traced model with its own forward, its hook list, and collect's speed."""
    seed_everything(config.seed)
    m = load_checked_model(config)
    n = config.n_prompts * config.seq_len
    logits = 2 * n * (m.cfg.d_vocab or 1) * 4
    check_fits(
        {"prompt tokens": n * 8, "logits, traced and reference": logits},
        "Lower n_prompts or seq_len.",
    )
    ids = prompts(m, config.n_prompts, config.seq_len, config.seed)
    par = parity(m, ids, config.dtype)
    hooks = hook_inventory(m)
    times = timing(m, config)
    return report(config, m, par, hooks, times)


def report(config: Config, m: Model, par: Parity, hooks: HookInventory, times: Timing) -> Result:
    """The result: metrics, sanity criteria, arrays and figures of the three parts."""
    result = Result("check")
    result.metrics.update(_metrics(config, m, par, hooks, times))
    _criteria(result, config, par, hooks)
    result.arrays.update(
        {
            "hidden_max_abs_error": par.hidden_error,
            "bare_seconds": np.array(times.times["bare"]),
            "collect_seconds": np.array(times.times["collect"]),
        }
    )
    result.figures.update(
        {
            "parity": plots.parity_figure(
                par.names,
                par.hidden_error,
                par.hidden_tolerance,
                par.logits_error,
                par.logits_tolerance,
            ),
            "timing": plots.timing_figure(times.times, times.ratio, times.bare_module),
        }
    )
    return result


def _metrics(
    config: Config, m: Model, par: Parity, hooks: HookInventory, times: Timing
) -> dict[str, Any]:
    med = {k: 1e3 * statistics.median(v) for k, v in times.times.items()}
    return {
        "model": m.model_id,
        "n_layers": m.n_layers,
        "dtype": config.dtype,
        "device": str(m.device),
        "reference": "Hugging Face forward" if par.source == "hf" else "plain native module",
        "final_hidden_is_normed": par.final_hidden_is_normed,
        "has_lm_head": bool(getattr(m, "has_lm_head", True)),
        "compared_hooks": par.names,
        "hidden_max_abs_error": par.hidden_error.tolist(),
        "hidden_tolerance": par.hidden_tolerance,
        "logits_max_abs_error": par.logits_error,
        "logits_tolerance": par.logits_tolerance,
        "n_hooks": hooks.n_hooks,
        "n_hooks_outside_blocks": hooks.n_hooks_outside_blocks,
        "hooks_per_layer": hooks.hooks_per_layer,
        "hook_kinds": hooks.kinds,
        "missing_kinds": hooks.missing_kinds,
        "unresolved_hooks": hooks.unresolved,
        "collect_over_bare": times.ratio,
        "bare_ms": med["bare"],
        "collect_ms": med["collect"],
        "bare_module": times.bare_module,
        "collect_path": times.collect_path,
        "timing_shape": times.shape,
        "plain_routed_hooks": times.n_routed,
        "bridge_only_hook_kinds": times.unrouted_kinds,
    }


def _criteria(result: Result, config: Config, par: Parity, hooks: HookInventory) -> None:
    src = "the Hugging Face forward" if par.source == "hf" else "the plain native module"
    if par.logits_error is not None:
        result.add_criterion(
            "logits_match",
            par.logits_error,
            "<=",
            par.logits_tolerance,
            kind="sanity",
            description=f"max |bridge logits - logits of {src}| ({config.dtype} tolerance)",
        )
    result.add_criterion(
        "hidden_states_match",
        float(par.hidden_error.max()),
        "<=",
        par.hidden_tolerance,
        kind="sanity",
        description=f"max over layers of |residual stream - hidden states of {src}| "
        f"({config.dtype} tolerance)",
    )
    result.add_criterion(
        "layer_hooks_resolve",
        float(len(hooks.unresolved)),
        "<=",
        0.0,
        kind="sanity",
        description=f"(kind, layer) pairs of {', '.join(REQUIRED_KINDS)} where "
        "m.hook(kind, l) fails although the model has that kind",
    )
