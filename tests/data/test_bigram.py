"""Bigram statistics against brute-force counting."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from interp.data.bigram import Bigram


def brute_force(seqs, vocab):
    pairs, uni = Counter(), Counter()
    for s in seqs:
        uni.update(s)
        pairs.update(zip(s[:-1], s[1:]))
    table = np.zeros((vocab, vocab))
    total = sum(uni.values())
    for prev in range(vocab):
        ctx = sum(c for (p, _), c in pairs.items() if p == prev)
        for nxt in range(vocab):
            if ctx:
                table[prev, nxt] = pairs[(prev, nxt)] / ctx
            elif total:
                table[prev, nxt] = uni[nxt] / total
            else:
                table[prev, nxt] = 1 / vocab
    return pairs, uni, table


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_counts_and_probs_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    vocab = 12
    # token 11 never occurs; token 10 only ends a sequence (never a context)
    seqs = [list(rng.integers(0, 10, size=rng.integers(1, 30))) + [10] for _ in range(5)]
    pairs, uni, table = brute_force(seqs, vocab)
    bg = Bigram.from_tokens(seqs, vocab_size=vocab)
    dense_counts = bg.counts.toarray()
    for (p, n), c in pairs.items():
        assert dense_counts[p, n] == c
    assert dense_counts.sum() == sum(pairs.values())
    assert bg.unigram.tolist() == [uni[i] for i in range(vocab)]
    probs = bg.dense().double().numpy()
    np.testing.assert_allclose(probs, table, atol=1e-6)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-6)
    # unseen context 10 and 11 back off to the unigram distribution
    np.testing.assert_allclose(probs[11], [uni[i] / sum(uni.values()) for i in range(vocab)], atol=1e-6)


def test_one_stream_counts_pairs_across_everything():
    stream = np.array([1, 2, 1, 2, 3])
    bg = Bigram.from_tokens(stream, vocab_size=4)
    assert bg.counts[1, 2] == 2 and bg.counts[2, 1] == 1 and bg.counts[2, 3] == 1 and bg.n_pairs == 4
    # list of sequences: no pair across the boundary
    bg2 = Bigram.from_tokens([[1, 2], [1, 2, 3]], vocab_size=4)
    assert bg2.counts[2, 1] == 0 and bg2.counts[1, 2] == 2


def test_empty_stream_backs_off_to_uniform():
    bg = Bigram.from_tokens([[]], vocab_size=5)
    np.testing.assert_allclose(bg.dense().numpy(), np.full((5, 5), 0.2), atol=1e-7)


def test_surprisal_and_log_prob_agree_with_probs():
    rng = np.random.default_rng(3)
    stream = rng.integers(0, 8, size=200)
    bg = Bigram.from_tokens(stream, vocab_size=9)
    tokens = torch.tensor(rng.integers(0, 9, size=(4, 10)))
    s = bg.surprisal(tokens)
    assert s.shape == (4, 9)
    p = bg.probs(tokens[:, :-1])  # [4, 9, vocab]
    ref = -torch.log(p.gather(-1, tokens[:, 1:, None]).squeeze(-1).double()).numpy()
    np.testing.assert_allclose(s, ref, rtol=1e-5)
    # a pair never seen after a seen context has infinite surprisal
    assert np.isinf(bg.surprisal(np.array([[0, 8]]))).all()


def test_rejects_out_of_range_ids():
    with pytest.raises(ValueError, match="token ids"):
        Bigram.from_tokens(np.array([0, 5]), vocab_size=5)
