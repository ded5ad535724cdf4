"""The knockout sweeps on the zoo VLM: every edge and window on every analysed question, the
complete cut and its oracle, the logit lens at the last position, and the fast path's checks
(float32 along the way, float64 again at the end)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import torch
from jaxtyping import Float

from interp.analyses.crossmodal.config import EDGE_NAMES, EDGES, Config
from interp.analyses.crossmodal.questions import batches
from interp.analyses.crossmodal.types import CleanAnswers, Float64Checks, Sweeps
from interp.data.crossmodal import N_PATCHES, Sample, encode, position_groups
from interp.methods.knockout import (
    answer_prob,
    attention_removed_logits,
    clean_cache,
    fast_vs_full_gap,
    last_row_knockout,
    nothing_blocked_gap,
    relative_change,
    sweep,
)
from interp.methods.lens import lens_logits, residual_stream
from interp.tracing.model import Model
from interp.tracing.trace import trace
from interp.tracing.wrapped import cast_wrapped

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LastLens:
    """``[L+1, B]`` answer probability read at the last position through the final norm and
    unembedding, and through the unembedding only; the max |lens - logits| at the last layer."""

    with_norm: Float[np.ndarray, "states batch"]
    without_norm: Float[np.ndarray, "states batch"]
    final_gap: float


def logit_lens_last(m: Model, batch: dict, answer: torch.Tensor) -> LastLens:
    """The answer probability read from the residual stream at the last position (row 0: the
    embedding), with and without the final norm (:mod:`interp.methods.lens`)."""
    stream = residual_stream(
        m, {"tokens": batch["tokens"], "pixels": batch["pixels"]}, positions=-1
    )
    normed = lens_logits(m, stream)  # [L+1, B, V]
    raw = lens_logits(m, stream, norm=False)
    return LastLens(
        with_norm=np.stack([answer_prob(x, answer).numpy() for x in normed]),
        without_norm=np.stack([answer_prob(x, answer).numpy() for x in raw]),
        final_gap=float((normed[-1] - stream.output).abs().max()),
    )


def last_row_attention(m: Model, batch: dict) -> Float[np.ndarray, "batch layers patches"]:
    """Attention of the last position to each image patch, mean over heads."""
    names = [m.hook("pattern", layer) for layer in range(m.n_layers)]
    _, acts = trace(m, {"tokens": batch["tokens"], "pixels": batch["pixels"]}, capture=names)
    return np.stack([acts[n][:, :, -1, 1 : 1 + N_PATCHES].mean(1).numpy() for n in names], axis=1)


@dataclass
class _Accumulator:
    """What :func:`knockout_sweeps` fills batch by batch (frozen into :class:`Sweeps`)."""

    n_test: int
    n_layers: int
    scores: np.ndarray = field(init=False)
    p_base: np.ndarray = field(init=False)
    all_layers: np.ndarray = field(init=False)
    n_object: np.ndarray = field(init=False)
    lens_norm: np.ndarray = field(init=False)
    lens_raw: np.ndarray = field(init=False)
    cut_spread: float = 0.0
    cut_scale: float = 1.0
    oracle_gap: float = 0.0
    fast_gap: float = 0.0
    none_gap: float = 0.0
    lens_gap: float = 0.0
    checks: list = field(default_factory=list)
    timing: dict[str, float] = field(
        default_factory=lambda: {"clean_forward_s": 0.0, "fast_sweep_s": 0.0, "full_sweep_s": 0.0}
    )
    # per question length: the last-position logits with everything cut
    cut_first: dict[int, torch.Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n, L = self.n_test, self.n_layers
        self.scores = np.full((n, len(EDGES), L), np.nan)
        self.p_base = np.full(n, np.nan)
        self.all_layers = np.full(n, np.nan)
        self.n_object = np.zeros(n)
        self.lens_norm = np.full((n, L + 1), np.nan)
        self.lens_raw = np.full((n, L + 1), np.nan)

    def frozen(self) -> Sweeps:
        return Sweeps(
            scores=self.scores,
            p_base=self.p_base,
            all_layers=self.all_layers,
            n_object=self.n_object,
            lens_norm=self.lens_norm,
            lens_raw=self.lens_raw,
            cut_spread=self.cut_spread,
            cut_scale=self.cut_scale,
            oracle_gap=self.oracle_gap,
            fast_gap=self.fast_gap,
            none_gap=self.none_gap,
            lens_gap=self.lens_gap,
            checks=self.checks,
            timing=self.timing,
        )


def _sweep_batch(
    m: Model,
    samples: list[Sample],
    part: list[int],
    answer: torch.Tensor,
    length: int,
    check: bool,
    rng: np.random.Generator,
    acc: _Accumulator,
    window: int,
) -> None:
    """One batch of same-length questions (test indices ``part``): every edge and window, the
    complete cut and its oracle, the lens, and (``check``) the fast path against the full one."""
    L = m.n_layers
    b = encode(m.tokenizer, samples)
    inputs = {"tokens": b["tokens"], "pixels": b["pixels"]}
    groups = position_groups(b, samples, rng=rng)
    cache = clean_cache(m, inputs)
    res = sweep(m, inputs, groups, EDGES, answer, k=window, fast=True, cache=cache)
    for e, name in enumerate(EDGE_NAMES):
        acc.scores[part, e] = res["score"][name].T.numpy()
    acc.p_base[part] = res["p_base"].numpy()
    cut = last_row_knockout(m, cache, groups["all"], range(L))
    spread = float((cut - acc.cut_first.setdefault(length, cut[0].clone())).abs().max())
    acc.cut_spread = max(acc.cut_spread, spread)
    acc.cut_scale = max(acc.cut_scale, float(cut.abs().max()))
    oracle = float((cut - attention_removed_logits(m, inputs)).abs().max())
    acc.oracle_gap = max(acc.oracle_gap, oracle)
    acc.all_layers[part] = relative_change(answer_prob(cut, answer).cpu(), res["p_base"]).numpy()
    acc.n_object[part] = groups["object"].sum(1).numpy()
    lens = logit_lens_last(m, b, answer)
    acc.lens_norm[part], acc.lens_raw[part] = lens.with_norm.T, lens.without_norm.T
    acc.lens_gap = max(acc.lens_gap, lens.final_gap)
    if check:
        gap, t = fast_vs_full_gap(m, inputs, groups, cache, window, EDGES)
        acc.fast_gap = max(acc.fast_gap, gap)
        acc.timing = {key: acc.timing[key] + t[key] for key in acc.timing}
        acc.checks.append((inputs, groups))
        acc.none_gap = max(acc.none_gap, nothing_blocked_gap(m, inputs, cache.logits))


def knockout_sweeps(m: Model, test: list[Sample], clean: CleanAnswers, config: Config) -> Sweeps:
    """Every edge and window on every analysed sample (one batch per question length at a time),
    with the everything-cut run and its oracle, the logit lens and the fast-path checks along
    the way. Per-sample arrays have one row per test question (NaN where not analysed)."""
    acc = _Accumulator(len(test), m.n_layers)
    rng = np.random.default_rng([config.seed, 2])  # the size-matched random patch sets
    for length, idx in sorted(clean.by_len.items()):
        for bi, part in enumerate(batches(idx, config.batch_size)):
            samples = [test[i] for i in part]
            answer = clean.preds[part]
            check = bi < config.check_batches
            _sweep_batch(m, samples, part, answer, length, check, rng, acc, config.window)
        log.info("questions of %d words: %d samples done", length, len(idx))
    return acc.frozen()


def fast_vs_full_float64(m: Model, checks: list, k: int) -> Float64Checks:
    """The fast-vs-full comparison of the checked batches again in float64, and the complete cut
    (every edge into the last position, every layer, fast path) against the oracle forward with
    the last position's attention output removed: both check that two computations are the same
    function, free of float32 rounding (which reaches ~1e-5 on a trained model's logits)."""
    gap, oracle = 0.0, 0.0
    into_last = [e for e in EDGES if e[1] == "last"]
    cast_wrapped(m, torch.float64)  # the wrapped module holds the projector too
    try:
        for inputs, groups in checks:
            inp = {"tokens": inputs["tokens"], "pixels": inputs["pixels"].double()}
            cache = clean_cache(m, inp)
            gap = max(gap, fast_vs_full_gap(m, inp, groups, cache, k, into_last)[0])
            cut = last_row_knockout(m, cache, groups["all"], range(m.n_layers))
            oracle = max(oracle, float((cut - attention_removed_logits(m, inp)).abs().max()))
    finally:
        cast_wrapped(m, torch.float32)
    return Float64Checks(fast_gap=gap, oracle_gap=oracle)
