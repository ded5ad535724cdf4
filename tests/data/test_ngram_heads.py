"""Random DFAs: hand-written automata for the oracle and minimisation, the generation
distributions, prompt sampling, and disjoint train/test sets."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from interp.data.ngram_heads import (
    N_SYMBOLS,
    PAD,
    SEP,
    DFATables,
    PromptConfig,
    canonical_key,
    dfa_set,
    from_edges,
    from_string,
    minimize,
    next_distribution,
    oracle_states,
    packed_batch_fn,
    random_dfa_raw,
    sample_prompts,
    scored_positions,
    to_string,
    valid_mask,
    valid_next,
)

A, B, C, D = 0, 1, 2, 3


@pytest.fixture
def abab():
    """(ab)* prefixes: 0 -a-> 1 -b-> 0."""
    return from_edges(2, [(0, A, 1), (1, B, 0)])


def test_oracle_on_hand_written_automaton(abab):
    assert valid_next(abab, []) == {A}
    assert valid_next(abab, from_string("a")) == {B}
    assert valid_next(abab, from_string("ab")) == {A}
    assert valid_next(abab, from_string("aba")) == {B}
    assert valid_next(abab, from_string("ab|")) == {A}  # the separator restarts at state 0
    assert valid_next(abab, from_string("aba|a")) == {B}
    assert valid_next(abab, from_string("b")) == set()  # rejected prefix
    assert abab.accepts(from_string("abab")) and not abab.accepts(from_string("aa"))
    np.testing.assert_array_equal(oracle_states(abab, from_string("ab|a")), [1, 0, 0, 1])


def test_true_distribution_is_uniform_over_valid_edges():
    # 0 -a-> 1, 0 -b-> 2, 0 -c-> 3; 1,2,3 -d-> 0
    dfa = from_edges(4, [(0, A, 1), (0, B, 2), (0, C, 3), (1, D, 0), (2, D, 0), (3, D, 0)])
    p = next_distribution(dfa, [])
    np.testing.assert_allclose(p[[A, B, C]], 1 / 3)
    assert p.sum() == pytest.approx(1.0) and p[SEP] == 0 and p[PAD] == 0
    np.testing.assert_allclose(next_distribution(dfa, from_string("b")), np.eye(20)[D])
    mask = valid_mask(dfa, from_string("ad|b"))
    assert [set(np.flatnonzero(r)) for r in mask] == [{D}, {A, B, C}, {A, B, C}, {D}]


def test_minimise_merges_equivalent_states_and_drops_unreachable():
    # 1 and 2 have the same future (c -> 0); state 3 is unreachable
    dfa = from_edges(4, [(0, A, 1), (0, B, 2), (1, C, 0), (2, C, 0), (3, A, 0)])
    m = minimize(dfa)
    assert m.n_states == 2
    expected = from_edges(2, [(0, A, 1), (0, B, 1), (1, C, 0)])
    assert canonical_key(dfa) == canonical_key(expected)
    # a different language has a different key
    assert canonical_key(dfa) != canonical_key(from_edges(2, [(0, A, 1), (1, C, 0)]))
    # the language survives minimisation
    for s in ["acbc", "ac", "bcac", "ab", "cc"]:
        assert dfa.accepts(from_string(s)) == m.accepts(from_string(s))


def test_canonical_key_ignores_state_numbering():
    rng = np.random.default_rng(0)
    for _ in range(30):
        dfa, _ = random_dfa_raw(rng)
        n = dfa.n_states
        perm = np.concatenate(
            [[0], 1 + rng.permutation(n - 1)]
        )  # old state -> new state, start fixed
        delta = np.full_like(dfa.delta, -1)
        for s in range(n):
            delta[perm[s]] = np.where(dfa.delta[s] >= 0, perm[np.maximum(dfa.delta[s], 0)], -1)
        from interp.data.ngram_heads import DFA

        assert canonical_key(DFA(delta)) == canonical_key(dfa)


def test_generation_distributions():
    rng = np.random.default_rng(1)
    states, alpha, degrees = Counter(), Counter(), Counter()
    n = 1500
    for _ in range(n):
        dfa, alphabet = random_dfa_raw(rng)
        states[dfa.n_states] += 1
        alpha[len(alphabet)] += 1
        for s in range(dfa.n_states):
            edges = dfa.edges(s)
            targets = dfa.delta[s, edges]
            degrees[len(edges)] += 1
            assert s not in targets  # no self-loops
            assert len(set(targets.tolist())) == len(targets)  # targets without replacement
            assert set(edges.tolist()) <= set(alphabet.tolist())
    assert sorted(states) == list(range(4, 13))
    assert sorted(alpha) == list(range(4, 19))
    assert sorted(degrees) == [1, 2, 3]
    # uniform: every value within 30% of its expected count
    for counter, k in ((states, 9), (alpha, 15)):
        for v in counter.values():
            assert abs(v - n / k) < 0.3 * n / k
    total = sum(degrees.values())
    for v in degrees.values():
        assert abs(v - total / 3) < 0.1 * total / 3


def test_minimised_dfas_every_state_has_an_edge():
    for d in dfa_set(200, seed=3):
        assert d.minimal
        assert all(len(d.edges(s)) >= 1 for s in range(d.n_states))
        assert minimize(d).delta.tolist() == d.delta.tolist()  # minimal and canonical already


def test_prompt_sampling_follows_the_dfa_uniformly():
    dfa = from_edges(4, [(0, A, 1), (0, B, 2), (0, C, 3), (1, D, 0), (2, D, 0), (3, D, 0)])
    cfg = PromptConfig(min_strings=5, max_strings=10, min_len=1, max_len=20)
    rng = np.random.default_rng(0)
    prompts = sample_prompts(DFATables([dfa]), np.zeros(400, dtype=int), rng, cfg)
    firsts = Counter()
    for p in prompts:
        strings = to_string(p).split("|")
        assert 5 <= len(strings) <= 10
        for s in strings:
            assert 1 <= len(s) <= 20
            assert dfa.accepts(from_string(s))
            firsts[s[0]] += 1
    total = sum(firsts.values())
    assert set(firsts) == {"a", "b", "c"}
    for v in firsts.values():
        assert abs(v / total - 1 / 3) < 0.05


def test_train_and_test_sets_are_disjoint():
    train = dfa_set(300, seed=0)
    keys = {d.key() for d in train}
    assert len(keys) == 300  # distinct languages
    test = dfa_set(100, seed=1, exclude=keys)
    assert not ({d.key() for d in test} & keys)
    assert len({d.key() for d in test}) == 100


def test_packed_batches_are_seeded_and_valid():
    dfas = dfa_set(20, seed=0)
    fn = packed_batch_fn(dfas, batch_size=8, seed=0)
    a, b = fn(3), fn(3)
    assert torch.equal(a, b) and not torch.equal(fn(3), fn(4))
    lengths = (a != PAD).sum(1)
    for row, n in zip(a, lengths, strict=True):
        assert (row[:n] != PAD).all() and (row[n:] == PAD).all()  # right padding only
        toks = row[:n].tolist()
        assert toks[0] < N_SYMBOLS and toks[-1] < N_SYMBOLS
        # some training DFA accepts every string of the prompt
        strings = to_string(toks).split("|")
        assert any(all(d.accepts(from_string(s)) for s in strings) for d in dfas)


def test_scored_positions_skip_the_symbol_before_a_separator():
    t = torch.tensor([from_string("ab|ba").tolist() + [PAD]])
    np.testing.assert_array_equal(
        scored_positions(t)[0].numpy(), [True, False, True, True, False, False]
    )
