"""Corpora, tokenizers and task generators.

- ``corpus.py``: the default natural corpus (the Python standard library's source, present
  wherever Python is) or any text file/directory; file-level train/held-out split.
- ``tokenizer.py``: BPE and word-level tokenizers trained locally with ``tokenizers`` and
  wrapped as Hugging Face ``PreTrainedTokenizerFast`` (so TransformerLens can use them).
"""
