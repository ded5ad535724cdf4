"""Bigram statistics against brute-force counting."""

from __future__ import annotations

from collections import Counter
from itertools import pairwise

import numpy as np
import pytest
import torch

from interp.data.bigram import Bigram


def brute_force(seqs, vocab):
    pairs, uni = Counter(), Counter()
    for s in seqs:
        uni.update(s)
        pairs.update(pairwise(s))
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
    np.testing.assert_allclose(
        probs[11], [uni[i] / sum(uni.values()) for i in range(vocab)], atol=1e-6
    )


def test_one_stream_counts_pairs_across_everything():
    stream = np.array([1, 2, 1, 2, 3])
    bg = Bigram.from_tokens(stream, vocab_size=4)
    assert (
        bg.counts[1, 2] == 2 and bg.counts[2, 1] == 1 and bg.counts[2, 3] == 1 and bg.n_pairs == 4
    )
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


@pytest.mark.parametrize("seed", [0, 1])
def test_sparse_targets_equal_the_dense_table(seed):
    rng = np.random.default_rng(seed)
    vocab = 30  # tokens 25..29 never occur as contexts: unigram backoff
    bg = Bigram.from_tokens(rng.integers(0, 25, size=400), vocab_size=vocab)
    table = bg.dense()
    tokens = torch.tensor(rng.integers(0, vocab, size=(3, 11)))
    target = bg.target_fn("cpu")(tokens)
    assert target.shape == (3, 11, vocab) and target.dtype == torch.float32
    torch.testing.assert_close(target, table[tokens], atol=0, rtol=0)
    assert bg.max_row_sum_error() == pytest.approx(
        float((table.double().sum(-1) - 1).abs().max()), abs=1e-7
    )
    assert (
        bg.max_row_sum_error() < 1e-5
        and bg.max_row_sum_error(rows_per_chunk=4) == bg.max_row_sum_error()
    )
    with pytest.raises(ValueError, match="context ids"):
        bg.probs(torch.tensor([vocab]))


def test_targets_at_a_50k_vocabulary_never_build_the_vocab_by_vocab_table(monkeypatch):
    import tracemalloc

    vocab = 50_257  # GPT-2's: a dense float32 table would be about 10 GB
    rng = np.random.default_rng(0)
    bg = Bigram.from_tokens(rng.integers(0, 300, size=2_000), vocab_size=vocab)
    monkeypatch.setattr(
        Bigram, "dense", lambda self: pytest.fail("dense() built the vocab x vocab table")
    )
    tokens = torch.tensor(rng.integers(0, vocab, size=(2, 16)))
    tokens[0, :8] = tokens[0, 0]  # repeated contexts share one row
    tracemalloc.start()
    try:
        target = bg.target_fn()(tokens)
        err = bg.max_row_sum_error()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert target.shape == (2, 16, vocab)
    assert peak < 200e6, f"peak numpy allocation {peak / 1e6:.0f} MB"  # dense would be >= 10,000 MB
    assert err < 1e-5
    tokens[1, 0] = 5  # a seen context (ids below 300 occur)
    target = bg.target_fn()(tokens)
    for t, row in ((int(tokens[1, 0]), target[1, 0]), (int(tokens[1, 1]), target[1, 1])):
        # each row is P(. | token) from the counts, or the unigram backoff where the context is
        # unseen
        ref = (
            bg.counts[t].toarray().ravel() / bg.context_counts[t]
            if bg.context_counts[t]
            else bg.backoff()
        )
        np.testing.assert_allclose(row.numpy(), ref, atol=1e-7)
