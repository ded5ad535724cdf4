"""Random DFAs for in-context language learning (Akyurek et al. 2024, "In-context language
learning: architectures and algorithms"; code: berlino/seq_icl).

Generation, as the paper's code does it: states U{4..12}, alphabet U{4..18} symbols drawn
from the 18-symbol vocabulary, each state gets U{1..3} outgoing edges (symbols and targets
drawn without replacement, no self-loops), start state 0, every state accepting; the DFA is
then minimised (unreachable states dropped, Moore partition refinement). Strings are random
walks from the start state, uniform over a state's outgoing edges.

Vocabulary (token ids)::

    0..17   symbols "a".."r"
    18      separator "|"
    19      pad

A prompt is ``k`` strings joined by ``|``. The oracle gives, for any prefix, the valid next
symbols (the outgoing edges of the current state; after ``|`` the current state is the
start state) and the true next-symbol distribution (uniform over them). Positions whose
next token is ``|`` are never scored: when a string ends is not predictable.

Two DFAs are the same language iff their minimal DFAs have the same canonical form
(:func:`canonical_key`: states renumbered in breadth-first order from the start state).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float
from pydantic import BaseModel, ConfigDict

N_SYMBOLS = 18
SEP = 18
PAD = 19
VOCAB_SIZE = 20
SYMBOLS = [chr(ord("a") + i) for i in range(N_SYMBOLS)]
TOKEN_STRINGS = SYMBOLS + ["|", "<pad>"]
MAX_OUT_DEGREE = 3


@dataclass(frozen=True)
class DFA:
    """A partial DFA over the 18 symbols; ``delta[state, symbol]`` is the next state or -1.

    Start state 0; every state accepts (a missing edge is the only way to reject)."""

    delta: np.ndarray  # [n_states, N_SYMBOLS] int64, -1 = no edge
    minimal: bool = False  # True when built by minimize (already canonical)

    @property
    def n_states(self) -> int:
        return int(self.delta.shape[0])

    def edges(self, state: int) -> np.ndarray:
        """Symbols with an edge out of ``state`` (sorted)."""
        return np.flatnonzero(self.delta[state] >= 0)

    @property
    def alphabet(self) -> np.ndarray:
        return np.flatnonzero((self.delta >= 0).any(0))

    def run(self, symbols: Iterable[int], state: int = 0) -> int | None:
        """State after reading ``symbols`` from ``state``; None if the string is rejected."""
        for s in symbols:
            state = int(self.delta[state, s])
            if state < 0:
                return None
        return state

    def accepts(self, symbols: Iterable[int]) -> bool:
        return self.run(symbols) is not None

    def key(self) -> bytes:
        return canonical_key(self)


def from_edges(n_states: int, edges: Sequence[tuple[int, int, int]]) -> DFA:
    """A DFA from ``(state, symbol, target)`` triples (for hand-written automata)."""
    delta = np.full((n_states, N_SYMBOLS), -1, dtype=np.int64)
    for s, a, t in edges:
        if delta[s, a] >= 0:
            raise ValueError(f"state {s} has two edges on symbol {a}")
        delta[s, a] = t
    return DFA(delta)


# --------------------------------------------------------------------------- minimise
def minimize(dfa: DFA) -> DFA:
    """The minimal DFA of the same language, in canonical (BFS) state order.

    Drops states unreachable from 0, then merges states with the same future (Moore
    refinement; the implicit dead state is its own class, every other state accepts)."""
    delta = dfa.delta
    reach = _bfs_order(delta)
    index = {s: i for i, s in enumerate(reach)}
    sub = np.full((len(reach), N_SYMBOLS), -1, dtype=np.int64)
    for s, i in index.items():
        row = delta[s]
        sub[i] = [index[t] if t >= 0 else -1 for t in row]
    rows = sub.tolist()
    cls = [0] * len(rows)
    n_cls = 1
    while True:
        # signature: own class and the class of each successor (-1: dead)
        sigs = [(cls[s], *[cls[t] if t >= 0 else -1 for t in row]) for s, row in enumerate(rows)]
        ids: dict[tuple, int] = {}
        new = [ids.setdefault(sig, len(ids)) for sig in sigs]
        if len(ids) == n_cls:
            break
        cls, n_cls = new, len(ids)
    cls = np.asarray(cls, dtype=np.int64)
    n_cls = int(cls.max()) + 1
    merged = np.full((n_cls, N_SYMBOLS), -1, dtype=np.int64)
    for s in range(len(reach)):
        merged[cls[s]] = np.where(sub[s] >= 0, cls[np.maximum(sub[s], 0)], -1)
    start = int(cls[0])
    order = _bfs_order(merged, start)
    renum = {s: i for i, s in enumerate(order)}
    out = np.full((len(order), N_SYMBOLS), -1, dtype=np.int64)
    for s, i in renum.items():
        out[i] = [renum[t] if t >= 0 else -1 for t in merged[s]]
    return DFA(out, minimal=True)


def _bfs_order(delta: np.ndarray, start: int = 0) -> list[int]:
    order, seen = [start], {start}
    i = 0
    while i < len(order):
        for t in delta[order[i]]:  # symbols in increasing order
            t = int(t)
            if t >= 0 and t not in seen:
                seen.add(t)
                order.append(t)
        i += 1
    return order


def canonical_key(dfa: DFA) -> bytes:
    """Canonical form of the language: the minimal DFA's transition table in BFS order."""
    m = dfa if dfa.minimal else minimize(dfa)
    return np.int8(m.n_states).tobytes() + m.delta.astype(np.int8).tobytes()


