"""Cross-modal information flow in a vision-language model by attention knockout
(Zhang et al. 2024, "Cross-modal Information Flow in Multimodal Large Language Models").

On correctly answered test questions, for each layer ``l`` and a window of ``k`` layers
around it, attention edges between position groups are blocked in all heads (causal mask
kept; see :mod:`interp.methods.knockout`) and the model's own answer probability is
compared with the clean run: ``score = (p_new - p_base) / p_base * 100``, averaged over
samples, per question type. Edges: image->question, image->last, question->last,
last->last, object patches->question, non-object patches->question (and everything->last
as a sanity check). Knockouts into the last position use the key/value-reusing fast path,
checked against a full recompute in every run. A logit lens at the last position reads
the answer probability layer by layer, with and without the final norm.

Positions: ``[BOS] [64 image patches] [question ...] [last question token "?"]``; the
"question" group is every question token but the last.

The model is a zoo VLM (``zoo:vlm-tiny`` / ``zoo:vlm-6l``; :mod:`interp.models.vlm`). A
Hugging Face LLaVA runs through :func:`run_llava` (``model: hf-llava:<hub name | directory |
tiny-random>``; masked forward in :mod:`interp.models.llava`).
"""

from __future__ import annotations

import logging
from typing import Optional

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict

from interp.analyses import register
from interp.results import Result

log = logging.getLogger(__name__)

EDGES = (("image", "question"), ("image", "last"), ("question", "last"), ("last", "last"),
         ("object", "question"), ("nonobject", "question"), ("all", "last"))
EDGE_NAMES = tuple(f"{s}->{d}" for s, d in EDGES)


class Config(BaseModel):
    """Settings of the cross-modal knockout analysis."""

    model_config = ConfigDict(extra="forbid")

    model: str = "zoo:vlm-tiny"
    n_test: int = 300
    window: int = 1
    batch_size: int = 64
    n_dashboard_samples: int = 12
    only_correct: bool = True  # the paper analyses correctly answered questions only (False: all, for untrained models)
    check_batches: int = 1  # batches per question type whose fast sweep is compared with a full recompute
    device: str = "cpu"
    seed: int = 0


# ---------------------------------------------------------------- data
def _training_keys(model_name: str) -> Optional[set]:
    """Scene keys of the model's training set (so test scenes are disjoint), if known."""
    from interp.data.crossmodal import train_scene_keys

    cfg = None
    if model_name.startswith("zoo:"):
        from interp.models import zoo

        cfg = zoo.get(model_name[4:]).config.model_dump()
    else:
        from pathlib import Path

        from interp.models.io import MODEL_FILE
        from interp.utils import read_json

        path = Path(model_name) / MODEL_FILE
        if path.exists():
            cfg = read_json(path).get("recipe_config")
    if not cfg or "n_train" not in cfg:
        return None
    from interp.data.crossmodal import QUESTION_TYPES
    from interp.models.recipes.crossmodal import training_extra_types

    return train_scene_keys(cfg["n_train"], cfg["seed"], (*QUESTION_TYPES, *training_extra_types(cfg)))


def position_groups(batch: dict, samples) -> dict[str, torch.Tensor]:
    """``[B, T]`` bool groups for one batch of equal-length questions (last = final position)."""
    from interp.data.crossmodal import N_PATCHES

    tokens = batch["tokens"]
    B, T = tokens.shape
    if not bool((batch["last"] == T - 1).all()):
        raise ValueError("position_groups needs questions of one length (last token at the final position)")
    pos = torch.arange(T)[None].expand(B, T)
    image = (pos >= 1) & (pos < 1 + N_PATCHES)
    last = pos == T - 1
    question = (pos >= 1 + N_PATCHES) & ~last
    obj = torch.zeros(B, T, dtype=torch.bool)
    obj[:, 1 : 1 + N_PATCHES] = torch.from_numpy(np.stack([s.object_patches for s in samples]))
    return {"image": image, "question": question, "last": last, "all": pos <= T - 1,
            "object": obj, "nonobject": image & ~obj}


