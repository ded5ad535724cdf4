"""Tokenizers trained locally (interp/data/tokenizer.py)."""

from __future__ import annotations

from interp.data.tokenizer import BOS, MASK, PAD, SPECIALS, train_bpe, word_tokenizer


def test_bpe_round_trips_text_and_puts_the_specials_first():
    texts = ["def f(x):\n    return x + 1\n"] * 20 + ["class A:\n    pass\n"] * 20
    tok = train_bpe(texts, vocab_size=300)
    assert [tok.convert_tokens_to_ids(s) for s in SPECIALS] == [0, 1, 2, 3, 4]
    ids = tok.encode("def f(x):\n    return x", add_special_tokens=False)
    assert tok.decode(ids) == "def f(x):\n    return x"
    assert (
        len(tok) <= 300 and tok.bos_token == BOS and tok.pad_token == PAD and tok.mask_token == MASK
    )
    assert tok.name_or_path == "interp-bpe-300"  # TransformerLens needs a name to skip the hub


def test_word_tokenizer_keeps_its_vocabulary_in_order():
    tok = word_tokenizer(["alice", "is", "bob", "is"])
    assert len(tok) == len(SPECIALS) + 3
    ids = tok.encode("alice is bob", add_special_tokens=False)
    assert ids == [5, 6, 7] and tok.decode(ids) == "alice is bob"
    assert tok.encode("carol", add_special_tokens=False) == [tok.unk_token_id]