# --------------------------------------------------------------------------- generate
class DFAConfig(BaseModel):
    """The distribution of random DFAs (defaults: the paper's)."""

    model_config = ConfigDict(extra="forbid")

    min_states: int = 4
    max_states: int = 12
    min_alphabet: int = 4
    max_alphabet: int = N_SYMBOLS
    min_out_degree: int = 1
    max_out_degree: int = MAX_OUT_DEGREE


DEFAULT_DFA = DFAConfig()  # the default of the functions below (shared: never mutate it)


def random_dfa_raw(
    rng: np.random.Generator, cfg: DFAConfig = DEFAULT_DFA
) -> tuple[DFA, np.ndarray]:
    """One random DFA before minimisation, and its alphabet. States U{4..12}, alphabet
    U{4..18}, out-degree U{1..3}; each state's edge symbols and targets drawn without
    replacement, no self-loops."""
    n = int(rng.integers(cfg.min_states, cfg.max_states + 1))
    k_alpha = int(rng.integers(cfg.min_alphabet, cfg.max_alphabet + 1))
    alphabet = rng.choice(N_SYMBOLS, size=k_alpha, replace=False)
    delta = np.full((n, N_SYMBOLS), -1, dtype=np.int64)
    for s in range(n):
        k = int(rng.integers(cfg.min_out_degree, cfg.max_out_degree + 1))
        k = min(k, k_alpha, n - 1)
        symbols = rng.choice(alphabet, size=k, replace=False)
        targets = rng.choice(np.array([t for t in range(n) if t != s]), size=k, replace=False)
        delta[s, symbols] = targets
    return DFA(delta), np.sort(alphabet)


def random_dfa(rng: np.random.Generator, cfg: DFAConfig = DEFAULT_DFA) -> DFA:
    """One random DFA (:func:`random_dfa_raw`), minimised."""
    return minimize(random_dfa_raw(rng, cfg)[0])