def types_at_chance(samples, correct: torch.Tensor, alpha: float = 0.01) -> list[str]:
    """Question types whose accuracy is not significantly above guessing (one-sided binomial
    test at ``alpha`` against :data:`interp.data.crossmodal.CHANCE`)."""
    from scipy.stats import binomtest

    from interp.data.crossmodal import CHANCE, QUESTION_TYPES

    out = []
    for t in QUESTION_TYPES:
        idx = [i for i, s in enumerate(samples) if s.qtype == t]
        if idx:
            k = int(correct[idx].sum())
            if binomtest(k, len(idx), CHANCE[t], alternative="greater").pvalue > alpha:
                out.append(t)
    return out


def _info_free_reference(by_len: dict[int, list[int]], answers: np.ndarray, p_base: np.ndarray) -> np.ndarray:
    """Per-sample score of the best input-free guess: for each question length (the only thing
    the last position still sees when every edge into it is cut: its own token and position)
    answer with the frequencies of the model's answers among questions of that length. In a
    small closed answer vocabulary this is far from -100% (yes/no questions: about -50%)."""
    out = np.full(len(p_base), np.nan)
    for idx in by_len.values():
        a = answers[idx]
        values, counts = np.unique(a, return_counts=True)
        freq = dict(zip(values.tolist(), (counts / len(a)).tolist()))
        out[idx] = (np.array([freq[x] for x in a.tolist()]) - p_base[idx]) / p_base[idx] * 100
    return out


def _batches(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i : i + size]


# ---------------------------------------------------------------- pieces
def clean_predictions(m, samples, batch_size: int):
    """Predicted answer ids and clean answer probabilities for ``samples`` (any lengths)."""
    from interp.data.crossmodal import encode
    from interp.tracing.trace import trace

    preds, correct = [], []
    for part in _batches(samples, batch_size):
        b = encode(m.tokenizer, part)
        out, _ = trace(m, {"tokens": b["tokens"], "pixels": b["pixels"]})
        logits = out[torch.arange(len(part)), b["last"]]
        p = logits.argmax(-1).cpu()
        preds.append(p)
        correct.append(p == b["answer"])
    return torch.cat(preds), torch.cat(correct)


def logit_lens_last(m, batch: dict, answer: torch.Tensor) -> dict[str, np.ndarray]:
    """``[L+1, B]`` answer probability read from the residual stream at the last position
    (row 0: embedding), through the final norm + unembedding and through the unembedding only."""
    from interp.methods.knockout import _raw, answer_prob
    from interp.tracing.trace import trace

    L = m.n_layers
    names = ["blocks.0.hook_resid_pre"] + [f"blocks.{l}.hook_resid_post" for l in range(L)]
    out, acts = trace(m, {"tokens": batch["tokens"], "pixels": batch["pixels"]}, capture=names)
    native = m.module.original_model
    head, norm = _raw(native.head), _raw(native.ln_out)
    with torch.no_grad():
        normed = np.stack([answer_prob(head(norm(acts[n][:, -1])), answer).numpy() for n in names])
        raw = np.stack([answer_prob(head(acts[n][:, -1]), answer).numpy() for n in names])
        gap = float((head(norm(acts[names[-1]][:, -1])) - out[:, -1]).abs().max())
    return {"with_norm": normed, "without_norm": raw, "final_gap": gap}


def last_row_attention(m, batch: dict) -> np.ndarray:
    """``[B, L, 64]`` attention of the last position to each image patch, mean over heads."""
    from interp.data.crossmodal import N_PATCHES
    from interp.tracing.trace import trace

    names = [f"blocks.{l}.attn.hook_pattern" for l in range(m.n_layers)]
    _, acts = trace(m, {"tokens": batch["tokens"], "pixels": batch["pixels"]}, capture=names)
    return np.stack([acts[n][:, :, -1, 1 : 1 + N_PATCHES].mean(1).numpy() for n in names], axis=1)


