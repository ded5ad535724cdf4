"""Tracing: hook naming, trace/edit, batched collection, the activation store.

- ``model.py``: :class:`Model`, one wrapper over TransformerLens bridges, our hooked
  RNNs and any ``nn.Module`` (through nnsight), with one hook-name scheme
  (``Model.hook``, ``Model.resid_names``), and ``wrap`` for any module.
- ``trace.py``: ``trace`` (capture and edit activations on one batch) and edit helpers.
- ``generate.py``: ``generate``, the one generation loop (key/value cache, edits that know
  their absolute positions, captures per step); ``steps.py``: how it runs one step (key/value
  caches: the Hugging Face model's own, ``NativeKV`` for zoo transformers, none).
- ``collect.py`` / ``adapters.py`` / ``runners.py`` / ``sinks.py`` / ``store.py``: streaming
  collection into an :class:`ActivationStore`; ``distributed.py``: several processes.

``load_model`` lives in :mod:`interp.models.load` (loading needs the zoo; tracing does not).
"""