def dfa_set(
    n: int,
    seed: int,
    exclude: set[bytes] | None = None,
    cfg: DFAConfig = DEFAULT_DFA,
    max_tries: int = 1000,
) -> list[DFA]:
    """``n`` DFAs with distinct languages, none whose canonical form is in ``exclude``."""
    rng = np.random.default_rng([seed, 0xDFA])
    exclude = exclude or set()
    out, keys = [], set()
    tries = 0
    while len(out) < n:
        d = random_dfa(rng, cfg)
        k = d.key()
        tries += 1
        if k in keys or k in exclude:
            if tries > max_tries * max(n, 1):
                raise RuntimeError(f"could only find {len(out)} distinct DFAs of {n}")
            continue
        keys.add(k)
        out.append(d)
    return out


class PromptConfig(BaseModel):
    """How prompts are sampled from a DFA (defaults: our scale-down of the paper)."""

    model_config = ConfigDict(extra="forbid")

    min_strings: int = 5
    max_strings: int = 10
    min_len: int = 1
    max_len: int = 20

    @property
    def max_tokens(self) -> int:
        return self.max_strings * (self.max_len + 1) - 1


DEFAULT_PROMPT = PromptConfig()  # the default of the functions below (shared: never mutate it)


class DFATables:
    """Edge tables of many DFAs, for vectorised random walks.

    ``sym[d, s, e]`` / ``tgt[d, s, e]``: symbol and target of edge ``e`` of state ``s`` of
    DFA ``d``; ``deg[d, s]`` the out-degree."""

    def __init__(self, dfas: Sequence[DFA]):
        S = max(d.n_states for d in dfas)
        E = max(int((d.delta >= 0).sum(1).max()) for d in dfas)
        self.sym = np.zeros((len(dfas), S, E), dtype=np.int64)
        self.tgt = np.zeros((len(dfas), S, E), dtype=np.int64)
        self.deg = np.zeros((len(dfas), S), dtype=np.int64)
        for i, d in enumerate(dfas):
            for s in range(d.n_states):
                e = d.edges(s)
                self.sym[i, s, : len(e)] = e
                self.tgt[i, s, : len(e)] = d.delta[s, e]
                self.deg[i, s] = len(e)
        self.dfas = list(dfas)


def sample_prompts(
    tables: DFATables,
    dfa_ids: np.ndarray,
    rng: np.random.Generator,
    cfg: PromptConfig = DEFAULT_PROMPT,
) -> list[np.ndarray]:
    """One prompt per entry of ``dfa_ids``: U{min..max}_strings random walks of length
    U{min..max}_len from state 0, joined by SEP. Returns int64 token arrays."""
    dfa_ids = np.asarray(dfa_ids)
    n_str = rng.integers(cfg.min_strings, cfg.max_strings + 1, size=len(dfa_ids))
    owner = np.repeat(np.arange(len(dfa_ids)), n_str)  # string -> prompt
    d = dfa_ids[owner]
    lengths = rng.integers(cfg.min_len, cfg.max_len + 1, size=len(owner))
    walk = np.zeros((len(owner), cfg.max_len), dtype=np.int64)
    state = np.zeros(len(owner), dtype=np.int64)
    u = rng.random((len(owner), cfg.max_len))
    for t in range(cfg.max_len):  # all strings step together
        e = np.floor(u[:, t] * tables.deg[d, state]).astype(np.int64)
        walk[:, t] = tables.sym[d, state, e]
        state = tables.tgt[d, state, e]
    prompts: list[list[int]] = [[] for _ in dfa_ids]
    for i, (p, L) in enumerate(zip(owner.tolist(), lengths.tolist(), strict=True)):
        if prompts[p]:
            prompts[p].append(SEP)
        prompts[p].extend(walk[i, :L].tolist())
    return [np.asarray(p, dtype=np.int64) for p in prompts]


def pad_batch(prompts: Sequence[np.ndarray], length: int | None = None) -> torch.Tensor:
    """Right-pad token arrays with PAD into ``[batch, pos]``."""
    T = length or max(len(p) for p in prompts)
    out = torch.full((len(prompts), T), PAD, dtype=torch.long)
    for i, p in enumerate(prompts):
        p = p[:T]
        out[i, : len(p)] = torch.as_tensor(p)
    return out


