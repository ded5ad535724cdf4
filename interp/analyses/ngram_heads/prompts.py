"""The test prompts (one per DFA none of the models was trained on), the oracle and the
in-context n-gram baselines, and the known attention patterns the head scorer is checked on."""

from __future__ import annotations

import functools
import logging
import warnings
from pathlib import Path

import numpy as np
import torch

from interp.analyses.ngram_heads.config import Config
from interp.analyses.ngram_heads.types import BaselineChecks, PromptSet
from interp.data.ngram_heads import (
    PAD,
    DFAConfig,
    DFADataConfig,
    NextToken,
    dfa_set,
    next_token_metrics,
    ngram_baseline,
    ngram_baseline_loop,
    scored_positions,
    test_prompts,
)
from interp.models import zoo
from interp.utils import read_json

log = logging.getLogger(__name__)


def training_dfa_keys(model_name: str) -> set[bytes] | None:
    """Canonical forms of the DFAs a zoo/directory model was trained on (None if unknown)."""
    data = None
    if model_name.startswith("zoo:"):
        cfg = zoo.get(model_name[4:]).config
        data = getattr(cfg, "data", None)
    else:
        meta_path = Path(model_name) / "interp_model.json"
        if meta_path.exists():
            raw = (read_json(meta_path).get("recipe_config") or {}).get("data")
            data = DFADataConfig(**raw) if raw else None
    if not isinstance(data, DFADataConfig):
        return None
    return _keys_of(data.n_dfas, data.seed, data.dfa.model_dump_json())


@functools.cache
def _keys_of(n: int, seed: int, dfa_cfg_json: str) -> frozenset[bytes]:
    """Canonical forms of ``dfa_set(n, seed)`` (cached: the three models share their DFAs)."""
    cfg = DFAConfig.model_validate_json(dfa_cfg_json)
    return frozenset(d.key() for d in dfa_set(n, seed, cfg=cfg))


def unseen_prompts(config: Config, names: dict[str, str]) -> PromptSet:
    """Test DFAs whose languages none of the models was trained on, one prompt each."""
    exclude: set[bytes] = set()
    for name in names.values():
        keys = training_dfa_keys(name)
        if keys is None:
            warnings.warn(
                f"training DFAs of {name} unknown: test DFAs cannot be checked against them",
                stacklevel=2,
            )
        else:
            exclude |= keys
    log.info("%d training DFA languages excluded from the test set", len(exclude))
    test_dfas = dfa_set(config.n_test_dfas, seed=config.seed + 1_000_003, exclude=exclude)
    overlap = len({d.key() for d in test_dfas} & exclude)
    tokens, lengths, valid = test_prompts(test_dfas, config.seed, config.prompt)
    scored = scored_positions(tokens)
    log.info("%d test prompts, %d scored positions", len(tokens), int(scored.sum()))
    return PromptSet(tokens, lengths, valid, scored, len(test_dfas), len(exclude), overlap)


def baselines(ps: PromptSet) -> tuple[dict[str, NextToken], BaselineChecks]:
    """Metrics of the oracle and the in-context 2-/3-gram baselines, and the checks of the
    metric code (the oracle accepts the prompts; the 2-gram baseline computed two ways)."""
    tokens, lengths, valid, scored = ps.tokens, ps.lengths, ps.valid, ps.scored
    targets = torch.full_like(tokens, PAD)
    targets[:, :-1] = tokens[:, 1:]
    target_valid = valid.gather(-1, targets.clamp_max(valid.shape[-1] - 1)[..., None])[..., 0]
    oracle_probs = valid.float() / valid.float().sum(-1, keepdim=True).clamp_min(1)
    evals = {"oracle": next_token_metrics(oracle_probs, valid, scored)}
    evals["2gram"] = next_token_metrics(ngram_baseline(tokens, 2), valid, scored)
    evals["3gram"] = next_token_metrics(ngram_baseline(tokens, 3), valid, scored)
    # the 2-gram baseline a second way: plain Python counts, prediction by prediction
    vec_pred = ngram_baseline(tokens, 2).argmax(-1)  # [n, T]
    loop_correct, disagree = [], 0
    for i in range(len(tokens)):
        preds = ngram_baseline_loop(tokens[i, : lengths[i]].tolist(), 2)
        for t, p in enumerate(preds):
            if scored[i, t]:
                loop_correct.append(p is not None and bool(valid[i, t, p]))
                disagree += int(p != int(vec_pred[i, t]))
    checks = BaselineChecks(
        oracle_valid_frac=float(target_valid[scored].float().mean()),
        bigram_loop_acc=float(np.mean(loop_correct)),
        bigram_disagree=disagree,
    )
    return evals, checks


def loop_2gram_pattern(tokens: torch.Tensor) -> torch.Tensor:
    """``[batch, query, key]``: query ``i`` uniform over the keys ``1 <= j <= i`` that follow an
    earlier copy of its token (``x[j-1] == x[i]``), zero where there is none; plain Python (an
    independent construction of a perfect 2-gram head)."""
    B, T = tokens.shape
    A = torch.zeros(B, T, T)
    for b, row in enumerate(tokens.tolist()):
        for i in range(T):
            keys = [j for j in range(1, i + 1) if row[j - 1] == row[i]]
            for j in keys:
                A[b, i, j] = 1.0 / len(keys)
    return A


def causal_uniform(tokens: torch.Tensor) -> torch.Tensor:
    """``[batch, query, key]`` uniform causal attention."""
    T = tokens.shape[1]
    p = torch.ones(T, T).tril()
    return (p / p.sum(-1, keepdim=True)).expand(tokens.shape[0], T, T)
