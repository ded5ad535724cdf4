"""Tracing: hook naming, trace/edit, batched collection, the activation store.

- ``model.py``: :class:`Model`, one wrapper over TransformerLens bridges, our hooked
  RNNs and any ``nn.Module`` (through nnsight), with one hook-name scheme.
- ``load.py``: ``load_model`` (``zoo:``, ``hf:``, directories) and ``wrap``.
- ``trace.py``: ``trace`` (capture and edit activations on one batch) and edit helpers.
- ``collect.py`` / ``store.py``: streaming collection into an :class:`ActivationStore`.
"""
