"""The knockout sweep on a Hugging Face LLaVA (``model: hf-llava:<hub name | directory |
tiny-random>``): every window a full recompute with the paper's additive-mask edit
(:mod:`interp.models.llava`); no fast path and no random patch sets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from jaxtyping import Bool, Float

import interp
from interp.analyses.crossmodal.config import EDGES, Config
from interp.analyses.crossmodal.criteria import add_flow_claims
from interp.analyses.crossmodal.questions import batches
from interp.data.crossmodal import QUESTION_TYPES, Sample, make_samples
from interp.methods.knockout import answer_prob, edge_block, relative_change, window
from interp.models.llava import decoder_layers, hf_knockout_logits, load_llava, synthetic_inputs
from interp.plotting import crossmodal as plots
from interp.results import Result


@dataclass(frozen=True)
class LlavaSweep:
    """Scores of every edge (``names``) and window per test question, and whether each of the
    model's own answers is right."""

    names: list[str]
    scores: Float[np.ndarray, "n_test edges layers"]
    correct: Bool[np.ndarray, " n_test"]


@dataclass(frozen=True)
class LlavaSummary:
    """Means over the analysed questions (``use``): per edge and per question type."""

    use: list[int]
    types: list[str]
    mean: Float[np.ndarray, "edges layers"]
    by_type: Float[np.ndarray, "types edges layers"]


def llava_edges() -> list[tuple[str, str]]:
    """The zoo path's edges less the random patch sets (this path's position groups come from
    :mod:`interp.models.llava`) and the everything cut, plus every other position -> last."""
    edges = [
        (s, d) for s, d in EDGES if (s, d) != ("all", "last") and s not in ("random", "nonrandom")
    ]
    return [*edges, ("allbutlast", "last")]


def llava_sweep(
    model: Any, processor: Any, tok: Any, test: list[Sample], edges: list, config: Config
) -> LlavaSweep:
    """Scores ``[n_test, E, L]`` of every edge and window (full recomputes with the additive-mask
    edit) and whether each of the model's own answers is correct ``[n_test]``."""
    L, k = len(decoder_layers(model)), config.window
    by_len: dict[int, list[int]] = {}
    for i, s in enumerate(test):
        by_len.setdefault(len(s.question.split()), []).append(i)
    scores = np.full((len(test), len(edges), L), np.nan)
    correct = np.zeros(len(test), bool)
    for _, idx in sorted(by_len.items()):
        for part in batches(idx, config.batch_size):
            samples = [test[i] for i in part]
            inputs, groups = synthetic_inputs(model, processor, tok, samples, config.device)
            groups["allbutlast"] = groups["all"] & ~groups["last"]
            B, T = inputs["input_ids"].shape
            clean = hf_knockout_logits(model, inputs, torch.zeros(B, T, T, dtype=torch.bool), [])
            answer = clean.argmax(-1).cpu()
            words = [tok.decode([int(a)]).strip().lower() for a in answer]
            correct[part] = [w == s.answer for w, s in zip(words, samples, strict=True)]
            p_base = answer_prob(clean.cpu(), answer)
            for e, (src, dst) in enumerate(edges):
                block = edge_block(groups[dst], groups[src])
                for layer in range(L):
                    logits = hf_knockout_logits(model, inputs, block, window(layer, k, L))
                    scores[part, e, layer] = relative_change(
                        answer_prob(logits.cpu(), answer), p_base
                    ).numpy()
    return LlavaSweep([f"{s}->{d}" for s, d in edges], scores, correct)


def summarise_llava(test: list[Sample], sw: LlavaSweep, config: Config, name: str) -> LlavaSummary:
    """Means over the questions analysed: those answered correctly, or all of them when
    ``only_correct`` is off or the model is the untrained ``tiny-random``."""
    use = [
        i
        for i in range(len(test))
        if sw.correct[i] or not config.only_correct or name == "tiny-random"
    ]
    if not use:
        raise ValueError(f"{config.model} answered none of the {len(test)} questions correctly")
    types = [t for t in QUESTION_TYPES if any(test[i].qtype == t for i in use)]
    by_type = np.stack(
        [np.nanmean(sw.scores[[i for i in use if test[i].qtype == t]], axis=0) for t in types]
    )
    return LlavaSummary(use, types, np.nanmean(sw.scores[use], axis=0), by_type)


def run_llava(config: Config) -> Result:
    """The knockout sweep on a Hugging Face LLaVA. Questions are the synthetic VQA test set
    (upscaled by the processor for a real LLaVA). On ``tiny-random`` (untrained) the model's
    own answers are analysed whatever ``only_correct`` says."""
    name = config.model.split(":", 1)[1]
    model, processor, tok = load_llava(name, config.device, config.seed)
    m = interp.wrap(model, tokenizer=tok, model_id=config.model)  # nnsight-traceable handle
    test, _ = make_samples(config.n_test, config.seed, "test")
    sw = llava_sweep(model, processor, tok, test, llava_edges(), config)
    s = summarise_llava(test, sw, config, name)
    edge = {n: s.mean[e] for e, n in enumerate(sw.names)}
    result = Result("crossmodal")
    result.metrics.update(
        {
            "model": config.model,
            "n_layers": len(decoder_layers(model)),
            "window": config.window,
            "n_test": len(test),
            "n_analysed": len(s.use),
            "accuracy": float(sw.correct.mean()),
            "backend": "hf-llava",
            "n_hooks": len(m.hook_names),
            "mean_score_by_edge": {n: v.round(3).tolist() for n, v in edge.items()},
        }
    )
    _llava_criteria(result, sw, edge, name)
    result.arrays.update(
        {
            "edge_scores": s.mean,
            "edge_scores_by_type": s.by_type,
            "edge_names": np.array(sw.names),
            "question_types": np.array(s.types),
        }
    )
    result.figures.update(
        {
            "knockout_edges": plots.edge_curves(s.mean, sw.names, config.window),
            "knockout_by_type": plots.edges_by_type(s.by_type, sw.names, s.types, config.window),
        }
    )
    return result


def _llava_criteria(result: Result, sw: LlavaSweep, edge: dict, name: str) -> None:
    untrained = name == "tiny-random"
    if not untrained:
        result.add_criterion(
            "vlm_test_accuracy",
            float(sw.correct.mean()),
            ">=",
            0.9,
            kind="sanity",
            description="fraction of synthetic test questions answered correctly",
        )
    result.add_criterion(
        "all_but_self_to_last_is_minus_100",
        float(np.max(np.abs(edge["allbutlast->last"] + 100))),
        "<=",
        5.0,
        kind="claim" if untrained else "sanity",
        description="max over layers |mean score + 100| blocking every other position -> last "
        "(an untrained model need not depend on its input)",
    )
    add_flow_claims(result, edge)
