"""Tokenizers trained locally (no hub): byte-level BPE and word-level.

Both come back as ``transformers.PreTrainedTokenizerFast`` with a BOS token, a pad token,
``name_or_path`` set and ``add_bos_token=True`` (TransformerLens 4 needs both to use a
tokenizer built in code without calling the hub).
"""

from __future__ import annotations

from collections.abc import Iterable

# tokenizers and transformers are imported inside the functions: interp.data is imported by the
# plotting helpers for its shared names, and those never need a tokenizer.

BOS, PAD, EOS, UNK, MASK = "<|bos|>", "<|pad|>", "<|eos|>", "<|unk|>", "<|mask|>"
SPECIALS = [BOS, PAD, EOS, UNK, MASK]


def wrap_tokenizer(tok, name: str = "interp-local"):
    """Wrap a ``tokenizers.Tokenizer`` as a ``PreTrainedTokenizerFast``."""
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        mask_token=MASK,
        name_or_path=name,
        add_bos_token=True,
    )
    fast.padding_side = "right"
    return fast


def train_bpe(texts: Iterable[str], vocab_size: int = 2048, min_frequency: int = 2):
    """Byte-level BPE trained on ``texts`` (specials get ids 0..4: bos, pad, eos, unk, mask)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return wrap_tokenizer(tok, name=f"interp-bpe-{vocab_size}")


def word_tokenizer(words: Iterable[str]):
    """A whitespace word-level tokenizer over a fixed vocabulary (specials first)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    vocab = {s: i for i, s in enumerate(SPECIALS)}
    for w in words:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins tokens with spaces
    return wrap_tokenizer(tok, name=f"interp-words-{len(vocab)}")
