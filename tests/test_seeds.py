"""Training seeds: ``zoo:<recipe>@N``, a run's seed picking its models' seed, ``--seeds`` runs."""

from __future__ import annotations

import pytest

import interp.analyses as analyses
from interp import runs
from interp.fields import check_model_name
from interp.models import zoo
from interp.results import Result
from interp.seeds import aggregate, parse_seeds, run_seeds, seed_label


# ------------------------------------------------------------------ zoo:<recipe>@N
@pytest.mark.parametrize("name", zoo.names())
def test_every_recipe_takes_a_training_seed(name):
    r = zoo.get(name)
    own = r.config.seed
    assert zoo.get(f"{name}@{own}") is r  # its own seed is the recipe itself
    other = zoo.get(f"{name}@{own + 10}")
    assert other.config.seed == own + 10 and other.key != r.key and other.path != r.path
    # weights are initialised from the training seed too, wherever the recipe keeps an init seed
    for field, value in other.config:
        if hasattr(value, "init_seed"):
            assert value.init_seed == own + 10, field
    assert zoo.get(f"{name}@{own + 10}") is other  # one recipe object per variant


def test_seed_of_a_per_seed_family_is_its_registered_sibling():
    assert zoo.get("circuit-lm-s0@1") is zoo.get("circuit-lm-s1")
    assert zoo.get("reversal-token-clm-quick-s0@2") is zoo.get("reversal-token-clm-quick-s2")
    assert zoo.get("hmm-chain2-h150-s1@0") is zoo.get("hmm-chain2-h150-s0")
    assert zoo.get("circuit-lm-s0@7").name == "circuit-lm-s0@7"


def test_seed_variants_leave_data_seeds_alone():
    base, other = zoo.get("reversal-token-clm-quick-s0"), zoo.get("reversal-token-clm-quick-s0@5")
    assert other.config.facts == base.config.facts  # the facts are the task, not the training
    assert zoo.get("icll-transformer@3").config.data == zoo.get("icll-transformer").config.data


@pytest.mark.parametrize(
    "bad, match",
    [
        ("code-lm-tiny@x", "training seed"),
        ("code-lm-tiny@-1", "training seed"),
        ("code-lm-tny@1", "Did you mean"),
        ("@3", "training seed"),
    ],
)
def test_bad_seed_names_say_what_is_valid(bad, match):
    with pytest.raises((KeyError, ValueError), match=match):
        zoo.get(bad)

    with pytest.raises(ValueError, match=match):
        check_model_name(f"zoo:{bad}")


def test_model_names_with_seeds_validate():
    assert check_model_name("zoo:code-lm-tiny@4") == "zoo:code-lm-tiny@4"


# ------------------------------------------------------------ a run's seed picks the training seed
def test_seeded_names_single_model_uses_the_run_seed():
    assert zoo.seeded_names(["zoo:code-lm-tiny"], 0) == {}
    assert zoo.seeded_names(["zoo:code-lm-tiny"], 7) == {"zoo:code-lm-tiny": "zoo:code-lm-tiny@7"}


def test_seeded_names_of_a_family_never_share_a_model_across_run_seeds():
    names = ["zoo:circuit-lm-s0", "zoo:circuit-lm-s1", "zoo:circuit-lm-s2"]
    used = []
    for s in range(4):
        swap = zoo.seeded_names(names, s)
        used.append({zoo.get(swap.get(n, n)[4:]).key for n in names})
    assert all(len(u) == 3 for u in used)
    assert len(set().union(*used)) == 12  # 4 run seeds x 3 models, all different trainings


def test_seeded_names_leave_pinned_templates_and_checkpoints_alone(tmp_path):
    names = ["zoo:code-lm-tiny@0", "zoo:reversal-{variant}-s{seed}", "hf:gpt2", str(tmp_path)]
    assert zoo.seeded_names(names, 3) == {}