def nothing_blocked_gap(m, inputs: dict, clean_logits: torch.Tensor) -> float:
    """Largest |logit change| when every layer's pattern goes through the knockout edit with an
    all-False block (must be exactly 0: rows with nothing blocked are untouched)."""
    from interp.methods.knockout import block_pattern, pattern_hook_name
    from interp.tracing.trace import trace

    B, T = inputs["tokens"].shape
    empty = torch.zeros(B, T, T, dtype=torch.bool)
    edits = {pattern_hook_name(l): (lambda p: block_pattern(p, empty)) for l in range(m.n_layers)}
    out, _ = trace(m, inputs, edits=edits)
    return float((out - clean_logits).abs().max())


def fast_vs_full_gap(m, inputs: dict, groups: dict, cache, k: int) -> tuple[float, dict]:
    """Largest |logit difference| at the last position between the key/value-reusing fast path
    and a full recompute, over every edge into the last position and every window; also the
    seconds each took and one clean forward's."""
    import time

    from interp.methods.knockout import edge_block, knockout_logits, last_row_knockout, window
    from interp.tracing.trace import trace

    gap, t_fast, t_full = 0.0, 0.0, 0.0
    L = m.n_layers
    t0 = time.perf_counter()
    trace(m, inputs)
    t_clean = time.perf_counter() - t0
    for src, dst in EDGES:
        if dst != "last":
            continue
        for l in range(L):
            layers = window(l, k, L)
            t0 = time.perf_counter()
            fast = last_row_knockout(m, cache, groups[src], layers)
            t1 = time.perf_counter()
            full = knockout_logits(m, inputs, edge_block(groups["last"], groups[src]), layers)[:, -1]
            t_full += time.perf_counter() - t1
            t_fast += t1 - t0
            gap = max(gap, float((fast - full).abs().max()))
    return gap, {"clean_forward_s": t_clean, "fast_sweep_s": t_fast, "full_sweep_s": t_full}


# ---------------------------------------------------------------- run
@register("crossmodal", Config, title="Cross-modal information flow (attention knockout in a VLM)",
          paper="Zhang et al. 2024, Cross-modal Information Flow in Multimodal Large Language Models",
          figure_order=("knockout_edges", "knockout_by_type", "object_vs_nonobject", "logit_lens",
                        "last_attention_image"))
