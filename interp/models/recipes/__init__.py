"""Zoo recipes, one module per family, each named after the analysis that uses it.

:data:`FAMILIES` is the one list of recipe modules: :func:`interp.models.zoo.names` imports
exactly these (no file-name rule), and a test fails when a module in this package is
missing from it. Adding a family: write ``<family>.py`` with ``@recipe(...)`` functions and
add its name here.
"""

from __future__ import annotations

import importlib

FAMILIES: tuple[str, ...] = (
    "code_lm",  # code LMs on the stdlib: model_report, bigram, the explorer
    "ngram_heads",  # in-context language learning: transformer, LSTM, LSTM + n-gram layers
    "rnn_hmm",  # noise-driven RNNs emulating HMMs
    "sae_circuits",  # template-language LMs with planted circuits
    "crossmodal",  # tiny LLaVA-style VLMs on synthetic VQA
    "reversal",  # causal and masked LMs on synthetic facts
)


def import_all() -> None:
    """Import every recipe family (each registers its recipes with the zoo)."""
    for family in FAMILIES:
        importlib.import_module(f"{__name__}.{family}")
