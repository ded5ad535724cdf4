"""Reversal-curse probes: the measuring parts (completion, log-prob, residuals, probes) on a
causal and a bidirectional transformer, the masking objectives, and the analysis end to
end on tiny models trained here."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import interp
from interp.analyses import reversal as R
from interp.data.reversal import FactsConfig, make_facts
from interp.models.recipes import reversal as recipes
from interp.models.train import TrainConfig
from interp.models.transformer import build_transformer
from interp.tracing.model import Model
from tests.conftest import build_spec

FACTS = FactsConfig(variant="text", n_pairs=6, n_train_templates=2, n_heldout_templates=1, seed=0)


def _model(attention_dir: str, facts=None, **kw) -> Model:
    facts = facts or make_facts(FACTS)
    tok = facts.tokenizer()
    spec = build_spec(d_vocab=len(tok), n_ctx=16, attention_dir=attention_dir, **kw)
    return Model(
        build_transformer(spec, tokenizer=tok),
        backend="tl",
        tokenizer=tok,
        kind="transformer",
        model_id=f"tiny-{attention_dir}",
        spec={"builder": "transformer", "spec": spec.model_dump(mode="json")},
    )


@pytest.fixture(params=["causal", "bidirectional"])
def model(request):
    return _model(request.param)


def _queries(facts, direction="d2n"):
    ex = facts.examples(direction, "train")
    tokens, plen = facts.encode(ex, facts.tokenizer())
    return ex, tokens, plen


def test_bridge_honours_bidirectional_attention():
    x = torch.randint(5, 40, (2, 8), generator=torch.Generator().manual_seed(0))
    y = x.clone()
    y[:, -1] = (y[:, -1] + 1) % 40 + 5  # change only the last token
    for direction, later_changes_earlier in (("causal", False), ("bidirectional", True)):
        m = _model(direction)
        assert m.cfg.attention_dir == direction and R.is_masked(m) == (direction == "bidirectional")
        with torch.no_grad():
            gap = (m.module(x) - m.module(y))[:, :-1].abs().max().item()
        assert (gap > 1e-4) == later_changes_earlier, (direction, gap)
        _, acts = interp.trace(m, x, capture=["blocks.0.attn.hook_pattern"])
        above_diagonal = torch.triu(acts["blocks.0.attn.hook_pattern"][0, 0], diagonal=1)
        assert (above_diagonal.abs().max() > 0) == later_changes_earlier


def test_mask_tokens_masks_words_only_and_at_least_one():
    g = torch.Generator().manual_seed(0)
    tokens = torch.tensor([[0, 7, 8, 9, 1, 1], [0, 5, 6, 7, 8, 9]])
    for rate in (0.0, 0.5, 1.0):
        masked, chosen = recipes.mask_tokens(tokens, torch.full((2,), rate), 4, 4, g)
        assert (chosen.sum(1) >= 1).all() and not chosen[tokens <= 4].any()
        assert torch.equal(masked[chosen], torch.full((int(chosen.sum()),), 4))
        assert torch.equal(masked[~chosen], tokens[~chosen])
        if rate == 1.0:
            assert torch.equal(chosen, tokens > 4)


def test_completion_logprob_and_beam_agree(model):
    facts = make_facts(FACTS)
    ex, tokens, plen = _queries(facts)
    T = len(ex[0].target)
    greedy = R.complete(model, tokens, plen, T, batch_size=5)  # batches of 5 must not matter
    assert np.array_equal(greedy, R.complete(model, tokens, plen, T))
    # the greedy chain's log-prob is the sum of per-step maxima: >= any other candidate's at step
    # one,
    # and beam search with width 1 returns the same completion and log-prob
    lp_greedy = R.target_logprob(model, tokens, plen, greedy[:, None, :])[:, 0]
    checked = 0
    for i in range(len(ex)):
        if (greedy[i] < 5).any():  # beams never complete with a special token; greedy may
            continue
        ids, lp = R.top_completions(
            model, tokens[i, : plen[i]].tolist(), T, k=1, pad_to=tokens.shape[1]
        )[0]
        assert ids == greedy[i].tolist() and lp == pytest.approx(lp_greedy[i], abs=1e-4)
        checked += 1
    assert checked >= 3
    # beams come best first
    beams = R.top_completions(model, tokens[0, : plen[0]].tolist(), T, k=4, pad_to=tokens.shape[1])
    assert [b[1] for b in beams] == sorted([b[1] for b in beams], reverse=True)


def test_target_logprob_is_a_normalised_distribution(model):
    """Over every possible 2-token target the (causal or left-to-right masked) chain sums to 1."""
    facts = make_facts(FACTS)
    _, tokens, plen = _queries(facts)
    V = model.cfg.d_vocab
    every = np.array(list(itertools.product(range(V), repeat=2)))[None]  # [1, V*V, 2]
    lp = R.target_logprob(model, tokens[:1], plen[:1], every, batch_size=4096)
    assert np.exp(lp).sum() == pytest.approx(1.0, abs=1e-4)
    # single-token targets: the log-probs are the model's log-softmax at the query position
    one = np.arange(V)[None, :, None]
    lp1 = R.target_logprob(model, tokens[:1], plen[:1], one)[0]
    x = torch.from_numpy(tokens[:1]).clone()
    if R.is_masked(model):
        x[0, plen[0]] = model.tokenizer.mask_token_id
    pos = plen[0] if R.is_masked(model) else plen[0] - 1
    with torch.no_grad():
        ref = model.module(x).log_softmax(-1)[0, pos].numpy()
    np.testing.assert_allclose(lp1, ref, atol=1e-5)


def test_query_residuals_read_out_to_the_completion(model):
    """The last layer's residual at the query position, through ln_final and the unembedding,
    predicts the first greedy token: the probe reads the position the model answers from."""
    facts = make_facts(FACTS)
    ex, tokens, plen = _queries(facts)
    T = len(ex[0].target)
    feats = R.query_residuals(model, tokens, plen, T, batch_size=7)
    assert feats.shape == (model.n_layers + 1, len(ex), model.cfg.d_model)
    with torch.no_grad():
        logits = model.module.unembed(model.module.ln_final(torch.from_numpy(feats[-1])[:, None]))[
            :, 0
        ]
    first = R.complete(model, tokens, plen, T)[:, 0]
    np.testing.assert_array_equal(logits.argmax(-1).numpy(), first)


def test_probe_recovers_a_linear_code_and_is_at_chance_on_noise():
    rng = np.random.default_rng(0)
    n_ent, d, k = 12, 16, 8
    codes = rng.normal(size=(n_ent, k))
    A = rng.normal(size=(k, d))
    ids = np.repeat(np.arange(n_ent), 5)
    x = codes[ids] @ A + 0.05 * rng.normal(size=(len(ids), d))
    train, test = ids < 8, ids >= 8  # new entities at test time
    acc = R.probe_accuracy(x[train], codes[ids[train]], x[test], ids[test] - 8, codes[8:], l2=1e-3)
    assert acc == 1.0
    noise = rng.normal(size=x.shape)
    accs = [
        R.probe_accuracy(
            noise[train],
            codes[ids[train]],
            rng.normal(size=(test.sum(), d)),
            ids[test] - 8,
            codes[8:],
            l2=1e-3,
        )
        for _ in range(20)
    ]
    assert np.mean(accs) < 0.5


def test_probe_penalty_is_l2_times_the_mean_feature_variance():
    """The probe is the closed-form ridge on centred features with penalty l2 * sum of the
    feature variances / d (times n), intercept unpenalised."""
    from interp.methods.probes import fit_ridge

    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 10)) * rng.uniform(0.1, 4, 10) + 2.0
    y = rng.normal(size=(60, 4))
    l2 = 0.05
    xc = x - x.mean(0)
    w = np.linalg.solve(xc.T @ xc + l2 * (xc**2).sum(0).mean() * np.eye(10), xc.T @ (y - y.mean(0)))
    x_new = rng.normal(size=(7, 10))
    np.testing.assert_allclose(
        fit_ridge(x, y, l2).predict(x_new), (x_new - x.mean(0)) @ w + y.mean(0), rtol=1e-9
    )


def _train_tiny(tmp_path, objective: str, steps: int, facts_cfg: FactsConfig, seed: int = 0):
    from interp.models.io import save_model

    cfg = recipes.ReversalRecipe(
        name=f"test-rev-{objective}",
        facts=facts_cfg,
        objective=objective,
        spec=build_spec(n_layers=2, d_model=32, n_ctx=16),
        train=TrainConfig(steps=steps, batch_size=32, lr=1e-2, warmup=10, log_every=50),
        seed=seed,
    )
    m = recipes.train_reversal(cfg)
    path = tmp_path / f"token-{objective}-s{seed}"
    save_model(m, path, extra={"recipe_config": cfg.model_dump(mode="json")})
    return m, cfg


@pytest.mark.slow
def test_reversal_end_to_end_on_tiny_trained_models(tmp_path, monkeypatch):
    facts_cfg = FactsConfig(
        variant="token", n_pairs=12, n_train_templates=3, n_heldout_templates=1, seed=0
    )
    causal, _ = _train_tiny(tmp_path, "clm", 150, facts_cfg)
    mlmu, _ = _train_tiny(tmp_path, "mlmu", 40, facts_cfg)
    assert R.is_masked(mlmu) and not R.is_masked(causal)
    result = interp.analyses.get("reversal").run(
        {
            "model": str(tmp_path / "{variant}-{objective}-s{seed}"),
            "variants": ["token"],
            "objectives": ["clm", "mlmu"],
            "n_random": 2,
            "logprob_templates": 2,
            "seed": 0,
        }
    )
    acc = result.arrays["accuracy"]
    assert acc.shape == (1, 2, 1, 2, 3, 2) and np.all((acc >= 0) & (acc <= 1))
    assert result.arrays["probe_accuracy"].shape == (1, 2, 1, 2, 2, 3)
    assert result.arrays["logprob_correct_token"].shape == (2, 1, 2, 2, 12)
    s = result.metrics["summary"]["token/clm"]
    # the causal model learned the trained direction and, as the reversal curse says, not the
    # reverse
    assert s["same_direction_train"] >= 0.9 and s["reverse_train"] <= 0.25, s
    names = {c.name: c for c in result.criteria}
    assert names["causal_same_direction_accuracy_token"].holds
    assert names["causal_same_direction_accuracy_token"].value == pytest.approx(
        s["same_direction_train"]
    )
    assert {
        "causal_reverse_accuracy_token",
        "causal_reverse_logprob_not_above_random_token",
        "mlmu_reverse_accuracy_token",
        "mlmu_reverse_in_place_accuracy_token",
        "mlmu_same_direction_accuracy_token",
    } <= set(names)
    assert 0 <= s["reverse_logprob_p"] <= 1 and 0 <= s["reverse_logprob_equivalence_p"] <= 1
    assert 0 <= s["reverse_logprob_p_above"] <= 1 and s["reverse_logprob_detectable_nats"] >= 0
    # in place: NaN for the causal model, a real accuracy for the masked one
    ip = result.arrays["accuracy_in_place"]
    assert np.isnan(ip[0, 0]).all() and np.all((ip[0, 1] >= 0) & (ip[0, 1] <= 1))
    # a masked model barely trained (40 steps) fails its own same-direction sanity; its reverse
    # claims are not read
    mlmu_fwd = names["mlmu_same_direction_accuracy_token"]
    if not mlmu_fwd.holds:
        assert (
            names["mlmu_reverse_accuracy_token"].value is None
            and "not read" in names["mlmu_reverse_accuracy_token"].description
        )
    assert {m["path"] for m in result.metrics["models"]} == {
        str(tmp_path / "token-clm-s0"),
        str(tmp_path / "token-mlmu-s0"),
    }
    result.save(tmp_path / "run")
    back = interp.Result.load(tmp_path / "run")
    for name in ("accuracy_grid", "accuracy_in_place", "logprob", "probe_by_layer"):
        assert back.figure(name) is not None
    _check_dashboard_in_streamlit(result, tmp_path, monkeypatch)
    _check_dashboard(back, tmp_path, monkeypatch)


def _reversal_page(app_dir: str) -> None:
    import sys

    sys.path.insert(0, app_dir)
    import views

    views.analysis_page("reversal")


def _check_dashboard_in_streamlit(result, tmp_path, monkeypatch):
    """The real page renders the run; the panel lists the run's models (asking them is on the
    Explore page)."""
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    from interp.utils import write_json

    run = tmp_path / "runs" / "reversal" / "20260101-000000-abcdef"
    result.save(run)
    write_json(
        run / "run.json",
        {
            "experiment": "reversal",
            "preset": "quick",
            "analysis": "reversal",
            "created": "20260101-000000",
        },
    )
    monkeypatch.setenv("INTERP_RUNS", str(tmp_path / "runs"))
    app_dir = str(Path(__file__).resolve().parents[2] / "app")
    at = AppTest.from_function(_reversal_page, args=(app_dir,), default_timeout=60).run()
    # the 40-step MLM-U fails its own same-direction sanity: the page says so, and nothing else
    # goes wrong
    assert not at.exception and all("mlmu_same_direction_accuracy" in e.value for e in at.error), [
        e.value for e in at.error
    ]
    assert len(at.get("plotly_chart")) == 4
    frame = at.dataframe[-1].value
    assert len(frame) == 2 and set(frame["objective"].str.split(" ").str[0]) == {"causal", "MLM-U"}


class _FakeStreamlit:
    """The few streamlit calls the panel makes, recording what it shows."""

    def __init__(self):
        self.shown = []

    def dataframe(self, frame, hide_index=None):
        self.shown.append(("dataframe", frame))

    def __getattr__(self, name):  # subheader, markdown, info, ...
        return lambda *a, **k: self.shown.append((name, a[0] if a else ""))


def _check_dashboard(result, tmp_path, monkeypatch):
    """The panel reads the saved result only: it works with every model gone from disk and
    model loading disabled, and points to the Explore page for questions."""
    from tests.conftest import load_panel

    def refuse(*a, **k):
        raise AssertionError("the reversal panel must not load a model")

    monkeypatch.setattr(interp, "load_model", refuse)
    monkeypatch.setattr(R, "_load_for_dashboard", refuse)
    for mm in result.metrics["models"]:
        mm["path"] = str(tmp_path / "gone")
    st = _FakeStreamlit()
    load_panel("reversal")(result, st)
    rows = [x for kind, x in st.shown if kind == "dataframe"][0]
    assert {r["objective"].split(" ")[0] for r in rows} == {"causal", "MLM-U"}
    assert any(kind == "markdown" and "Explore a model" in msg for kind, msg in st.shown)


def test_in_place_slot_is_filled_with_the_rest_of_the_sentence_visible():
    """An in-place question keeps the words after the slot: a bidirectional model's fill
    depends on them, and the encoded row is the trained sentence itself."""
    facts = make_facts(FACTS)
    tok = facts.tokenizer()
    pair = facts.group_pairs("name_first")[0]
    t = facts.templates_of("n2d", "train")[0]
    e = facts.in_place_example(pair, t)
    assert (
        e.direction == "d2n" and e.target == pair.name and e.suffix[-len(pair.desc) :] == pair.desc
    )
    assert e.text == facts.example(pair, t).text  # the trained sentence
    tokens, plen = facts.encode([e], tok)
    trained, _ = facts.encode([facts.example(pair, t)], tok)
    np.testing.assert_array_equal(tokens, trained)
    m = _model("bidirectional")
    changed = tokens.copy()
    changed[0, plen[0] + len(e.target)] = tok.get_vocab()[
        facts.vocabulary[-1]
    ]  # a word after the slot
    ids = R.target_logprob(
        m, tokens, plen, np.array([[tokens[0, plen[0] : plen[0] + len(e.target)]]])
    )
    ids2 = R.target_logprob(
        m, changed, plen, np.array([[tokens[0, plen[0] : plen[0] + len(e.target)]]])
    )
    assert abs(ids - ids2).max() > 1e-6


def test_equivalence_test_accepts_zero_and_rejects_a_shift():
    rng = np.random.default_rng(0)
    near_zero = rng.normal(0.0, 0.3, size=40)
    ok = R.equivalence_test(near_zero, margin=np.log(2))
    assert ok.p_equivalence < 0.05 and -np.log(2) < ok.ci_low < ok.ci_high < np.log(2)
    shifted = near_zero + 2.0  # the correct target clearly likelier: not equivalent
    bad = R.equivalence_test(shifted, margin=np.log(2))
    assert bad.p_equivalence > 0.5 and bad.ci_low > np.log(2)
    noisy = rng.normal(0.0, 5.0, size=10)  # too little evidence either way: not shown equivalent
    assert R.equivalence_test(noisy, margin=np.log(2)).p_equivalence > 0.05


def test_plateau_rule():
    stop = recipes.PlateauStop(eval_every=10, patience=3, min_delta=0.01, min_steps=0)
    assert not recipes.plateaued([0.1, 0.5, 0.9], stop)  # too few evaluations
    assert not recipes.plateaued([0.1, 0.5, 0.9, 0.95], stop)  # still improving
    assert recipes.plateaued([0.1, 0.9, 1.0, 1.0, 1.0], stop)
    assert recipes.plateaued([0.9, 1.0, 0.97, 0.99], stop)  # no better than the best before it


def test_mlmu_recipes_train_a_fixed_budget_and_others_keep_their_config():
    quick = recipes.recipe_config("token", "mlmu", "quick", 0)
    assert (
        isinstance(quick, recipes.BudgetRecipe)
        and quick.train.steps == 6000
        and quick.eval_every == 250
    )
    assert (
        quick.loss_weighting == "sequence"
        and recipes.recipe_config("text", "mlmu", "full", 0).train.steps == 24000
    )
    for objective in ("clm", "mlm15"):
        cfg = recipes.recipe_config("text", objective, "quick", 1)
        assert type(cfg) is recipes.ReversalRecipe and "stop" not in cfg.model_dump()
        assert (
            "loss_weighting" not in cfg.model_dump()
        )  # their configs (and cached models) are unchanged


def test_per_sequence_weighting_weighs_each_sentence_equally():
    """Two sentences, one with 1 masked token and one with 3: the token mean gives the second 3/4
    of the weight, the per-sequence mean 1/2 each (MLM-U's objective)."""
    torch.manual_seed(0)
    tokens = torch.tensor([[1, 7, 8, 9, 10], [1, 11, 12, 13, 14]])
    chosen = torch.tensor([[False, True, False, False, False], [False, True, True, True, False]])
    masked = tokens.masked_fill(chosen, 3)
    logits = torch.randn(2, 5, 16)
    module = lambda x: logits  # noqa: E731
    ce = torch.nn.functional.cross_entropy(
        logits.transpose(1, 2), tokens, reduction="none"
    )  # [2, 5]
    per_token = ce[chosen].mean()
    per_seq = 0.5 * (ce[0, 1] + ce[1, 1:4].mean())
    for flag, expect in ((False, per_token), (True, per_seq)):
        _, loss_fn = recipes.make_objective(
            "mlmu", 0.15, 3, 0, special_max=4, seed=0, per_sequence=flag
        )
        assert torch.allclose(loss_fn(module, (masked, chosen, tokens)), expect)


def test_budget_training_runs_to_its_end_and_logs_reverse_accuracy(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_CACHE", str(tmp_path))
    facts_cfg = FactsConfig(
        variant="token", n_pairs=6, n_train_templates=2, n_heldout_templates=1, seed=0
    )
    cfg = recipes.BudgetRecipe(
        name="test-budget",
        facts=facts_cfg,
        objective="mlmu",
        spec=build_spec(n_layers=1, d_model=32, n_ctx=16),
        train=TrainConfig(steps=60, batch_size=16, lr=1e-2, warmup=5, log_every=20),
        eval_every=20,
    )
    m = recipes.train_reversal(cfg)
    evals = [e for e in m.train_log if "forward_accuracy" in e]
    assert [e["step"] + 1 for e in evals] == [20, 40, 60]
    assert "fixed budget of 60 steps" in m.train_log[-1]["stopped"]
    assert {"reverse_in_place_accuracy", "reverse_order_swapped_accuracy"} <= set(evals[-1])


def test_above_random_test_is_a_one_sided_paired_t_test():
    from scipy import stats

    rng = np.random.default_rng(0)
    null = rng.normal(0.0, 1.0, size=30)
    out = R.above_random_test(null)
    assert out.p_above == pytest.approx(stats.ttest_1samp(null, 0.0, alternative="greater").pvalue)
    assert out.ci95[0] < null.mean() < out.ci95[1]
    # the stated power: a true shift of detectable_nats is found about 80% of the time
    sd = null.std(ddof=1)  # the spread the power statement assumes
    hits = [
        R.above_random_test(rng.normal(out.detectable_nats, sd, size=30)).p_above < 0.05
        for _ in range(400)
    ]
    assert 0.7 < np.mean(hits) < 0.9
    assert R.above_random_test(null + 2.0).p_above < 1e-6


def test_converged_training_stops_early_and_logs_forward_accuracy(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_CACHE", str(tmp_path))
    facts_cfg = FactsConfig(
        variant="token", n_pairs=6, n_train_templates=2, n_heldout_templates=1, seed=0
    )
    cfg = recipes.ConvergedRecipe(
        name="test-conv",
        facts=facts_cfg,
        objective="mlmu",
        spec=build_spec(n_layers=1, d_model=32, n_ctx=16),
        train=TrainConfig(steps=400, batch_size=16, lr=1e-2, warmup=5, log_every=20),
        stop=recipes.PlateauStop(eval_every=20, patience=2, min_delta=0.01, min_steps=40),
    )
    m = recipes.train_reversal(cfg)
    evals = [e for e in m.train_log if "forward_accuracy" in e]
    assert evals and "stopped" in m.train_log[-1]
    assert m.train_log[-1]["step"] + 1 < 400, "a tiny fact set must plateau well before the cap"
    assert m.train_log[-1]["forward_accuracy"] == evals[-1]["forward_accuracy"]
    assert {"reverse_in_place_accuracy", "reverse_order_swapped_accuracy"} <= set(evals[-1])
