"""The computational graph of a transformer at the level of edges between components.

*Writers* add to the residual stream: the input embedding (token plus positional embedding,
``blocks.0.hook_resid_pre``), every attention head's own output ``z_h W_O[h]`` and every MLP
(``hook_mlp_out``). *Readers* take from it: every head's query, key and value input (keys and
values per key/value head under grouped-query attention), every MLP input and the logits
(the final norm's input). In a pre-norm transformer each reader's input is the sum of the
outputs of the writers before it plus constant biases (the attention output biases ``b_O``,
which belong to no head and are the same on every prompt), so an edge ``u -> v`` is "what
``u`` adds to ``v``'s input" and patching it changes ``v``'s input by ``a_u' - a_u`` only.

Writers are ordered by when they run, so the writers a reader sees are a prefix of the
writer list: ``n_up[r]``. With parallel attention and MLP (GPT-NeoX) an MLP does not see its
own block's heads, which the prefix encodes. Post-norm models (BERT) break the identity and
are refused by :func:`build_graph` with the reason.

    g = build_graph(m)                       # checks the identities on the model, then
    g.n_writers, g.n_readers, g.n_edges      # writers, readers, valid edges (u before v)
    sg = ScoredGraph(g, scores, method="eap")  # scores [writers, readers], NaN off-graph
    sg.save(dir); ScoredGraph.load(dir)
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from jaxtyping import Bool, Float, Int

GRAPH_VERSION = 1


@dataclass(frozen=True)
class Node:
    """One writer or reader: ``kind`` is ``input``, ``head``, ``mlp`` (writers) or ``q``, ``k``,
    ``v``, ``mlp_in``, ``logits`` (readers); ``head`` is the query head (``q``, ``head``) or the
    key/value head (``k``, ``v``); ``layer`` is -1 for the input and ``n_layers`` for logits."""

    name: str
    kind: str
    layer: int
    head: int | None = None


@dataclass(frozen=True)
class Edge:
    """An edge ``writer -> reader`` by index into :attr:`Graph.writers` / :attr:`Graph.readers`."""

    writer: int
    reader: int


@dataclass
class Graph:
    """Writers, readers and which edges exist, for one model's shape (holds no model)."""

    model_id: str
    n_layers: int
    n_heads: int
    n_kv_heads: int
    has_mlp: bool
    parallel: bool
    writers: list[Node] = field(default_factory=list)
    readers: list[Node] = field(default_factory=list)
    n_up: Int[np.ndarray, " readers"] = field(default_factory=lambda: np.zeros(0, int))

    # ------------------------------------------------------------------ indexing
    @property
    def n_writers(self) -> int:
        return len(self.writers)

    @property
    def n_readers(self) -> int:
        return len(self.readers)

    @property
    def per_layer_writers(self) -> int:
        return self.n_heads + int(self.has_mlp)

    def head_writer(self, layer: int, head: int) -> int:
        return 1 + layer * self.per_layer_writers + head

    def mlp_writer(self, layer: int) -> int:
        if not self.has_mlp:
            raise ValueError("this model has no MLPs (attention only)")
        return 1 + layer * self.per_layer_writers + self.n_heads

    @property
    def per_layer_readers(self) -> int:
        return self.n_heads + 2 * self.n_kv_heads + int(self.has_mlp)

    def attn_readers(self, layer: int) -> slice:
        """The layer's q (``heads``), k, v (``kv_heads`` each) readers, in that order."""
        start = layer * self.per_layer_readers
        return slice(start, start + self.n_heads + 2 * self.n_kv_heads)

    def mlp_reader(self, layer: int) -> int:
        if not self.has_mlp:
            raise ValueError("this model has no MLPs (attention only)")
        return layer * self.per_layer_readers + self.n_heads + 2 * self.n_kv_heads

    @property
    def logits_reader(self) -> int:
        return self.n_readers - 1

    @property
    def valid(self) -> Bool[np.ndarray, "writers readers"]:
        """``valid[u, r]``: writer ``u`` runs before reader ``r`` (the edge exists)."""
        return np.arange(self.n_writers)[:, None] < self.n_up[None, :]

    @property
    def n_edges(self) -> int:
        return int(self.n_up.sum())

    def edges(self) -> list[Edge]:
        """Every valid edge, reader-major (the order of ``valid.T.nonzero()``)."""
        return [Edge(int(u), int(r)) for r, u in zip(*np.nonzero(self.valid.T), strict=True)]

    def edge_name(self, e: Edge) -> str:
        return f"{self.writers[e.writer].name}->{self.readers[e.reader].name}"

    # ------------------------------------------------------------------ files
    def to_json(self) -> dict[str, Any]:
        return {
            "version": GRAPH_VERSION,
            "model_id": self.model_id,
            "n_layers": self.n_layers,
            "n_heads": self.n_heads,
            "n_kv_heads": self.n_kv_heads,
            "has_mlp": self.has_mlp,
            "parallel": self.parallel,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Graph:
        if d.get("version") != GRAPH_VERSION:
            raise ValueError(
                f"circuit graph version {d.get('version')!r}; this interp reads {GRAPH_VERSION}"
            )
        return make_graph(
            d["model_id"], d["n_layers"], d["n_heads"], d["n_kv_heads"], d["has_mlp"], d["parallel"]
        )


def make_graph(
    model_id: str, n_layers: int, n_heads: int, n_kv_heads: int, has_mlp: bool, parallel: bool
) -> Graph:
    """The graph of a pre-norm transformer of this shape (no model needed; :func:`build_graph`
    reads the shape off a model and checks the identities the graph relies on)."""
    if n_heads % max(n_kv_heads, 1):
        raise ValueError(f"n_heads={n_heads} is not a multiple of n_kv_heads={n_kv_heads}")
    writers = [Node("input", "input", -1)]
    readers: list[Node] = []
    n_up: list[int] = []
    kv = "h" if n_kv_heads == n_heads else "kv"
    for layer in range(n_layers):
        before = len(writers)  # what this layer's attention reads
        readers += [Node(f"a{layer}.h{h}<q>", "q", layer, h) for h in range(n_heads)]
        readers += [
            Node(f"a{layer}.{kv}{g}<{c}>", c, layer, g) for c in "kv" for g in range(n_kv_heads)
        ]
        n_up += [before] * (n_heads + 2 * n_kv_heads)
        writers += [Node(f"a{layer}.h{h}", "head", layer, h) for h in range(n_heads)]
        if has_mlp:
            readers.append(Node(f"m{layer}<in>", "mlp_in", layer))
            n_up.append(before if parallel else len(writers))
            writers.append(Node(f"m{layer}", "mlp", layer))
    readers.append(Node("logits", "logits", n_layers))
    n_up.append(len(writers))
    return Graph(
        model_id,
        n_layers,
        n_heads,
        n_kv_heads,
        has_mlp,
        parallel,
        writers,
        readers,
        np.asarray(n_up, dtype=int),
    )


@dataclass
class ScoredGraph:
    """Edge scores of one method on one task: ``scores[u, r]`` (NaN where the edge does not
    exist) estimate the mean change of the metric when edge ``u -> r`` alone is patched."""

    graph: Graph
    scores: Float[np.ndarray, "writers readers"]
    method: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        want = (self.graph.n_writers, self.graph.n_readers)
        self.scores = np.asarray(self.scores, dtype=np.float64)
        if self.scores.shape != want:
            raise ValueError(f"scores have shape {self.scores.shape}, the graph needs {want}")
        self.scores = np.where(self.graph.valid, self.scores, np.nan)

    def edge_scores(self) -> Float[np.ndarray, " edges"]:
        """Scores of :meth:`Graph.edges`, in that order."""
        scores: np.ndarray = self.scores.T[self.graph.valid.T]
        return scores

    def top_edges(self, k: int, absolute: bool = True) -> Bool[np.ndarray, "writers readers"]:
        """The ``k`` edges with the largest (absolute) score, as a mask ``[writers, readers]``;
        ties are broken by edge order so the result is deterministic."""
        return top_k_mask(self.scores, self.graph.valid, k, absolute)

    def save(self, path: str | Path) -> None:
        """``graph.json`` (shape, method, meta) and ``scores.npy``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        np.save(path / "scores.npy", self.scores)
        (path / "graph.json").write_text(
            json.dumps(
                {"graph": self.graph.to_json(), "method": self.method, "meta": self.meta}, indent=1
            )
        )

    @classmethod
    def load(cls, path: str | Path) -> ScoredGraph:
        path = Path(path)
        d = json.loads((path / "graph.json").read_text())
        return cls(
            Graph.from_json(d["graph"]),
            np.load(path / "scores.npy"),
            d.get("method", ""),
            d.get("meta", {}),
        )


def top_k_mask(scores: np.ndarray, valid: np.ndarray, k: int, absolute: bool = True) -> np.ndarray:
    """Mask of the ``k`` valid entries of ``scores`` ranked highest (by ``|score|`` when
    ``absolute``); a stable sort keeps ties in index order."""
    n = int(valid.sum())
    if not 0 <= k <= n:
        raise ValueError(f"k={k}: choose between 0 and {n} edges")
    s = np.where(valid, np.abs(scores) if absolute else scores, -np.inf).ravel()
    s = np.nan_to_num(s, nan=-np.inf)
    order = np.argsort(-s, kind="stable")[:k]
    mask = np.zeros(scores.size, dtype=bool)
    mask[order] = True
    out: np.ndarray = mask.reshape(scores.shape) & valid
    return out


def node_dicts(nodes: list[Node]) -> list[dict[str, Any]]:
    """Plain dicts of nodes (for JSON reports)."""
    return [asdict(n) for n in nodes]
