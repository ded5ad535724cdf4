"""The steering analysis's data: topics and A/B questions."""

from __future__ import annotations

import pytest

from interp.data import steering as D


def test_every_topic_has_what_the_analysis_reads():
    for name, t in D.TOPICS.items():
        assert {"plus", "minus", "words", "prompts", "heldout"} <= set(t), name
        assert len(t["prompts"]) >= 4 and len(t["heldout"]) >= 6 and t["words"]
        typed = D.topic(name)
        assert (typed.name, typed.plus, typed.words) == (name, t["plus"], t["words"])
    with pytest.raises(KeyError, match="known"):
        D.topic("nope")


def test_ab_items_are_seeded_balanced_and_end_before_the_letter():
    a, b = D.ab_items("optimism", seed=0), D.ab_items("optimism", seed=0)
    assert a == b and a != D.ab_items("optimism", seed=1)
    assert len(a) == len(D.BEHAVIOURS["optimism"])
    share = sum(it.matching == "A" for it in a) / len(a)
    assert 0.2 < share < 0.8
    for it, (q, yes, _) in zip(a, D.BEHAVIOURS["optimism"], strict=True):
        assert it.prompt.endswith("Answer: (") and q in it.prompt
        assert f"({it.matching}) {yes}" in it.prompt
    with pytest.raises(KeyError):
        D.ab_items("pessimism")
