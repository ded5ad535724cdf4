"""Circuit tasks: paired prompts differ where the task says, answers follow the task's rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interp.data.sae_circuits import (
    NAMES,
    TASKS,
    make_task,
    single_tokens,
    template_corpus,
    template_sequence,
    template_vocab,
)
from interp.data.tokenizer import word_tokenizer


@pytest.fixture(scope="module")
def tok():
    return word_tokenizer(template_vocab())


def test_induction_pairs(tok):
    ps = make_task("induction", tok, 20, seed=0)
    c, k = ps.clean, ps.corrupt
    assert c.shape == k.shape == (20, 12) and ps.metric == "logprob"
    assert ((c != k).sum(1) == 1).all() and (c != k)[:, 1].all()  # only the first r_1 changes
    for i in range(20):
        last = c[i, -1].item()
        first = (c[i, :-1] == last).nonzero().flatten().tolist()
        assert len(first) == 1 and c[i, first[0] + 1] == ps.answer[i]  # A B ... A -> B
        assert (k[i, :-1] != last).all()  # corrupt: A never appeared before
    assert torch.equal(make_task("induction", tok, 20, seed=0).clean, c)
    assert not torch.equal(make_task("induction", tok, 20, seed=1).clean, c)


def test_ioi_pairs(tok):
    ps = make_task("ioi", tok, 30, seed=0)
    names = set(single_tokens(tok, NAMES).values())
    assert ps.clean.shape == ps.corrupt.shape and ((ps.clean != ps.corrupt).sum(1) == 1).all()
    for i in range(30):
        seen = [t for t in ps.clean[i].tolist() if t in names]
        assert (
            len(seen) == 3
            and seen.count(ps.wrong[i].item()) == 2
            and seen.count(ps.answer[i].item()) == 1
        )
        corrupt_names = [t for t in ps.corrupt[i].tolist() if t in names]
        assert len(set(corrupt_names)) == 3  # ABC: no name repeats, the answer is ambiguous
    orders = {tuple(ps.clean[i, 2:5:2].tolist()).index(ps.answer[i].item()) for i in range(30)}
    assert orders == {0, 1}  # both ABBA and BABA


def test_metrics_read_the_answer_position(tok):
    ps = make_task("ioi", tok, 4, seed=1)
    logits = torch.zeros(4, ps.clean.shape[1], len(tok))
    rows = torch.arange(4)
    logits[rows, ps.answer_pos, ps.answer] = 2.0
    logits[rows, ps.answer_pos, ps.wrong] = 0.5
    torch.testing.assert_close(ps.metric_fn()(logits, rows), torch.full((4,), 1.5))
    sub = ps.subset([2, 0])
    assert torch.equal(sub.clean, ps.clean[[2, 0]]) and len(sub) == 2


def test_greater_than_on_a_tokenizer_with_years():
    tok = word_tokenizer(
        "The war expedition drought rebellion dynasty siege lasted from the year to".split()
        + [str(c) for c in range(11, 19)]
        + [f"{i:02d}" for i in range(100)]
    )
    # A word tokenizer splits "1732" into nothing useful; give it the years as two tokens.
    from interp.data import sae_circuits as circuits

    old = circuits.GT_TEMPLATE
    circuits.GT_TEMPLATE = (
        "The {noun} lasted from the year {century} {yy:02d} to the year {century}"
    )
    try:
        ps = make_task("greater_than", tok, 8, seed=0)
    finally:
        circuits.GT_TEMPLATE = old
    assert ps.metric == "prob_diff" and ps.good_mask.shape == (8, len(tok))
    assert not (ps.good_mask & ps.bad_mask).any()
    # uniform logits: p(good) - p(bad) = (#good - #bad) / vocab
    logits = torch.zeros(8, ps.clean.shape[1], len(tok))
    expect = (ps.good_mask.sum(1) - ps.bad_mask.sum(1)).float() / len(tok)
    torch.testing.assert_close(ps.metric_fn()(logits, torch.arange(8)), expect)


def test_template_language(tok):
    x = template_corpus(tok, 16, 32, seed=0, mix={"ioi": 1, "induction": 1, "sentence": 1})
    assert x.shape == (16, 32) and (x[:, 0] == tok.bos_token_id).all()
    assert (x != tok.unk_token_id).all()
    words = template_sequence(np.random.default_rng(0), 200, {"sentence": 1.0})
    assert words.count(".") >= 10 and not any(w.startswith("s") and w[1:].isdigit() for w in words)


def test_unknown_task_is_a_clear_error(tok):
    assert {"induction", "ioi", "greater_than"} <= set(TASKS)
    with pytest.raises(KeyError, match="ioi"):
        make_task("iio", tok, 2, 0)


def test_tasks_build_from_any_tokenizer_or_say_what_is_missing():
    from interp.data.sae_circuits import make_induction, make_ioi, vocab_names
    from interp.data.tokenizer import train_bpe, word_tokenizer

    tok = train_bpe(
        [
            (
                "When Quinn and Peter went to the store, Peter gave a book to Quinn. "
                "Ursula and Otto sang. "
            )
            * 5
            + " ".join(f"w{i}" for i in range(300))
        ]
        * 20,
        vocab_size=400,
    )
    ind = make_induction(tok, 5, seed=0)  # none of our s0..s31 symbols: any distinct tokens serve
    assert (
        ind.clean.shape == (5, 12)
        and (ind.clean[:, -1] == ind.clean[:, 1 if tok.bos_token_id is not None else 0]).all()
    )
    assert {"Quinn", "Peter", "Ursula", "Otto"} <= set(
        vocab_names(tok)
    )  # names not in our list, read off the vocabulary
    ioi = make_ioi(
        tok, 2, seed=0
    )  # (a tiny BPE splits the template's other words unevenly: few equal lengths)
    from interp.data.sae_circuits import single_tokens

    names = set(single_tokens(tok, vocab_names(tok)).values())
    assert ioi.clean.shape[0] == 2 and set(ioi.answer.tolist()) <= names
    bare = word_tokenizer(["a", "b", "c"])
    with pytest.raises(ValueError, match="ioi needs at least 3 single-token names"):
        make_ioi(bare, 2, seed=0)
    with pytest.raises(ValueError, match="distinct non-special tokens"):
        make_induction(bare, 2, seed=0)


def test_docstring_pairs_rename_the_next_argument_and_say_what_is_missing():
    from interp.data.sae_circuits import (
        DOC_ARGS,
        DOC_FUNCS,
        DOC_TEMPLATE,
        DOC_WORDS,
        make_docstring,
    )
    from interp.data.tokenizer import train_bpe, word_tokenizer

    rng = np.random.default_rng(0)
    words = DOC_WORDS + DOC_FUNCS + DOC_ARGS + ["Load", "Update", "Check", "Process"]
    text = (
        " ".join(
            DOC_TEMPLATE.format(
                fn=rng.choice(DOC_FUNCS),
                desc="Load",
                word=rng.choice(DOC_WORDS),
                wa=rng.choice(DOC_WORDS),
                wb=rng.choice(DOC_WORDS),
                A=rng.choice(DOC_ARGS),
                B=rng.choice(DOC_ARGS),
                C=rng.choice(DOC_ARGS),
            )
            for _ in range(200)
        )
        + " "
        + " ".join(words)
    )
    tok = train_bpe([text] * 5, vocab_size=800)
    ps = make_docstring(tok, 2, seed=0)  # a tiny BPE splits some words: few equal lengths
    assert ps.clean.shape == ps.corrupt.shape and ps.metric == "logit_diff"
    differs = ps.clean != ps.corrupt
    assert (differs.sum(1) == 1).all()  # only the third argument's name in the signature
    pair_rows = torch.arange(2)
    where = differs.int().argmax(1)
    assert (ps.clean[pair_rows, where] == ps.answer).all() and (
        ps.corrupt[pair_rows, where] == ps.wrong
    ).all()
    assert (ps.answer != ps.wrong).all() and ps.texts[0].rstrip().endswith(":param")
    with pytest.raises(ValueError, match="docstring needs >= 4 single-token argument names"):
        make_docstring(word_tokenizer(["a", "b"]), 2, seed=0)
