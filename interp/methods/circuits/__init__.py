"""Edge-level circuits (``docs/analyses/circuits.md``).

- ``graph.py``: ``Node``, ``Edge``, ``Graph`` (writers, readers, which edges exist),
  ``ScoredGraph`` (scores per edge; save / load), ``top_k_mask``.
- ``forward.py``: ``build_graph`` (checks the identities the graph relies on), the split
  forward ``run`` (every reader its own input; patches; gradient leaves) and
  ``fast_reader_grads`` (every reader's gradient from one plain forward and backward).
- ``attribution.py``: ``edge_attribution`` (EAP, EAP-IG), ``exact_edge_scores``.
- ``evaluation.py``: ``CircuitEvaluator`` (circuit runs, faithfulness curves, random
  baselines), ``areas`` (CPR, CMD), ``path_patching``.
- ``scorers.py``: the edge scorers by name (``eap``, ``eap-ig``, ``exact``), one signature,
  ``register`` / ``get`` / ``names``.
"""
