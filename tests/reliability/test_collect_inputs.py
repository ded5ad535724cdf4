"""collect never returns a silently wrong result: bad positions, lengths, dtypes and datasets are
refused, and padding comes from the tokenizer, not from guessing at pad ids."""

from __future__ import annotations

import pytest
import torch

import interp

HOOK = "blocks.1.hook_resid_post"


def _toks(n=4, t=6):
    return torch.randint(1, 50, (n, t), generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize(
    "positions",
    [slice(5, 2), slice(10, 20), slice(0, 4, 0), slice(0.5, 3)],
    ids=["empty", "out-of-range", "step-0", "float"],
)
def test_empty_or_out_of_range_slices_are_refused(tiny_gpt, positions):
    with pytest.raises(ValueError, match="positions="):
        interp.collect(tiny_gpt, _toks(), hooks=[HOOK], positions=positions)
    assert interp.collect(tiny_gpt, _toks(), hooks=[HOOK], positions=slice(-3, None))[
        HOOK
    ].shape == (4, 3, 32)


@pytest.mark.parametrize(
    "lengths, says",
    [
        ([6, 7, 6, 6], r"lengths\[1\] = 7 is outside 1..6"),
        ([6, 0, 6, 6], r"lengths\[1\] = 0"),
        ([6, -2, 6, 6], r"lengths\[1\] = -2"),
        ([6, 2.5, 6, 6], "whole numbers"),
    ],
)
def test_lengths_outside_the_sequence_are_refused_not_clamped(tiny_gpt, lengths, says):
    with pytest.raises(ValueError, match=says):
        interp.collect(tiny_gpt, _toks(), hooks=[HOOK], positions="last", lengths=lengths)


def test_integer_dtype_is_refused(tiny_gpt):
    with pytest.raises(ValueError, match="would truncate activations"):
        interp.collect(tiny_gpt, _toks(), hooks=[HOOK], dtype=torch.int8)


def test_a_dict_or_set_dataset_is_refused(tiny_gpt):
    with pytest.raises(TypeError, match="not a dict"):
        interp.collect(tiny_gpt, {"input_ids": _toks()}, hooks=[HOOK])
    with pytest.raises(TypeError, match="not a set"):
        interp.collect(tiny_gpt, {"a b", "b a"}, hooks=[HOOK])


def _word_model(tiny_gpt):
    """tiny_gpt's weights behind a word-level tokenizer whose pad == EOS == BOS == id 0."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from interp.models.builders import builder_for
    from interp.models.io import _native, canonical_state_dict, load_canonical_state_dict
    from interp.tracing.model import Model

    vocab = {"<eos>": 0, **{f"w{i}": i for i in range(1, 50)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<eos>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        name_or_path="words",
        bos_token="<eos>",
        eos_token="<eos>",
        pad_token="<eos>",
        unk_token="<eos>",
        add_bos_token=True,
    )
    build, _ = builder_for("transformer")
    module = build(tiny_gpt.spec["spec"], hf_tok)
    load_canonical_state_dict(_native(module), canonical_state_dict(_native(tiny_gpt.module)))
    return Model(module.eval(), backend="tl", tokenizer=hf_tok, kind="transformer", model_id="word")


def test_padding_comes_from_the_tokenizer_when_pad_is_eos(tiny_gpt):
    m = _word_model(tiny_gpt)
    texts = ["w3 w4 <eos>", "w5", "w6 w7 w8 w9"]  # the first really ends in EOS (= the pad id)
    store = interp.collect(m, texts, hooks=[HOOK], positions="last")
    x = m.to_tokens(texts)
    assert x[0].tolist() == [0, 3, 4, 0, 0]  # BOS w3 w4 EOS, then one pad (== EOS)
    for i, n in enumerate([4, 2, 5]):  # the tokenizer's own counts (BOS included)
        _, acts = interp.trace(m, x[i : i + 1, :n], capture=[HOOK])
        torch.testing.assert_close(store[HOOK][i], acts[HOOK][0, -1])
    assert store.manifest.n_tokens == 4 + 2 + 5


def test_padding_is_right_even_when_the_tokenizer_pads_left(tiny_gpt):
    m = _word_model(tiny_gpt)
    m.tokenizer.padding_side = "left"
    texts = ["w3 w4", "w5 w6 w7 w8"]
    store = interp.collect(m, texts, hooks=[HOOK], positions="mean")
    assert m.to_tokens(texts)[0].tolist() == [0, 3, 4, 0, 0]  # right-padded all the same
    _, acts = interp.trace(m, m.to_tokens(texts)[:1, :3], capture=[HOOK])
    torch.testing.assert_close(store[HOOK][0], acts[HOOK][0].mean(0))