def run(config: Config) -> Result:
    """Attention knockout between image, question and last positions of a tiny VLM."""
    import interp
    from interp.data.crossmodal import QUESTION_TYPES, encode, make_samples
    from interp.methods.knockout import answer_prob, clean_cache, last_row_knockout, relative_change, sweep
    from interp.plotting import crossmodal as plots
    from interp.utils import seed_everything

    seed_everything(config.seed)
    if config.model.startswith("hf-llava:"):
        return run_llava(config)
    import interp.models.vlm  # noqa: F401  (registers the "vlm" builder for model directories)

    m = interp.load_model(config.model, device=config.device)
    if m.kind != "vlm":
        raise ValueError(f"crossmodal needs a VLM (zoo:vlm-tiny, zoo:vlm-6l or hf-llava:<name>); "
                         f"{config.model} is a {m.kind}")
    L, k = m.n_layers, config.window
    log.info("model %s: %d layers; window %d", m.model_id, L, k)

    keys = _training_keys(config.model)
    test, _ = make_samples(config.n_test, config.seed, "test", exclude=keys)
    log.info("%d test questions (%s scenes disjoint from training)", len(test), "verified" if keys else "UNVERIFIED")
    preds, correct = clean_predictions(m, test, config.batch_size)
    accuracy = float(correct.float().mean())
    acc_type = {t: float(correct[[i for i, s in enumerate(test) if s.qtype == t]].float().mean())
                for t in QUESTION_TYPES if any(s.qtype == t for s in test)}
    log.info("test accuracy %.3f %s", accuracy, acc_type)
    at_chance = types_at_chance(test, correct)
    if at_chance:
        log.warning("question types answered no better than chance (their knockout curves reflect guesses): %s",
                    ", ".join(at_chance))

    # correctly answered samples, grouped by question length (one template per group)
    kept = [i for i in range(len(test)) if correct[i] or not config.only_correct]
    if not kept:
        raise ValueError(f"{m.model_id} answers none of {len(test)} test questions correctly; nothing to analyse "
                         "(set only_correct=false to analyse its own answers anyway)")
    by_len: dict[int, list[int]] = {}
    for i in kept:
        by_len.setdefault(len(test[i].question.split()), []).append(i)

    E = len(EDGES)
    scores = np.full((len(test), E, L), np.nan)
    pbase = np.full(len(test), np.nan)
    all_layers = np.full(len(test), np.nan)  # score with every position->last edge blocked in every layer
    n_obj = np.zeros(len(test))
    cut_first: dict[int, torch.Tensor] = {}  # per question length: last-position logits with everything cut
    cut_spread = 0.0
    lens_norm = np.full((len(test), L + 1), np.nan)
    lens_raw = np.full((len(test), L + 1), np.nan)
    fast_gap, none_gap, lens_gap = 0.0, 0.0, 0.0
    timing = {"clean_forward_s": 0.0, "fast_sweep_s": 0.0, "full_sweep_s": 0.0}
    checks = []
    for length, idx in sorted(by_len.items()):
        for bi, part in enumerate(_batches(idx, config.batch_size)):
            samples = [test[i] for i in part]
            b = encode(m.tokenizer, samples)
            inputs = {"tokens": b["tokens"], "pixels": b["pixels"]}
            answer = preds[part]
            groups = position_groups(b, samples)
            cache = clean_cache(m, inputs)
            res = sweep(m, inputs, groups, EDGES, answer, k=k, fast=True, cache=cache)
            for e, name in enumerate(EDGE_NAMES):
                scores[part, e] = res["score"][name].T.numpy()
            pbase[part] = res["p_base"].numpy()
            cut = last_row_knockout(m, cache, groups["all"], range(L))
            cut_spread = max(cut_spread, float((cut - cut_first.setdefault(length, cut[0].clone())).abs().max()))
            all_layers[part] = relative_change(answer_prob(cut, answer).cpu(), res["p_base"]).numpy()
            n_obj[part] = groups["object"].sum(1).numpy()
            lens = logit_lens_last(m, b, answer)
            lens_norm[part], lens_raw[part] = lens["with_norm"].T, lens["without_norm"].T
            lens_gap = max(lens_gap, lens["final_gap"])
            if bi < config.check_batches:
                gap, t = fast_vs_full_gap(m, inputs, groups, cache, k)
                fast_gap = max(fast_gap, gap)
                timing = {key: timing[key] + t[key] for key in timing}
                checks.append((inputs, groups))
                none_gap = max(none_gap, nothing_blocked_gap(m, inputs, cache.logits))
        log.info("questions of %d words: %d samples done", length, len(idx))

    # The same fast-vs-full comparison in float64: it checks that the two computations are the
    # same function, free of float32 rounding (which reaches ~1e-5 on a trained model's logits).
    fast_gap64 = 0.0
    def _cast(dtype):
        m.module.to(dtype)
        m.module.original_model.to(dtype)  # holds the projector, which the bridge does not list

    _cast(torch.float64)
    try:
        for inputs, groups in checks:
            inp = {"tokens": inputs["tokens"], "pixels": inputs["pixels"].double()}
            fast_gap64 = max(fast_gap64, fast_vs_full_gap(m, inp, groups, clean_cache(m, inp), k)[0])
    finally:
        _cast(torch.float32)

    ok = np.array(kept, dtype=int)
    info_free = _info_free_reference(by_len, preds.numpy(), pbase)
    mean = np.nanmean(scores[ok], axis=0)  # [E, L]
    types = [t for t in QUESTION_TYPES if any(test[i].qtype == t for i in kept)]
    by_type = np.stack([np.nanmean(scores[[i for i in kept if test[i].qtype == t]], axis=0) for t in types])
    n_patch_obj = n_obj[ok][:, None]
    n_patch_non = 64 - n_patch_obj
    e_obj, e_non = EDGE_NAMES.index("object->question"), EDGE_NAMES.index("nonobject->question")
    has_obj = n_patch_obj[:, 0] > 0
    per_patch_obj = np.nanmean(scores[ok][has_obj, e_obj] / n_patch_obj[has_obj], axis=0)  # [L]
    per_patch_non = np.nanmean(scores[ok][:, e_non] / n_patch_non, axis=0)
    lens_mean = {"with_norm": np.nanmean(lens_norm[ok], 0), "without_norm": np.nanmean(lens_raw[ok], 0)}

    result = Result("crossmodal")
    edge = {name: mean[e] for e, name in enumerate(EDGE_NAMES)}
    peak_iq = int(np.argmin(edge["image->question"]))
    peak_ql = int(np.argmin(edge["question->last"]))
    result.metrics.update({
        "model": m.model_id, "n_layers": L, "window": k, "n_test": len(test), "n_correct": len(kept),
        "accuracy": accuracy, "accuracy_by_type": acc_type,
        "types_at_chance": at_chance, "test_scenes_disjoint_verified": keys is not None,
        "mean_score_by_edge": {n: v.round(3).tolist() for n, v in edge.items()},
        "peak_layer": {n: int(np.argmin(v)) for n, v in edge.items()},
        "largest_drop_by_type": {t: {n: round(float(-np.nanmin(by_type[ti, e])), 2) for e, n in enumerate(EDGE_NAMES)}
                                 for ti, t in enumerate(types)},
        "per_patch_score": {"object": per_patch_obj.round(4).tolist(), "nonobject": per_patch_non.round(4).tolist()},
        "logit_lens_with_norm": lens_mean["with_norm"].round(4).tolist(),
        "logit_lens_without_norm": lens_mean["without_norm"].round(4).tolist(),
        "fast_vs_full_max_logit_gap": fast_gap, "fast_vs_full_max_logit_gap_float64": fast_gap64,
        "question_types": types,
        "all_to_last_every_layer_by_type": {t: round(float(np.nanmean(all_layers[[i for i in kept if test[i].qtype == t]])), 2)
                                            for t in types},
        "sweep_timing": {**{key: round(v, 4) for key, v in timing.items()},
                         "edges_into_last": sum(d == "last" for _, d in EDGES), "windows": L,
                         "fast_sweep_over_clean_forward": timing["fast_sweep_s"] / max(timing["clean_forward_s"], 1e-9),
                         "full_over_fast": timing["full_sweep_s"] / max(timing["fast_sweep_s"], 1e-9)},
    })
    result.add_criterion("vlm_test_accuracy", accuracy, ">=", 0.9, kind="sanity",
                         description="fraction of test questions (scenes unseen in training) answered correctly")
    all_cut = float(np.nanmean(all_layers[ok]))
    ref = float(np.nanmean(info_free[ok]))
    result.metrics.update({"all_to_last_every_layer_score": all_cut, "all_to_last_info_free_reference": ref,
                           "all_to_last_info_free_reference_by_type": {
                               t: round(float(np.nanmean(info_free[[i for i in kept if test[i].qtype == t]])), 2)
                               for t in types}})
    result.add_criterion("all_to_last_is_minus_100", abs(all_cut + 100), "<=", 5.0, kind="sanity",
                         description=f"|mean score + 100| when every position->last edge is blocked in every layer "
                                     f"at once (mean score {all_cut:.1f}%; guessing from the question length alone, with the "
                                     f"frequencies of the model's answers at that length, scores {ref:.1f}%)")
    result.add_criterion("all_to_last_output_ignores_input", cut_spread, "<=", 1e-6, kind="sanity",
                         description="max |last-position logit difference| between test questions of one length "
                                     "with every position->last edge blocked in every layer (nothing from the image "
                                     "or the question reaches the answer)")
    result.add_criterion("nothing_blocked_is_zero", none_gap, "==", 0.0, kind="sanity",
                         description="max |logit change| when the knockout edit runs in every layer with nothing blocked")
    result.add_criterion("kv_reuse_equals_full_recompute", fast_gap64, "<=", 1e-5, kind="sanity",
                         description="max |last-position logits, key/value-reusing sweep - full recompute| over "
                                     "every edge into last and every window, both run in float64 (float32: "
                                     f"{fast_gap:.2e}, rounding only)")
    result.add_criterion("lens_final_equals_logits", lens_gap, "<=", 1e-4, kind="sanity",
                         description="max |logit lens (with final norm) at the last layer - model logits|")
    result.add_criterion("image_to_question_peaks_before_question_to_last", float(peak_ql - peak_iq), ">", 0.0,
                         kind="claim", description=f"layer of the question->last drop ({peak_ql}) minus layer of the "
                                                   f"image->question drop ({peak_iq})")
    result.add_criterion("image_to_last_small", float(np.max(np.abs(edge["image->last"]))), "<", 20.0, kind="claim",
                         description="max over layers |mean score| of image->last (%)")
    result.add_criterion("question_to_last_large", float(-np.min(edge["question->last"])), ">=", 50.0, kind="claim",
                         description="largest drop (%) of question->last over windows")
    obj_peak, non_peak = float(-np.nanmin(per_patch_obj)), float(-np.nanmin(per_patch_non))
    result.add_criterion("object_patches_matter_more_per_patch", obj_peak - non_peak, ">", 0.0, kind="claim",
                         description=f"largest per-patch drop of object->question ({obj_peak:.3f} %/patch) minus "
                                     f"that of non-object->question ({non_peak:.3f} %/patch)")

    # dashboard samples: images, questions, per-sample curves, last-row attention over the image
    rng = np.random.default_rng(config.seed)
    pick = sorted(rng.choice(ok, min(config.n_dashboard_samples, len(ok)), replace=False).tolist())
    attn = np.zeros((len(pick), L, 64), np.float32)
    for j, i in enumerate(pick):
        attn[j] = last_row_attention(m, encode(m.tokenizer, [test[i]]))[0]
    result.arrays.update({
        "edge_scores": mean, "edge_scores_by_type": by_type, "per_patch_object": per_patch_obj,
        "per_patch_nonobject": per_patch_non, "lens_with_norm": lens_mean["with_norm"],
        "lens_without_norm": lens_mean["without_norm"], "sample_scores": scores[pick].astype(np.float32),
        "sample_images": np.stack([test[i].image for i in pick]).astype(np.float32),
        "sample_questions": np.array([test[i].question for i in pick]),
        "sample_answers": np.array([test[i].answer for i in pick]),
        "sample_types": np.array([test[i].qtype for i in pick]),
        "sample_object_patches": np.stack([test[i].object_patches for i in pick]),
        "sample_last_attention": attn, "edge_names": np.array(EDGE_NAMES), "question_types": np.array(types),
        "p_base": pbase[ok].astype(np.float32), "all_to_last_every_layer": all_layers[ok].astype(np.float32),
    })
    result.figures.update({
        "knockout_edges": plots.edge_curves(mean, EDGE_NAMES, k),
        "knockout_by_type": plots.edges_by_type(by_type, EDGE_NAMES, types, k),
        "object_vs_nonobject": plots.per_patch_curves(per_patch_obj, per_patch_non, k),
        "logit_lens": plots.logit_lens(lens_mean["with_norm"], lens_mean["without_norm"]),
        "last_attention_image": plots.attention_on_image(result.arrays["sample_images"][0], attn[0],
                                                         str(result.arrays["sample_questions"][0])),
    })
    return result


