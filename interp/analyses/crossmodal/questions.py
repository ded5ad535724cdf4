"""The model and its questions: load the VLM, draw test questions its training never showed,
and read its own answers (the knockout scores measure the model's answer, right or wrong)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import torch
from scipy.stats import binomtest

import interp
import interp.models.vlm  # noqa: F401  (registers the "vlm" builder for model directories)
from interp.analyses.crossmodal.config import Config
from interp.analyses.crossmodal.types import CleanAnswers, Questions
from interp.data.crossmodal import (
    CHANCE,
    QUESTION_TYPES,
    Sample,
    encode,
    make_samples,
    train_scene_keys,
)
from interp.models import zoo
from interp.models.io import MODEL_FILE
from interp.models.recipes.crossmodal import training_extra_types
from interp.tracing.model import Model
from interp.tracing.trace import trace
from interp.utils import read_json

log = logging.getLogger(__name__)
T = TypeVar("T")


def _training_keys(model_name: str) -> set | None:
    """Scene keys of the model's training set (so test scenes are disjoint), if known."""
    cfg = None
    if model_name.startswith("zoo:"):
        cfg = zoo.get(model_name[4:]).config.model_dump()
    else:
        path = Path(model_name) / MODEL_FILE
        if path.exists():
            cfg = read_json(path).get("recipe_config")
    if not cfg or "n_train" not in cfg:
        return None
    return train_scene_keys(
        cfg["n_train"], cfg["seed"], (*QUESTION_TYPES, *training_extra_types(cfg))
    )


def types_at_chance(
    samples: Sequence[Sample], correct: torch.Tensor, alpha: float = 0.01
) -> list[str]:
    """Question types whose accuracy is not significantly above guessing (one-sided binomial
    test at ``alpha`` against :data:`interp.data.crossmodal.CHANCE`)."""
    out = []
    for t in QUESTION_TYPES:
        idx = [i for i, s in enumerate(samples) if s.qtype == t]
        if idx:
            k = int(correct[idx].sum())
            if binomtest(k, len(idx), CHANCE[t], alternative="greater").pvalue > alpha:
                out.append(t)
    return out


def batches(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of ``items`` of at most ``size``."""
    for i in range(0, len(items), size):
        yield items[i : i + size]


def clean_predictions(
    m: Model, samples: Sequence[Sample], batch_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted answer ids and whether each is right, for ``samples`` (any lengths)."""
    preds, correct = [], []
    for part in batches(samples, batch_size):
        b = encode(m.tokenizer, part)
        out, _ = trace(m, {"tokens": b["tokens"], "pixels": b["pixels"]})
        logits = out[torch.arange(len(part)), b["last"]]
        p = logits.argmax(-1).cpu()
        preds.append(p)
        correct.append(p == b["answer"])
    return torch.cat(preds), torch.cat(correct)


def load_vlm(config: Config) -> Model:
    """The configured zoo VLM (or a directory holding one)."""
    m = interp.load_model(config.model, device=config.device)
    if m.kind != "vlm":
        raise ValueError(
            f"crossmodal needs a VLM (zoo:vlm-tiny, zoo:vlm-6l or hf-llava:<name>); "
            f"{config.model} is a {m.kind}"
        )
    log.info("model %s: %d layers; window %d", m.model_id, m.n_layers, config.window)
    return m


def unseen_questions(config: Config) -> Questions:
    """The test questions (scenes disjoint from the model's training set where it is known)
    and the training scene keys (None: unknown)."""
    keys = _training_keys(config.model)
    test, _ = make_samples(config.n_test, config.seed, "test", exclude=keys)
    log.info(
        "%d test questions (%s scenes disjoint from training)",
        len(test),
        "verified" if keys else "UNVERIFIED",
    )
    return Questions(test, keys)


def clean_answers(m: Model, test: list[Sample], config: Config) -> CleanAnswers:
    """The model's own answers on ``test``: predictions, correctness, accuracy (overall and by
    type), types at chance, and the analysed samples grouped by question length."""
    preds, correct = clean_predictions(m, test, config.batch_size)
    accuracy = float(correct.float().mean())
    acc_type = {
        t: float(correct[[i for i, s in enumerate(test) if s.qtype == t]].float().mean())
        for t in QUESTION_TYPES
        if any(s.qtype == t for s in test)
    }
    log.info("test accuracy %.3f %s", accuracy, acc_type)
    at_chance = types_at_chance(test, correct)
    if at_chance:
        log.warning(
            "question types answered no better than chance (their knockout curves reflect "
            "guesses): %s",
            ", ".join(at_chance),
        )
    # correctly answered samples, grouped by question length (one template per group)
    kept = [i for i in range(len(test)) if correct[i] or not config.only_correct]
    if not kept:
        raise ValueError(
            f"{m.model_id} answers none of {len(test)} test questions correctly; nothing to "
            "analyse (set only_correct=false to analyse its own answers anyway)"
        )
    by_len: dict[int, list[int]] = {}
    for i in kept:
        by_len.setdefault(len(test[i].question.split()), []).append(i)
    return CleanAnswers(
        preds=preds,
        accuracy=accuracy,
        accuracy_by_type=acc_type,
        types_at_chance=at_chance,
        kept=kept,
        by_len=by_len,
    )