def packed_batch_fn(
    dfas: Sequence[DFA],
    batch_size: int,
    seed: int,
    cfg: PromptConfig = DEFAULT_PROMPT,
    pool_factor: int = 4,
):
    """``batch_fn(step) -> [batch, pos]`` for training: prompts from random DFAs of ``dfas``,
    packed by length. Each step samples ``pool_factor * batch_size`` prompts, sorts them by
    length and returns one random contiguous chunk (every prompt is equally likely to be
    used, so the prompt distribution is unchanged, while padding shrinks)."""
    tables = DFATables(dfas)

    def batch_fn(step: int) -> torch.Tensor:
        rng = np.random.default_rng([seed, step])
        ids = rng.integers(0, len(dfas), size=pool_factor * batch_size)
        prompts = sorted(sample_prompts(tables, ids, rng, cfg), key=len)
        c = int(rng.integers(0, pool_factor))
        return pad_batch(prompts[c * batch_size : (c + 1) * batch_size])  # [batch, longest prompt]

    return batch_fn


# --------------------------------------------------------------------------- oracle
def oracle_states(dfa: DFA, tokens: Sequence[int]) -> np.ndarray:
    """State after each token (after SEP: the start state); -1 after a rejected prefix or PAD."""
    out = np.full(len(tokens), -1, dtype=np.int64)
    state = 0
    for i, t in enumerate(tokens):
        t = int(t)
        if t == SEP:
            state = 0
        elif t == PAD or state < 0:
            state = -1
        else:
            state = int(dfa.delta[state, t])
        out[i] = state
    return out


def valid_next(dfa: DFA, prefix: Sequence[int]) -> set[int]:
    """Valid next symbols after ``prefix`` (tokens; only the part after the last SEP
    matters). Empty if the prefix is rejected."""
    if len(prefix) == 0:
        return set(dfa.edges(0).tolist())
    s = oracle_states(dfa, prefix)[-1]
    return set() if s < 0 else set(dfa.edges(int(s)).tolist())


def next_distribution(dfa: DFA, prefix: Sequence[int]) -> np.ndarray:
    """True next-symbol distribution over the vocabulary (uniform over the valid symbols)."""
    p = np.zeros(VOCAB_SIZE)
    v = sorted(valid_next(dfa, prefix))
    if v:
        p[v] = 1.0 / len(v)
    return p


def valid_mask(dfa: DFA, tokens: Sequence[int]) -> np.ndarray:
    """``[pos, VOCAB_SIZE]`` bool: valid next symbols after ``tokens[: i + 1]``, every ``i``."""
    states = oracle_states(dfa, tokens)
    mask = np.zeros((len(tokens), VOCAB_SIZE), dtype=bool)
    ok = states >= 0
    mask[ok, :N_SYMBOLS] = dfa.delta[states[ok]] >= 0
    return mask


def scored_positions(tokens: torch.Tensor) -> torch.Tensor:
    """``[batch, pos]`` bool: positions ``i`` whose next token exists and is a symbol
    (not SEP, not PAD). These are the positions accuracy and TVD are measured on."""
    nxt = torch.full_like(tokens, PAD)
    nxt[:, :-1] = tokens[:, 1:]
    return (nxt < N_SYMBOLS) & (tokens != PAD)


def to_string(tokens: Iterable[int]) -> str:
    return "".join(TOKEN_STRINGS[int(t)] for t in tokens if int(t) != PAD)


def from_string(text: str) -> np.ndarray:
    return np.asarray([TOKEN_STRINGS.index(c) for c in text.replace(" ", "")], dtype=np.int64)