# ---------------------------------------------------------------- Hugging Face LLaVA
def run_llava(config: Config) -> Result:
    """The knockout sweep on a Hugging Face LLaVA (``model: hf-llava:<hub name | directory | tiny-random>``).

    Every window is a full recompute with the paper's additive-mask edit
    (:mod:`interp.models.llava`); no fast path. Questions are the synthetic VQA test set
    (upscaled by the processor for a real LLaVA). On ``tiny-random`` (untrained) the
    model's own answers are analysed whatever ``only_correct`` says."""
    import interp
    from interp.data.crossmodal import QUESTION_TYPES, make_samples
    from interp.methods.knockout import answer_prob, edge_block, relative_change, window
    from interp.models.llava import hf_knockout_logits, load_llava, synthetic_inputs

    name = config.model.split(":", 1)[1]
    model, processor, tok = load_llava(name, config.device, config.seed)
    m = interp.wrap(model, tokenizer=tok, model_id=config.model)  # nnsight-traceable handle
    from interp.models.llava import decoder_layers

    L, k = len(decoder_layers(model)), config.window
    test, _ = make_samples(config.n_test, config.seed, "test")
    edges = [(s, d) for s, d in EDGES if (s, d) != ("all", "last")] + [("allbutlast", "last")]
    names = [f"{s}->{d}" for s, d in edges]
    by_len: dict[int, list[int]] = {}
    for i, s in enumerate(test):
        by_len.setdefault(len(s.question.split()), []).append(i)
    scores = np.full((len(test), len(edges), L), np.nan)
    correct = np.zeros(len(test), bool)
    for _, idx in sorted(by_len.items()):
        for part in _batches(idx, config.batch_size):
            samples = [test[i] for i in part]
            inputs, groups = synthetic_inputs(model, processor, tok, samples, config.device)
            groups["allbutlast"] = groups["all"] & ~groups["last"]
            B, T = inputs["input_ids"].shape
            clean = hf_knockout_logits(model, inputs, torch.zeros(B, T, T, dtype=torch.bool), [])
            answer = clean.argmax(-1).cpu()
            words = [tok.decode([int(a)]).strip().lower() for a in answer]
            correct[part] = [w == s.answer for w, s in zip(words, samples)]
            p_base = answer_prob(clean.cpu(), answer)
            for e, (src, dst) in enumerate(edges):
                block = edge_block(groups[dst], groups[src])
                for l in range(L):
                    p = answer_prob(hf_knockout_logits(model, inputs, block, window(l, k, L)).cpu(), answer)
                    scores[part, e, l] = relative_change(p, p_base).numpy()
    use = [i for i in range(len(test)) if correct[i] or not config.only_correct or name == "tiny-random"]
    if not use:
        raise ValueError(f"{config.model} answered none of the {len(test)} questions correctly")
    mean = np.nanmean(scores[use], axis=0)
    types = [t for t in QUESTION_TYPES if any(test[i].qtype == t for i in use)]
    by_type = np.stack([np.nanmean(scores[[i for i in use if test[i].qtype == t]], axis=0) for t in types])
    edge = {n: mean[e] for e, n in enumerate(names)}
    result = Result("crossmodal")
    result.metrics.update({"model": config.model, "n_layers": L, "window": k, "n_test": len(test),
                           "n_analysed": len(use), "accuracy": float(correct.mean()), "backend": "hf-llava",
                           "n_hooks": len(m.hook_names),
                           "mean_score_by_edge": {n: v.round(3).tolist() for n, v in edge.items()}})
    if name != "tiny-random":
        result.add_criterion("vlm_test_accuracy", float(correct.mean()), ">=", 0.9, kind="sanity",
                             description="fraction of synthetic test questions answered correctly")
    result.add_criterion("all_but_self_to_last_is_minus_100", float(np.max(np.abs(edge["allbutlast->last"] + 100))),
                         "<=", 5.0, kind="claim" if name == "tiny-random" else "sanity",
                         description="max over layers |mean score + 100| blocking every other position -> last "
                                     "(an untrained model need not depend on its input)")
    result.add_criterion("image_to_last_small", float(np.max(np.abs(edge["image->last"]))), "<", 20.0, kind="claim",
                         description="max over layers |mean score| of image->last (%)")
    result.add_criterion("question_to_last_large", float(-np.min(edge["question->last"])), ">=", 50.0, kind="claim",
                         description="largest drop (%) of question->last over windows")
    result.arrays.update({"edge_scores": mean, "edge_scores_by_type": by_type, "edge_names": np.array(names),
                          "question_types": np.array(types)})
    from interp.plotting import crossmodal as plots

    result.figures.update({"knockout_edges": plots.edge_curves(mean, names, k),
                           "knockout_by_type": plots.edges_by_type(by_type, names, types, k)})
    return result
