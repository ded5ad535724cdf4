"""Models: the architectures we build, the zoo that trains them, and loading any model.

- ``transformer.py``: :class:`TransformerSpec` -> ``TransformerBridge`` (``boot_native``).
- ``rnn.py``: :class:`HookedRNN` (tanh/ReLU/GRU/LSTM) with per-step hooks;
  ``hmm_rnn.py`` (noise-driven RNN emitting HMM outputs), ``ngram_layer.py`` (LSTM with
  hard-wired n-gram layers), ``vlm.py`` (tiny LLaVA-style VLM), ``llava.py`` (Hugging Face
  LLaVA through its own hooks).
- ``train.py``: the one training loop (:func:`train`, :class:`TrainConfig`).
- ``zoo.py``: the recipe registry and cache; ``recipes/``: the recipes, one module per family.
- ``io.py``: the saved-directory format (writing); ``builders.py``: the builder table and
  reading a directory back; ``load.py``: ``load_model`` (``zoo:``, ``hf:``, directories).
"""
