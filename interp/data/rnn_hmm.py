"""Hidden Markov models for the RNN-emulates-HMM analysis (Torre et al. 2025).

An :class:`HMMSpec` holds a transition matrix ``A[i, j] = P(s_{t+1}=j | s_t=i)``, an
emission matrix ``B[i, k] = P(o_t=k | s_t=i)`` and a start distribution, validated on
construction (square, non-negative, rows summing to one, shapes agreeing). Builders give
the paper's families (:func:`linear_chain`, :func:`fully_connected`, :func:`cyclic`);
:func:`sample` draws batches of sequences, :func:`forward_filter` computes belief states,
and the statistics helpers (:func:`output_frequencies`, :func:`output_transitions`,
:func:`switch_rate`, :func:`residency`, and :func:`regions` of residency times) are shared by
the HMM and the RNN so both are measured the same way.
:func:`expected_statistics` gives their exact stationary values for an HMM.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from jaxtyping import Float, Int
from pydantic import BaseModel, ConfigDict, model_validator

ROW_TOL = 1e-6
RT_KICK, RT_CLUSTER = 2, 8  # transition: RT < 2; kick zone: 2 <= RT <= 8; cluster: RT > 8
CLUSTER_PROB = (
    0.8  # a cluster state also needs a confident output (top softmax probability above it)
)
REGION_NAMES = ("transition", "kick", "cluster")  # the codes 0, 1, 2 of regions()


class HMMSpec(BaseModel):
    """A discrete HMM: ``transition`` [M, M], ``emission`` [M, K], ``start`` [M] (uniform if
    omitted)."""

    model_config = ConfigDict(extra="forbid")

    name: str = "custom"
    transition: list[list[float]]
    emission: list[list[float]]
    start: list[float] | None = None

    @model_validator(mode="after")
    def _check(self) -> HMMSpec:
        A = np.asarray(self.transition, dtype=float)
        B = np.asarray(self.emission, dtype=float)
        if A.ndim != 2 or A.shape[0] != A.shape[1] or A.shape[0] == 0:
            raise ValueError(
                f"HMM {self.name!r}: transition must be a square [M, M] matrix, got shape {A.shape}"
            )
        if B.ndim != 2 or B.shape[0] != A.shape[0]:
            raise ValueError(
                f"HMM {self.name!r}: emission must be [M={A.shape[0]}, K], got shape {B.shape}"
            )
        if self.start is None:
            self.start = [1.0 / A.shape[0]] * A.shape[0]
        s = np.asarray(self.start, dtype=float)
        if s.shape != (A.shape[0],):
            raise ValueError(
                f"HMM {self.name!r}: start must have {A.shape[0]} entries, got shape {s.shape}"
            )
        for what, P in (("transition", A), ("emission", B), ("start", s[None])):
            if (P < 0).any() or not np.isfinite(P).all():
                raise ValueError(f"HMM {self.name!r}: {what} has negative or non-finite entries")
            bad = np.where(np.abs(P.sum(-1) - 1) > ROW_TOL)[0]
            if len(bad):
                raise ValueError(
                    f"HMM {self.name!r}: {what} rows must sum to 1; row(s) {bad.tolist()} sum to "
                    f"{P.sum(-1)[bad].round(6).tolist()}"
                )
        return self

    @property
    def n_states(self) -> int:
        return len(self.transition)

    @property
    def n_outputs(self) -> int:
        return len(self.emission[0])

    def tensors(self, device=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(A, B, start)`` as float64 tensors."""
        f = lambda x: torch.tensor(x, dtype=torch.float64, device=device)  # noqa: E731
        return f(self.transition), f(self.emission), f(self.start)


# ----------------------------------------------------------------- the paper's HMMs
def linear_chain(n_states: int = 2) -> HMMSpec:
    """Linear chain of ``n_states`` (2..5): stay prob. 1-q at the ends, 1-2q in the middle,
    q = 0.05^(1/(M-1)) to each neighbour; state i emits [0.99(1-a), 0.01, 0.99a], a = i/(M-1)."""
    M = int(n_states)
    if M < 2:
        raise ValueError(f"a linear chain needs at least 2 states, got {M}")
    q = 0.05 ** (1.0 / (M - 1))
    A = np.zeros((M, M))
    for i in range(M):
        if i > 0:
            A[i, i - 1] = q
        if i < M - 1:
            A[i, i + 1] = q
        A[i, i] = 1 - A[i].sum()
    if (np.diag(A) < 0).any():
        raise ValueError(
            f"linear chain with M={M} has q={q:.3f}: middle states would stay with p<0"
        )
    E = np.array([[0.99 * (1 - i / (M - 1)), 0.01, 0.99 * i / (M - 1)] for i in range(M)])
    return HMMSpec(name=f"chain{M}", transition=A.tolist(), emission=E.tolist())


def fully_connected() -> HMMSpec:
    """3 states, stay 0.95, 0.025 to each other state; emission 0.98 on the diagonal, 0.01
    elsewhere."""
    A = np.full((3, 3), 0.025) + np.eye(3) * (0.95 - 0.025)
    E = np.full((3, 3), 0.01) + np.eye(3) * (0.98 - 0.01)
    return HMMSpec(name="fully_connected", transition=A.tolist(), emission=E.tolist())


