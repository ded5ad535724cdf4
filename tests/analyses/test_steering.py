"""The steering analysis end to end on a tiny zoo transformer with its own BPE tokenizer (random
weights): every sanity criterion holds, every claim is reported with a number, the result saves."""

from __future__ import annotations

import math

import numpy as np
import pytest

import interp

SMALL = dict(
    n_prompts=2,
    max_new_tokens=4,
    n_heldout=2,
    n_train_pairs=4,
    coefs=[0.0, 2.0, 8.0],
    sae_tokens=120,
    sae_steps=20,
    sae_width=2,
)


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory):
    from interp.data.steering import BEHAVIOURS, TOPICS
    from interp.data.tokenizer import train_bpe
    from interp.models.transformer import build_transformer
    from interp.tracing.model import Model
    from tests.conftest import build_spec

    texts = [" ".join(x for q in BEHAVIOURS["optimism"] for x in q)] * 5
    texts += [" ".join(t["prompts"] + t["heldout"] + t["words"]) for t in TOPICS.values()] * 5
    tok = train_bpe(texts, vocab_size=400)
    spec = build_spec(n_ctx=256, d_vocab=len(tok))
    m = Model(
        build_transformer(spec, tokenizer=tok),
        backend="tl",
        kind="transformer",
        tokenizer=tok,
        model_id="tiny-lm",
        spec={"builder": "transformer", "spec": spec.model_dump(mode="json")},
    )
    path = tmp_path_factory.mktemp("steer_lm") / "m"
    m.save(path)
    return path


def test_steering_end_to_end(lm_dir, tmp_path):
    result = interp.analyses.get("steering").run({"model": str(lm_dir), "layer": 1, **SMALL})
    sanity = {c.name: c for c in result.criteria if c.kind == "sanity"}
    assert set(sanity) == {
        "coef0_equals_unsteered",
        "cache_equals_recompute",
        "greedy_equals_reference",
        "sae_clamp_own_value_is_identity",
    }
    assert all(c.holds for c in sanity.values()), result.summary()
    claims = {c.name: c for c in result.criteria if c.kind == "claim"}
    assert len(claims) == 5
    for name in (
        "topic_relevance_rises_with_coef",
        "caa_moves_with_sign",
        "sae_latent_promotes_its_tokens",
    ):
        assert math.isfinite(claims[name].value), name
    mt = result.metrics
    assert mt["coefs"] == [0.0, 2.0, 8.0] and len(mt["topic_relevance"]) == 3
    assert len(mt["examples"]) == 2 and "unsteered" in mt["examples"][0]
    assert 0.0 <= mt["caa"]["zero"] <= 1.0
    assert result.arrays["caa_vector"].shape == (32,)
    assert np.all(np.isfinite(result.arrays["heldout_loss"]))
    result.save(tmp_path / "run")
    assert interp.Result.load(tmp_path / "run").figure("topic_relevance") is not None


def test_steering_rejects_models_it_cannot_steer(lm_dir, tmp_path, tiny_rnn):
    with pytest.raises(ValueError, match="layers"):
        interp.analyses.get("steering").run({"model": str(lm_dir), "layer": 7, **SMALL})
    tiny_rnn.save(tmp_path / "rnn")
    with pytest.raises(ValueError, match="transformer"):
        interp.analyses.get("steering").run({"model": str(tmp_path / "rnn"), **SMALL})


def test_doubling_coefficient_and_topics():
    from interp.analyses.steering import doubling_coef
    from interp.data.steering import ab_items, split_ab

    assert doubling_coef([0.0, 1.0, 2.0], np.array([-5.0, -4.5, -4.0])) == 2
    assert doubling_coef([0.0, 1.0], np.array([-5.0, -4.9])) is None
    items = ab_items("optimism", seed=0)
    assert all(it.prompt.endswith("(") and {it.matching, it.other} == {"A", "B"} for it in items)
    assert {it.matching for it in items} == {"A", "B"}  # the letter order is drawn
    train, test = split_ab(items, 5)
    assert len(train) == 5 and len(test) == len(items) - 5
    with pytest.raises(ValueError, match="n_train"):
        split_ab(items, len(items))
