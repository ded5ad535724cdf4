"""Token windows for the sae experiment: seeded, BOS first, from the split asked for."""

from __future__ import annotations

import pytest
import torch

from interp.data.sae import token_windows
from interp.data.tokenizer import train_bpe


def test_windows_are_seeded_bos_first_and_split_aware(tmp_path):
    for i in range(6):
        (tmp_path / f"m{i}.py").write_text(f"def f{i}(x):\n    return x + {i}\n" * 40)
    tok = train_bpe([(tmp_path / "m0.py").read_text()], vocab_size=80)
    a = token_windows(tok, str(tmp_path), "train", 5, 12, seed=3)
    assert a.shape == (5, 12) and (a[:, 0] == tok.bos_token_id).all()
    assert torch.equal(a, token_windows(tok, str(tmp_path), "train", 5, 12, seed=3))
    assert not torch.equal(a, token_windows(tok, str(tmp_path), "heldout", 5, 12, seed=3))
    with pytest.raises(ValueError, match="split"):
        token_windows(tok, str(tmp_path), "test", 5, 12, seed=3)
