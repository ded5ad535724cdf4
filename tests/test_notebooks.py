"""The tour notebook executes top to bottom (nbclient) on a tiny model."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "experiments" / "notebooks"


@pytest.mark.slow
def test_tour_notebook_runs(tmp_path, tiny_gpt, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    from interp.data.tokenizer import word_tokenizer

    tok = word_tokenizer("def add a b return x = 1 2 : import os print class A pass".split())
    tiny_gpt.tokenizer = tok
    tiny_gpt.module.tokenizer = tok
    tiny_gpt.save(tmp_path / "tiny")
    monkeypatch.setenv("TOUR_MODEL", str(tmp_path / "tiny"))
    nb = nbformat.read(NOTEBOOKS / "tour.ipynb", as_version=4)
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = "".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
    )
    assert "lens_final_equals_logits" in outputs
    assert "patching a run's own activation back is exact: True" in outputs
