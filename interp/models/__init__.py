"""Model zoo: small transformers (TransformerLens native), hookable RNNs, one training loop,
save/load.

- ``transformer.py``: :class:`TransformerSpec` -> ``TransformerBridge`` (``boot_native``).
- ``rnn.py``: :class:`HookedRNN` (tanh/ReLU/GRU/LSTM) with per-step hooks.
- ``train.py``: the one training loop (:func:`train`, :class:`TrainConfig`).
- ``zoo.py``: the recipe registry and cache; ``recipes.py`` and ``*_recipes.py`` register recipes.
- ``io.py``: save/load directories; :func:`register_builder` for new architectures.
"""