# ------------------------------------------------------------- test prompts, baselines, metrics
def test_prompts(
    dfas: Sequence[DFA], seed: int, cfg: PromptConfig
) -> tuple[torch.Tensor, np.ndarray, torch.Tensor]:
    """One prompt per DFA: tokens ``[n, T]`` (PAD-padded), lengths ``[n]``, and the oracle's
    valid-next mask ``[n, T, vocab]``."""
    rng = np.random.default_rng([seed, 11])
    prompts = sample_prompts(DFATables(dfas), np.arange(len(dfas)), rng, cfg)
    lengths = np.array([len(p) for p in prompts])
    T = int(lengths.max())
    tokens = torch.full((len(prompts), T), PAD, dtype=torch.long)
    valid = torch.zeros(len(prompts), T, len(TOKEN_STRINGS), dtype=torch.bool)
    for i, (p, d) in enumerate(zip(prompts, dfas, strict=True)):
        tokens[i, : len(p)] = torch.as_tensor(p)
        valid[i, : len(p)] = torch.as_tensor(valid_mask(d, p))
    return tokens, lengths, valid


@dataclass(frozen=True)
class NextToken:
    """How a predictor does at each position (NaN where not scored)."""

    correct: Float[torch.Tensor, "n T"]  # 1 where the greedy next token is valid, else 0
    tvd: Float[torch.Tensor, "n T"]  # TVD to uniform over the valid symbols


def next_token_metrics(probs: torch.Tensor, valid: torch.Tensor, scored: torch.Tensor) -> NextToken:
    """Per position ``[n, T]``: ``correct`` (greedy next token is valid) and ``tvd`` between
    ``probs`` ``[n, T, vocab]`` and uniform over the valid symbols; NaN where not scored."""
    greedy = probs.argmax(-1, keepdim=True)  # first maximum on ties
    correct = valid.gather(-1, greedy)[..., 0].float()
    true = valid.float() / valid.float().sum(-1, keepdim=True).clamp_min(1)
    tvd = 0.5 * (probs - true).abs().sum(-1)
    nan = torch.tensor(float("nan"))
    return NextToken(correct=torch.where(scored, correct, nan), tvd=torch.where(scored, tvd, nan))


def ngram_pattern(tokens: torch.Tensor, m: int) -> torch.Tensor:
    """Hard-wired n-gram attention ``[batch, query, key]``: row ``i`` is uniform over keys
    ``j <= i`` with ``x_{j-1-k} = x_{i-k}`` for ``k = 0..m-1`` (zero if there is none)."""
    B, T = tokens.shape
    match = torch.ones(B, T, T, dtype=torch.bool, device=tokens.device)
    for k in range(m):
        q = torch.full((B, T), -1, dtype=tokens.dtype, device=tokens.device)  # x_{i-k}
        kk = torch.full((B, T), -2, dtype=tokens.dtype, device=tokens.device)  # x_{j-1-k}
        q[:, k:] = tokens[:, : T - k]
        kk[:, k + 1 :] = tokens[:, : T - k - 1]
        match &= q[:, :, None] == kk[:, None, :]
    causal = torch.ones(T, T, dtype=torch.bool, device=tokens.device).tril()
    A = (match & causal).float()
    return A / A.sum(-1, keepdim=True).clamp_min(1.0)


def ngram_counts(tokens: torch.Tensor, n: int) -> torch.Tensor:
    """In-context counts ``[batch, T, N_SYMBOLS]``: how often each symbol followed the
    current (n-1)-token context earlier in the prompt (positions ``j <= i``). ``n = 1``:
    unigram counts of the prefix."""
    onehot = torch.nn.functional.one_hot(tokens, len(TOKEN_STRINGS))[
        ..., :N_SYMBOLS
    ].float()  # [b, T, sym]
    if n == 1:
        return onehot.cumsum(1)
    match = (ngram_pattern(tokens, n - 1) > 0).float()  # [b, query, key]
    return match @ onehot