def test_build_config_swaps_models_for_the_runs_training_seed():
    assert runs.build_config("bigram", "quick").model == "zoo:code-lm-tiny"
    assert runs.build_config("bigram", "quick", ["seed=2"]).model == "zoo:code-lm-tiny@2"
    assert (
        runs.build_config("bigram", "quick", ["seed=2", "model=zoo:code-lm-tiny@0"]).model
        == "zoo:code-lm-tiny@0"
    )
    cfg = runs.build_config("ngram_heads", "quick", ["seed=1"])
    assert (cfg.transformer, cfg.lstm) == ("zoo:icll-transformer@1", "zoo:icll-lstm@1")


# ------------------------------------------------------------------ --seeds
def test_parse_seeds():
    assert parse_seeds("0-2") == [0, 1, 2]
    assert parse_seeds("0,3,5") == [0, 3, 5]
    assert parse_seeds("0-1,7") == [0, 1, 7]
    assert seed_label([0, 1, 2]) == "0-2" and seed_label([0, 3]) == "0,3"
    for bad in ("", "2-0", "a", "0,0", "0-1000", "-1"):
        with pytest.raises(ValueError, match="seed"):
            parse_seeds(bad)


def _result(values: dict[str, float]) -> Result:
    r = Result("model_report")
    for name, v in values.items():
        r.add_criterion(name, v, ">=", 0.5, kind="sanity" if name.startswith("s") else "claim")
    return r


def test_aggregate_counts_seeds_per_criterion():
    out = aggregate(
        {
            0: _result({"s": 1.0, "c": 0.9}),
            1: _result({"s": 1.0, "c": 0.1}),
            2: _result({"s": 0.2, "c": 0.7, "only_here": 1.0}),
        },
        "model_report",
    )
    by = {c.name: c for c in out.criteria}
    assert (by["s"].seeds_held, by["s"].seeds_run, by["s"].holds) == (2, 3, False)
    assert (by["c"].seeds_held, by["c"].value, by["c"].values) == (2, 0.7, [0.9, 0.1, 0.7])
    assert (by["only_here"].seeds_held, by["only_here"].seeds_run) == (1, 1) and not by[
        "only_here"
    ].holds
    assert by["c"].verdict() == "holds in 2 of 3 seeds"
    out2 = aggregate({0: _result({"c": 0.9}), 1: _result({"c": 0.8})}, "model_report")
    assert out2.criteria[0].holds


def test_run_seeds_runs_each_training_seed_and_counts(tmp_path, monkeypatch):
    seen = []

    def fake(cfg):  # no model: records which model each seed's run was given
        seen.append((cfg.seed, cfg.model))
        r = Result("model_report", cfg.model_dump())
        r.add_criterion("seed_is_even", float(cfg.seed % 2 == 0), ">=", 1, kind="claim")
        r.add_criterion("always", 1.0, ">=", 1, kind="sanity")
        return r

    a = analyses.get("model_report")
    monkeypatch.setitem(
        analyses._REGISTRY, "model_report", type(a)(a.name, a.Config, fake, a.title, a.description)
    )
    path = run_seeds("model_report", "quick", ["n_prompts=4"], seeds=[0, 1, 2], root=tmp_path)
    assert seen == [(0, "zoo:code-lm-tiny"), (1, "zoo:code-lm-tiny@1"), (2, "zoo:code-lm-tiny@2")]
    summary = Result.load(path)
    by = {c.name: c for c in summary.criteria}
    assert (by["seed_is_even"].seeds_held, by["seed_is_even"].seeds_run) == (2, 3)
    assert by["always"].holds and by["always"].seeds_held == 3
    listed = {r.path.name: r for r in runs.list_runs(root=tmp_path)}
    info = listed[path.name]
    assert info.seeds == (0, 1, 2) and len(info.seed_runs) == 3
    assert all(
        rid.split("/")[1] in listed for rid in info.seed_runs
    )  # the per-seed runs are ordinary runs
    with pytest.raises(ValueError, match="drop --set seed"):
        run_seeds("model_report", "quick", ["seed=3"], seeds=[0, 1], root=tmp_path)
