"""Text corpora (interp/data/corpus.py): a seeded split by whole files, a character budget."""

from __future__ import annotations

import pytest

from interp.data.corpus import load_corpus


@pytest.fixture
def folder(tmp_path):
    for i in range(20):
        (tmp_path / f"m{i:02d}.py").write_text(f"x{i} = {i}\n" * 10)
    (tmp_path / "skip.bin").write_bytes(b"\x00\x01")
    (tmp_path / "empty.txt").write_text("   \n")
    return tmp_path


def test_the_split_is_by_file_seeded_and_disjoint(folder):
    c = load_corpus(str(folder), heldout_frac=0.1, seed=0)
    assert len(c.train) == 18 and len(c.heldout) == 2  # the .bin and the blank file are skipped
    assert not set(c.train) & set(c.heldout)
    assert load_corpus(str(folder), heldout_frac=0.1, seed=0) == c
    assert load_corpus(str(folder), heldout_frac=0.1, seed=1).heldout != c.heldout
    assert c.n_chars == sum(map(len, c.train + c.heldout))


def test_max_chars_stops_early_and_one_file_is_halved(folder):
    small = load_corpus(str(folder), max_chars=200)
    assert 200 <= small.n_chars < 200 + 100
    one = load_corpus(str(folder / "m00.py"))
    assert len(one.train) == 1 and len(one.heldout) == 1  # one document split in two halves


def test_a_missing_or_empty_source_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither 'stdlib' nor an existing file"):
        load_corpus(str(tmp_path / "nope"))
    with pytest.raises(ValueError, match="has no .py/.txt/.md/.rst files"):
        load_corpus(str(tmp_path))
