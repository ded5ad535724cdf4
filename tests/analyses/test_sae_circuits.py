"""The SAE circuit-discovery analysis: its summary and criteria from synthetic grids, and a
tiny end-to-end run on two models (a GPT-2-architecture save_pretrained directory and an
interp transformer). The scorers themselves: tests/methods/test_sae_scores.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import interp
from interp.analyses.sae_circuits import (
    GRIDS,
    Cell,
    Config,
    Grids,
    add_criteria,
    method_names,
    summarise,
)
from interp.analyses.sae_circuits.truth import AttributionCheck, GroundTruth
from interp.results import Result


def _synthetic(seed=0):
    """A config of 2 models x 2 tasks and grids of known random values, shaped as score_all's."""
    cfg = Config(
        models=["hf:a", "hf:b"],
        tasks=["ioi", "induction"],
        n_seeds=3,
        prompt_sweep=[4, 8],
        sweep_seeds=2,
        planted_seeds=2,
        d_sae_sweep=[50],
    )
    rng = np.random.default_rng(seed)
    M, T, S, J, F = 2, 2, 3, len(cfg.gt_fractions), len(cfg.features)
    K, E = len(method_names(cfg.features)), len(cfg.gt_edge_fractions)
    shapes = {
        "auc": (S, K, J),
        "null_auc": (S, K, J),
        "planted_auc": (2, K),
        "spearman": (S, K),
        "precision": (S, K),
        "recall": (S, K),
        "seconds": (S, K),
        "sae_fvu": (S, F),
        "sae_fvu_heldout": (S, F),
        "sae_l0": (S, F),
        "sae_dead_frac": (S, F),
        "auc_vs_prompts": (2, 2, 4),
        "auc_vs_d_sae": (1, 2, 4),
        "edge_auc": (S, K, E),
        "edge_null_auc": (S, K, E),
    }
    assert set(shapes) == set(GRIDS)
    grids = Grids(**{k: rng.random((M, T, *shapes[k])) for k in GRIDS})
    truth = GroundTruth(rng.random(4), 1.0, 0.5, 0.9, [])
    cells = {
        (m, t): Cell(
            (1, 4),
            truth,
            grids,
            {},
            {},
            AttributionCheck(0.995 + 0.001 * mi, 0.9, 0.1) if t == "ioi" else None,
        )
        for mi, m in enumerate(cfg.models)
        for t in cfg.tasks
    }
    return cfg, grids, cells


def test_summary_and_criteria_read_the_grids():
    cfg, grids, cells = _synthetic()
    metrics = summarise(cfg, grids, cells)
    methods = method_names(cfg.features)
    ours = methods.index("ours.position")
    assert metrics["auc_mean"]["ours.position"] == pytest.approx(grids.auc[..., ours, :].mean())
    assert metrics["auc_by_threshold"]["ours.position"][1] == pytest.approx(
        grids.auc[..., ours, 1].mean()
    )
    assert metrics["auc_by_model_task"]["hf:b/ioi"]["ours.position"] == pytest.approx(
        grids.auc[1, 0, :, ours].mean()
    )
    assert metrics["null_auc"]["ours.position"] == pytest.approx(
        grids.null_auc[..., ours, :].mean()
    )
    assert metrics["auc_vs_prompts"]["8"]["flip.position"] == pytest.approx(
        grids.auc_vs_prompts[:, :, 1, :, 3].mean()
    )
    assert metrics["auc_vs_d_sae"]["50"]["paper_edge.mean"] == pytest.approx(
        grids.auc_vs_d_sae[..., 1].mean()
    )
    assert metrics["d_sae"]["hf:a"] == {
        "mean": 6,
        "answer": 200,
        "position": 200,
    }  # mean: 200 / 144 x 4 heads
    assert metrics["circuit_heads"]["hf:a"] == [1, 1, 1]
    assert metrics["tasks_info"]["hf:a/induction"] == {
        "clean_metric": 1.0,
        "corrupt_metric": 0.5,
        "accuracy": 0.9,
    }
    assert [c["r_small_alpha"] for c in metrics["attribution_check"]] == [
        0.995,
        0.996,
    ]  # one per model
    assert metrics["n_heads_total"] == 8
    result = Result("sae_circuits", metrics=metrics)
    add_criteria(result, cfg, grids)
    crit = {c.name: c for c in result.criteria}
    assert list(crit) == [
        "null_control_auc_near_half",
        "attribution_matches_activation_patching",
        "sae_fvu_heldout",
        "planted_control_recovered",
        "paper_node_auc",
        "paper_edge_auc",
    ]
    assert [c.kind for c in result.criteria].count("claim") == 2  # the paper's two findings
    assert crit["attribution_matches_activation_patching"].value == 0.995
    assert crit["sae_fvu_heldout"].value == grids.sae_fvu_heldout.max()
    assert result.metrics["extra_comparisons"]["ours_minus_paper_node"] == pytest.approx(
        metrics["auc_mean"]["ours.position"] - metrics["auc_mean"]["paper_node.mean"]
    )
    # a scorer whose shuffled-label AUC stays high (a broken null) makes the null control fail
    grids.null_auc[..., method_names(cfg.features).index("flip.answer"), :] = 0.9
    broken = Result("sae_circuits", metrics=summarise(cfg, grids, cells))
    add_criteria(broken, cfg, grids)
    assert not {c.name: c for c in broken.criteria}["null_control_auc_near_half"].holds


