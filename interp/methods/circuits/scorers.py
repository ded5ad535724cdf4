"""Edge scorers by name: EAP, EAP-IG and exact single-edge patching behind one signature.

Every scorer is ``score(m, clean, corrupt, metric, *, graph, batch_size, **options) ->
ScoredGraph`` (scores: the mean over prompts of ``metric(edge patched) - metric(clean)``, NaN
off the graph or where not computed), so an analysis picks one by name and swaps it without
changing its code::

    from interp.methods.circuits import scorers

    scorers.names()                                   # ['eap', 'eap-ig', 'exact']
    sg = scorers.get("eap-ig")(m, clean, corrupt, metric, graph=g, steps=5)

:func:`register` adds one (a taken name is a ``ValueError``); :func:`get` of an unknown name is
a ``KeyError`` that lists the registered ones and the closest. The same pattern as the steering
methods' registry (:mod:`interp.methods.steering`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from interp.methods.circuits.attribution import (
    Metric,
    Prompts,
    edge_attribution,
    exact_edge_scores,
)
from interp.methods.circuits.graph import Edge, Graph, ScoredGraph
from interp.tracing.model import Model
from interp.utils import Registry


class Scorer(Protocol):
    """What every registered scorer is: paired prompts (token ids or text, same shape) and a
    metric ``metric(logits [b, pos, vocab], idx [b]) -> [b]`` in, edge scores out."""

    def __call__(
        self,
        m: Model,
        clean: Prompts,
        corrupt: Prompts,
        metric: Metric,
        *,
        graph: Graph | None = None,
        batch_size: int = 16,
        **options: Any,
    ) -> ScoredGraph: ...


# A scorer takes its own keyword options (steps=, edges=, ...), which the Protocol's
# ``**options`` stands for: a signature cannot say "these options and no others".
_SCORERS: Registry[Scorer] = Registry("edge scorer")
# register(name): decorator for an edge scorer; a taken name is a ValueError. names(): the
# registered scorers. get(name): a scorer (KeyError listing close and valid names).
register = _SCORERS.register
names = _SCORERS.names
get = _SCORERS.get


@register("eap")
def eap(
    m: Model,
    clean: Prompts,
    corrupt: Prompts,
    metric: Metric,
    *,
    graph: Graph | None = None,
    batch_size: int = 16,
) -> ScoredGraph:
    """EAP (Syed et al. 2023): the corrupt-minus-clean writer output dotted with the reader's
    gradient at the clean run."""
    return edge_attribution(
        m, clean, corrupt, metric, method="eap", graph=graph, batch_size=batch_size
    )


@register("eap-ig")
def eap_ig(
    m: Model,
    clean: Prompts,
    corrupt: Prompts,
    metric: Metric,
    *,
    graph: Graph | None = None,
    batch_size: int = 16,
    steps: int = 5,
) -> ScoredGraph:
    """EAP-IG (Hanna et al. 2024, inputs variant): the gradient averaged over ``steps``
    interpolations of the input embedding from corrupt to clean."""
    return edge_attribution(
        m,
        clean,
        corrupt,
        metric,
        method="eap-ig",
        steps=steps,
        graph=graph,
        batch_size=batch_size,
    )


@register("exact")
def exact(
    m: Model,
    clean: Prompts,
    corrupt: Prompts,
    metric: Metric,
    *,
    graph: Graph | None = None,
    batch_size: int = 16,
    edges: Sequence[Edge] | None = None,
    alpha: float = 1.0,
    max_rows: int = 256,
) -> ScoredGraph:
    """Exact single-edge activation patching of ``edges`` (default: every edge), each carrying
    ``alpha`` of the way from the clean to the corrupt writer output."""
    return exact_edge_scores(
        m,
        clean,
        corrupt,
        metric,
        edges=edges,
        graph=graph,
        alpha=alpha,
        batch_size=batch_size,
        max_rows=max_rows,
    )


__all__ = ["Scorer", "register", "names", "get", "eap", "eap_ig", "exact"]
