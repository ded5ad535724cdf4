"""Synthetic facts: disjoint groups, no training leakage of the reverse direction, held-out
paraphrases never trained, encoding puts the target where it says."""

from __future__ import annotations

import numpy as np
import pytest

from interp.data.reversal import DIRECTIONS, GROUPS, TRAINED, FactsConfig, make_facts


@pytest.fixture(params=["token", "text"])
def facts(request):
    return make_facts(
        FactsConfig(
            variant=request.param, n_pairs=30, n_train_templates=6, n_heldout_templates=3, seed=1
        )
    )


def _find(seq: list[str], sub: tuple[str, ...]) -> list[int]:
    return [i for i in range(len(seq) - len(sub) + 1) if tuple(seq[i : i + len(sub)]) == sub]


def test_groups_are_disjoint_equal_and_cover_every_pair(facts):
    members = {g: {p.index for p in facts.group_pairs(g)} for g in GROUPS}
    assert sum(len(s) for s in members.values()) == len(facts.pairs) == 30
    assert all(len(s) == 10 for s in members.values())
    assert not (members["name_first"] & members["desc_first"]) and not (
        members["both"] & members["name_first"]
    )
    assert not (members["both"] & members["desc_first"])
    # entities are unique: no name or description shared by two pairs
    assert len({p.name for p in facts.pairs}) == len({p.desc for p in facts.pairs}) == 30


def test_no_training_sentence_states_a_fact_in_its_untrained_direction(facts):
    train = facts.training_examples()
    by_pair = {}
    for ex in train:
        words = ex.text.split()
        p = facts.pairs[ex.pair]
        name_at, desc_at = _find(words, p.name), _find(words, p.desc)
        assert len(name_at) == 1 and len(desc_at) == 1, ex.text
        by_pair.setdefault(p.index, set()).add("n2d" if name_at[0] < desc_at[0] else "d2n")
        # the sentence mentions no other entity
        for q in facts.pairs:
            if q.index != p.index:
                assert not _find(words, q.name) and not _find(words, q.desc)
    for p in facts.pairs:
        assert by_pair[p.index] == set(TRAINED[p.group]), p
    # and the reversed queries of one-direction groups are absent from the training text
    trained_texts = {ex.text for ex in train}
    for g, d in (("name_first", "d2n"), ("desc_first", "n2d")):
        assert not trained_texts & {ex.text for ex in facts.examples(d, "train", [g])}
    n_t = facts.config.n_train_templates
    assert len(train) == n_t * (10 + 10 + 2 * 10)


def test_heldout_paraphrases_are_never_trained(facts):
    for d in DIRECTIONS:
        train = {(t.prefix, t.connective) for t in facts.templates_of(d, "train")}
        held = {(t.prefix, t.connective) for t in facts.templates_of(d, "heldout")}
        assert len(train) == 6 and len(held) == 3 and not train & held
    trained_texts = {ex.text for ex in facts.training_examples()}
    for d in DIRECTIONS:
        assert not trained_texts & {ex.text for ex in facts.examples(d, "heldout")}


def test_entity_lengths_per_variant(facts):
    lengths = {(len(p.name), len(p.desc)) for p in facts.pairs}
    assert lengths == ({(1, 1)} if facts.config.variant == "token" else {(2, 4)})


def test_encode_puts_the_target_after_the_prompt(facts):
    tok = facts.tokenizer()
    for d in DIRECTIONS:
        ex = facts.examples(d, "heldout")
        tokens, plen = facts.encode(ex, tok)
        assert tokens.shape == (len(ex), facts.seq_len)
        assert (tokens[:, 0] == tok.bos_token_id).all() and not (tokens == tok.unk_token_id).any()
        targets = facts.target_ids([facts.pairs[e.pair] for e in ex], d, tok)
        T = targets.shape[1]
        got = np.stack([tokens[i, plen[i] : plen[i] + T] for i in range(len(ex))])
        np.testing.assert_array_equal(got, targets)
        assert tok.decode(tokens[0, 1 : plen[0]].tolist()) == " ".join(ex[0].prompt)
        # everything after the target is padding
        for i in range(len(ex)):
            assert (tokens[i, plen[i] + T :] == tok.pad_token_id).all()


def test_facts_are_deterministic_in_the_config():
    a = make_facts(FactsConfig(n_pairs=12, seed=3))
    b = make_facts(FactsConfig(n_pairs=12, seed=3))
    c = make_facts(FactsConfig(n_pairs=12, seed=4))
    assert a.pairs == b.pairs and a.templates == b.templates
    assert a.pairs != c.pairs


def test_bad_configs_are_rejected():
    with pytest.raises(ValueError, match="multiple of 3"):
        FactsConfig(n_pairs=10)
    with pytest.raises(ValueError, match="templates"):
        FactsConfig(n_train_templates=100, n_heldout_templates=10)