def test_config_refuses_what_would_fail_or_be_cut_later():
    with pytest.raises(ValueError, match="ioi"):
        Config(tasks=["iio"])  # the valid tasks are named
    with pytest.raises(ValueError, match="relu"):
        Config(sae_kind="rellu")
    with pytest.raises(ValueError, match="n_sae_prompts"):
        Config(n_prompts=4, n_sae_prompts=10)  # only 8 prompts to train the SAE on
    assert Config(n_prompts=5, n_sae_prompts=10, prompt_sweep=[5, 10]).n_sae_prompts == 10


def _save_models(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    from interp.data.sae_circuits import template_vocab
    from interp.data.tokenizer import word_tokenizer
    from interp.models.transformer import build_transformer
    from interp.tracing.model import Model
    from tests.conftest import build_spec

    tok = word_tokenizer(template_vocab())
    torch.manual_seed(0)
    GPT2LMHeadModel(
        GPT2Config(
            vocab_size=len(tok),
            n_embd=32,
            n_layer=2,
            n_head=4,
            n_positions=32,
            bos_token_id=0,
            eos_token_id=2,
        )
    ).eval().save_pretrained(tmp_path / "gpt2")
    tok.save_pretrained(tmp_path / "gpt2")
    spec = build_spec(n_layers=3, d_vocab=len(tok), init_seed=1)
    Model(
        build_transformer(spec, tokenizer=tok),
        backend="tl",
        tokenizer=tok,
        kind="transformer",
        model_id="tiny",
        spec={"builder": "transformer", "spec": spec.model_dump(mode="json")},
    ).save(tmp_path / "interp")
    return [str(tmp_path / "gpt2"), str(tmp_path / "interp")]


@pytest.mark.slow
def test_tiny_end_to_end_on_two_models(tmp_path):
    models = _save_models(tmp_path)
    cfg = dict(
        models=models,
        tasks=["ioi", "induction"],
        n_prompts=6,
        n_sae_prompts=6,
        n_seeds=2,
        prompt_sweep=[4],
        sweep_seeds=1,
        n_gt_prompts=8,
        sae_steps=40,
        n_perm=20,
        seed=3,
        d_sae_sweep=[16],
    )
    result = interp.analyses.get("sae_circuits").run(cfg)
    crit = {c.name: c for c in result.criteria}
    assert {
        "null_control_auc_near_half",
        "attribution_matches_activation_patching",
        "sae_fvu_heldout",
        "planted_control_recovered",
        "paper_node_auc",
        "paper_edge_auc",
    } <= set(crit)
    assert crit["attribution_matches_activation_patching"].holds
    assert (
        "sae_pipeline_seconds" not in crit and result.metrics["sae_pipeline_seconds_max"] > 0
    )  # a metric
    assert result.arrays["auc"].shape == (
        2,
        2,
        2,
        len(method_names(["mean", "answer", "position"])),
        3,
    )
    auc = result.arrays["auc"]
    assert np.all((auc >= 0) & (auc <= 1))
    assert {
        "auc_summary",
        "heatmaps",
        "roc",
        "auc_vs_prompts",
        "null_control",
        "planted_control",
        "runtime",
    } <= set(result.figures)
    # the GPT-2 model has 8 heads, the interp one 12: per-model arrays keep their own sizes
    assert result.arrays["gt_effect__m0__ioi"].shape == (8,)
    assert result.arrays["gt_effect__m1__ioi"].shape == (12,)
    assert result.arrays["score__ours.position__m1__induction"].shape == (12,)
    assert [result.metrics["d_sae"][m]["mean"] for m in models] == [
        11,
        17,
    ]  # 1.39 latents a head, 8 and 12 heads
    assert set(result.metrics["auc_vs_d_sae"]) == {"16"}
    result.save(tmp_path / "run")
    back = interp.Result.load(tmp_path / "run")
    np.testing.assert_array_equal(back.arrays["auc"], auc)


@pytest.mark.slow
def test_runs_on_a_gpt2_shaped_checkpoint_with_its_own_tokenizer(tmp_path):
    """A saved Hugging Face GPT-2 (random weights) whose BPE knows none of the template language's
    symbols: the tasks are built from its own vocabulary and the analysis runs end to end."""
    import transformers as T

    from interp.data.tokenizer import train_bpe

    tok = train_bpe(
        [
            "When Quinn and Peter went to the store, Peter gave a book to Quinn. "
            "Ursula and Otto sang. " * 5 + " ".join(f"w{i}" for i in range(300))
        ]
        * 20,
        vocab_size=400,
    )
    torch.manual_seed(0)
    T.GPT2LMHeadModel(
        T.GPT2Config(
            vocab_size=len(tok),
            n_embd=32,
            n_layer=2,
            n_head=4,
            n_positions=64,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.bos_token_id,
        )
    ).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    result = interp.analyses.get("sae_circuits").run(
        dict(
            models=[str(tmp_path)],
            tasks=["induction"],
            n_prompts=8,
            n_sae_prompts=4,
            prompt_sweep=[4],
            sweep_seeds=1,
            n_seeds=2,
            n_gt_prompts=8,
            d_sae=32,
            sae_steps=20,
            n_perm=20,
            batch_size=8,
        )
    )
    crit = {c.name: c for c in result.criteria}
    assert crit["attribution_matches_activation_patching"].holds  # an identity: holds on any model
    # the null control is statistical, and at this size (its seeds follow the model's path) it is
    # noisy: only its range is checked here; the quick preset judges it
    assert 0 <= crit["null_control_auc_near_half"].value <= 0.5
    assert {"paper_node_auc", "paper_edge_auc"} <= set(crit)
