"""The head-scorer family (interp.methods.sae_scores.family): the registry refuses duplicates
and names close matches, every member keeps the family's signature, and each member computes
what its function computes (no registry plumbing changes a score)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interp.methods.sae_scores import (
    Scored,
    ScoreInput,
    code_flip_grams,
    code_shift_scores,
    family,
    paired_shift_scores,
    paper_edge_scores,
    paper_node_scores,
)


def _input(seed: int = 0, n: int = 6, heads: int = 5) -> ScoreInput:
    rng = np.random.default_rng(seed)
    labels = np.r_[np.ones(n, bool), np.zeros(n, bool)]
    pairs = np.r_[np.arange(n), np.arange(n)]
    return ScoreInput(
        labels,
        pairs,
        heads,
        seed,
        n_perm=50,
        codes=rng.integers(0, 4, (2 * n, 1, heads)),
        feats=torch.as_tensor(rng.standard_normal((2 * n, 1, heads, 3))),
        act=rng.standard_normal((n, heads)),
        attr=rng.standard_normal((n, heads)),
    )


def test_the_registry_refuses_duplicates_and_names_close_matches():
    assert family.names()[:6] == [
        "paper_node",
        "paper_edge",
        "ours",
        "flip",
        "weighted",
        "raw_diff",
    ]
    with pytest.raises(ValueError, match="registered twice"):
        family.register("ours", label="again")(lambda x: Scored(np.zeros(x.n_heads)))
    with pytest.raises(KeyError, match="paper_node"):
        family.get("paper_nod")
    with pytest.raises(ValueError, match="'.'"):
        family.register("a.b", label="x")
    assert family.labels()["attr_patch"] == "attribution patching (baseline)"


def test_a_new_scorer_is_one_registration_and_joins_the_method_list(monkeypatch):
    from interp.analyses.sae_circuits import Config

    monkeypatch.setattr(family._SCORERS, "_items", dict(family._SCORERS._items))  # undone after
    family.register("norm", label="output norm")(
        lambda x: Scored(x.need("feats").norm(dim=-1).mean((0, 1)).numpy())
    )
    cfg = Config(features=["mean"], primary_features="mean")
    assert cfg.methods[-1] == "norm" and "norm" in cfg.scorers
    assert family.get("norm").fn(_input()).heads.shape == (5,)


def test_members_compute_what_their_functions_compute():
    x = _input()
    rows, labels = x.codes[:, 0], x.labels
    np.testing.assert_array_equal(
        family.get("paper_node").fn(x).heads, paper_node_scores(rows + 1, labels)
    )
    heads, edges = paper_edge_scores(rows, labels)
    got = family.get("paper_edge").fn(x)
    np.testing.assert_allclose(got.heads, heads)
    np.testing.assert_allclose(got.edges, edges)
    ours = code_shift_scores(rows, labels, x.pairs, 50, "chi2", 0)["score"]
    np.testing.assert_allclose(family.get("ours").fn(x).heads, ours)
    flip = paired_shift_scores(code_flip_grams(x.codes, labels, x.pairs), 50, 0)["score"]
    np.testing.assert_allclose(family.get("flip").fn(x).heads, flip)
    act = family.get("act_patch").fn(x)
    np.testing.assert_allclose(act.heads, np.abs(x.act.mean(0)))
    assert act.per_pair is x.act  # a magnitude scorer: its null flips these per pair
    assert (family.get("ties").fn(x).heads == 0).all()


def test_a_scorer_says_which_input_it_is_missing():
    x = ScoreInput(np.ones(2, bool), np.zeros(2, int), 3, 0)
    with pytest.raises(ValueError, match="ScoreInput.codes"):
        family.get("paper_node").fn(x)
    with pytest.raises(ValueError, match="ScoreInput.act"):
        family.get("act_patch").fn(x)


def test_flags_match_what_the_members_read():
    """The planted control runs the scorers that need no model; it must be able to run them."""
    x = _input()
    no_model = ScoreInput(x.labels, x.pairs, x.n_heads, 0, 50, codes=x.codes, feats=x.feats)
    for name in family.names():
        s = family.get(name)
        if not s.needs_model:
            assert s.fn(no_model).heads.shape == (5,)
    assert {s for s in family.names() if family.get(s).calibrated} == {"ours", "flip", "raw_diff"}