def ngram_baseline(tokens: torch.Tensor, n: int) -> torch.Tensor:
    """In-context n-gram predictor with backoff: next-token distribution ``[batch, T, vocab]``
    from the highest order ``<= n`` whose context was seen followed by a symbol."""
    probs = torch.zeros(*tokens.shape, len(TOKEN_STRINGS))
    filled = torch.zeros(tokens.shape, dtype=torch.bool)
    for k in range(n, 0, -1):
        c = ngram_counts(tokens, k)
        tot = c.sum(-1)
        use = (tot > 0) & ~filled
        probs[..., :N_SYMBOLS][use] = (c / tot.clamp_min(1)[..., None])[use]
        filled |= use
    return probs


def ngram_baseline_loop(prompt: Sequence[int], n: int) -> list[int | None]:
    """Reference implementation (plain Python) of the greedy in-context n-gram predictor with
    backoff: the predicted symbol after each prefix ``prompt[: i + 1]`` (lowest id on ties)."""
    counts: list[dict[tuple, dict[int, int]]] = [dict() for _ in range(n + 1)]
    out: list[int | None] = []
    for i, x in enumerate(prompt):
        x = int(x)
        if x < N_SYMBOLS:  # record x as the successor of each context ending at i - 1
            for k in range(1, n + 1):
                if i - (k - 1) >= 0:
                    ctx = tuple(int(t) for t in prompt[i - (k - 1) : i])
                    counts[k].setdefault(ctx, {}).setdefault(x, 0)
                    counts[k][ctx][x] += 1
        pred = None
        for k in range(n, 0, -1):
            if i - (k - 2) < 0:
                continue
            ctx = tuple(int(t) for t in prompt[i - (k - 2) : i + 1]) if k > 1 else ()
            seen = counts[k].get(ctx)
            if seen:
                best = max(seen.values())
                pred = min(s for s, c in seen.items() if c == best)
                break
        out.append(pred)
    return out


def accuracy_difference(
    correct_a: torch.Tensor,
    correct_b: torch.Tensor,
    seed: int = 0,
    n_resamples: int = 2000,
    confidence: float = 0.95,
) -> dict[str, float]:
    """Pooled accuracy of ``a`` minus that of ``b`` (``correct_* [n, T]``, 1/0 where scored,
    NaN elsewhere; the same prompts and positions), with a paired bootstrap confidence
    interval over prompts (:func:`scipy.stats.bootstrap`, percentile; prompts are the
    independent units: one unseen DFA each). ``place``: ``"above"`` / ``"below"`` when the
    interval excludes 0, else ``"level with"``."""
    from scipy.stats import bootstrap

    scored = ~torch.isnan(correct_a)
    if not torch.equal(scored, ~torch.isnan(correct_b)):
        raise ValueError("the two predictors must be scored on the same positions")
    hits_a = torch.nan_to_num(correct_a).sum(1).double().numpy()  # [prompt]
    hits_b = torch.nan_to_num(correct_b).sum(1).double().numpy()
    n = scored.sum(1).double().numpy()

    def diff(ha, hb, nn, axis=-1):
        return (ha.sum(axis) - hb.sum(axis)) / nn.sum(axis)

    value = float(diff(hits_a, hits_b, n))
    ci = bootstrap(
        (hits_a, hits_b, n),
        diff,
        paired=True,
        vectorized=True,
        n_resamples=n_resamples,
        confidence_level=confidence,
        method="percentile",
        random_state=np.random.default_rng(seed),
    ).confidence_interval
    low, high = float(ci.low), float(ci.high)
    place = "above" if low > 0 else "below" if high < 0 else "level with"
    return {
        "difference": value,
        "ci_low": low,
        "ci_high": high,
        "confidence": confidence,
        "place": place,
    }


class DFADataConfig(BaseModel):
    """The training DFAs of a model: ``n_dfas`` distinct languages drawn with ``seed``."""

    model_config = ConfigDict(extra="forbid")

    n_dfas: int = 2500
    seed: int = 0
    dfa: DFAConfig = DFAConfig()
    prompt: PromptConfig = PromptConfig()

    def dfas(self) -> list[DFA]:
        return dfa_set(self.n_dfas, self.seed, cfg=self.dfa)