def cyclic() -> HMMSpec:
    """4-state ring, stay 0.95, 0.025 to each neighbour; emissions of the paper."""
    A = np.zeros((4, 4))
    for i in range(4):
        A[i, i] = 0.95
        A[i, (i + 1) % 4] += 0.025
        A[i, (i - 1) % 4] += 0.025
    E = [[0.9, 0.1, 0.0], [0.1, 0.9, 0.0], [0.0, 0.1, 0.9], [0.0, 0.9, 0.1]]
    return HMMSpec(name="cyclic", transition=A.tolist(), emission=E)


def make_hmm(
    kind: Literal["chain", "fully_connected", "cyclic"] = "chain", n_states: int = 2
) -> HMMSpec:
    """The paper's HMM family ``kind`` (``n_states`` is used by the chain only)."""
    if kind == "chain":
        return linear_chain(n_states)
    if kind == "fully_connected":
        return fully_connected()
    if kind == "cyclic":
        return cyclic()
    raise ValueError(f"unknown HMM kind {kind!r}; use 'chain', 'fully_connected' or 'cyclic'")


# ------------------------------------------------------------------------- sampling
def _draw(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF draw of one category per row of ``probs`` [n, C] from uniforms ``u`` [n]."""
    cdf = probs.cumsum(-1)
    idx = torch.searchsorted(cdf, u[:, None].to(cdf.dtype)).squeeze(-1)
    return idx.clamp_max(probs.shape[-1] - 1)


def sample(
    spec: HMMSpec, n: int, T: int, *, seed: int = 0, device=None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``n`` sequences of length ``T``; returns ``(states, outputs)``, both LongTensor
    [n, T]."""
    if n < 1 or T < 1:
        raise ValueError(f"need n >= 1 and T >= 1, got n={n}, T={T}")
    g = torch.Generator().manual_seed(int(seed))
    A, B, s0 = spec.tensors()
    u = torch.rand(2, T, n, generator=g, dtype=torch.float64)
    states = torch.empty(n, T, dtype=torch.long)
    s = _draw(s0.expand(n, -1), u[0, 0])
    for t in range(T):
        if t > 0:
            s = _draw(A[s], u[0, t])
        states[:, t] = s
    outputs = _draw(B[states.reshape(-1)], u[1].T.reshape(-1)).reshape(n, T)
    return states.to(device), outputs.to(device)


def forward_filter(spec: HMMSpec, outputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Belief states ``P(s_t | o_1..o_t)`` [n, T, M] and the log-likelihood [n] of each sequence."""
    A, B, s0 = spec.tensors(outputs.device)
    n, T = outputs.shape
    beliefs = torch.empty(n, T, spec.n_states, dtype=torch.float64, device=outputs.device)
    loglik = torch.zeros(n, dtype=torch.float64, device=outputs.device)
    prior = s0.expand(n, -1)
    for t in range(T):
        joint = prior * B[:, outputs[:, t]].T  # [n, M]
        z = joint.sum(-1)
        loglik += z.clamp_min(1e-300).log()
        post = joint / z.clamp_min(1e-300)[:, None]
        beliefs[:, t] = post
        prior = post @ A
    return beliefs, loglik


# ------------------------------------------------------------------ sequence statistics
def output_frequencies(outputs: torch.Tensor, n_outputs: int) -> np.ndarray:
    """Fraction of steps emitting each output, [K]."""
    counts = torch.bincount(outputs.reshape(-1).long().cpu(), minlength=n_outputs).double()
    return (counts / counts.sum()).numpy()


def output_transitions(outputs: torch.Tensor, n_outputs: int) -> tuple[np.ndarray, np.ndarray]:
    """One-step output transition matrix ``P(o_{t+1}=b | o_t=a)`` [K, K] and the row counts [K]."""
    o = outputs.long().cpu()
    pairs = o[:, :-1].reshape(-1) * n_outputs + o[:, 1:].reshape(-1)
    counts = (
        torch.bincount(pairs, minlength=n_outputs * n_outputs)
        .reshape(n_outputs, n_outputs)
        .double()
        .numpy()
    )
    rows = counts.sum(1)
    probs = np.divide(
        counts, rows[:, None], out=np.full_like(counts, np.nan), where=rows[:, None] > 0
    )
    return probs, rows


def switch_rate(outputs: torch.Tensor, among: list[int] | None = None) -> float:
    """Fraction of consecutive step pairs whose output changes. With ``among`` (e.g. the
    frequent outputs), only pairs whose two outputs are both in ``among`` count."""
    o = outputs.long()
    a, b = o[:, :-1], o[:, 1:]
    if among is None:
        return float((a != b).double().mean())
    allowed = torch.as_tensor(list(among), device=o.device)
    keep = torch.isin(a, allowed) & torch.isin(b, allowed)
    return float((a != b)[keep].double().mean()) if keep.any() else float("nan")


@dataclass(frozen=True)
class Fidelity:
    """How closely outputs ``y`` follow reference outputs (:func:`fidelity`): frequencies,
    one-step transition rows and switch rates of both, and their largest differences."""

    freq_rnn: Float[np.ndarray, " K"]
    freq_hmm: Float[np.ndarray, " K"]
    freq_error: float
    P_rnn: Float[np.ndarray, "K K"]  # NaN rows where the RNN never emits the output
    P_hmm: Float[np.ndarray, "K K"]
    row_counts: Int[np.ndarray, " K"]  # RNN samples per transition row
    row_error: float  # max |P_rnn - P_hmm| over rows with >= row_min samples (NaN if none)
    rows_checked: list[int]
    switch_rnn: float  # between frequent outputs
    switch_hmm: float
    switch_error: float
    switch_rnn_all: float  # between any two outputs
    switch_hmm_all: float


def fidelity(
    y: torch.Tensor, hmm_y: torch.Tensor, K: int, row_min: int, frequent: list[int]
) -> Fidelity:
    """Output frequencies, one-step transition rows (with >= ``row_min`` RNN samples) and switch
    rates of RNN outputs ``y`` vs HMM outputs ``hmm_y``. The gated switch rate counts pairs of
    frequent outputs only (the rare 1% middle output of the chains is noise, as its row);
    ``switch_*_all`` counts every pair."""
    fr, fh = output_frequencies(y, K), output_frequencies(hmm_y, K)
    Pr, rows = output_transitions(y, K)
    Ph, _ = output_transitions(hmm_y, K)
    ok = rows >= row_min
    row_err = float(np.nanmax(np.abs(Pr - Ph)[ok])) if ok.any() else float("nan")
    return Fidelity(
        freq_rnn=fr,
        freq_hmm=fh,
        freq_error=float(np.abs(fr - fh).max()),
        P_rnn=Pr,
        P_hmm=Ph,
        row_counts=rows,
        row_error=row_err,
        rows_checked=np.where(ok)[0].tolist(),
        switch_rnn=switch_rate(y, frequent),
        switch_hmm=switch_rate(hmm_y, frequent),
        switch_error=abs(switch_rate(y, frequent) - switch_rate(hmm_y, frequent)),
        switch_rnn_all=switch_rate(y),
        switch_hmm_all=switch_rate(hmm_y),
    )


def residency(y: np.ndarray) -> np.ndarray:
    """Steps until the output changes along the one given sequence, per step [n, T] (NaN when
    it never does). A property of that path only; the analysis's per-state residency time
    (averaged over fresh-noise continuations) is :func:`interp.methods.dynamics.residency_times`."""
    n, T = y.shape
    rt = np.full((n, T), np.nan)
    for i in range(n):
        nxt = np.nan
        for t in range(T - 2, -1, -1):
            if y[i, t + 1] != y[i, t]:
                nxt = t + 1
            rt[i, t] = nxt - t
    return rt


def regions(
    rt: np.ndarray, max_prob: np.ndarray | None = None, prob_min: float = CLUSTER_PROB
) -> np.ndarray:
    """0 transition (RT < 2), 1 kick zone (2..8), 2 cluster (RT > 8), -1 unknown (censored).

    With ``max_prob`` (the state's top output probability), a cluster state must also have
    ``max_prob > prob_min`` (0.8), the paper's rule: a slow state whose output is uncertain is
    in no region (-1)."""
    rt = np.asarray(rt, dtype=float)
    r = np.full(rt.shape, -1)
    r[rt < RT_KICK] = 0
    r[(rt >= RT_KICK) & (rt <= RT_CLUSTER)] = 1
    cluster = rt > RT_CLUSTER
    if max_prob is not None:
        cluster &= np.asarray(max_prob) > prob_min
    r[cluster] = 2
    return r


def expected_statistics(spec: HMMSpec, among: list[int] | None = None) -> dict[str, np.ndarray]:
    """Exact output frequencies, one-step output transition matrix and switch rate of the
    HMM averaged over steps 1..T-1 under its start distribution, assuming it is stationary
    (true for the paper's HMMs: their transition matrices are doubly stochastic and the
    start is uniform). ``switch_rate_among``: the switch rate counting only pairs of outputs
    both in ``among`` (all outputs if None)."""
    A = np.asarray(spec.transition)
    B = np.asarray(spec.emission)
    pi = np.asarray(spec.start)
    freqs = pi @ B
    joint = (pi[:, None] * B).T @ A @ B  # [K, K]: P(o_t=a, o_{t+1}=b)
    trans = joint / joint.sum(1, keepdims=True)
    sel = list(range(B.shape[1])) if among is None else list(among)
    sub = joint[np.ix_(sel, sel)]
    return {
        "frequencies": freqs,
        "transitions": trans,
        "switch_rate": np.array(1 - np.trace(joint)),
        "switch_rate_among": np.array(1 - np.trace(sub) / sub.sum()),
        "joint": joint,
        "stationary_error": np.array(np.abs(pi @ A - pi).max()),
    }
