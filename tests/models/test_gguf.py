"""GGUF checkpoints: conversion once (cached by content, atomic), exact on an F32 file,
clear errors on damaged, unsupported and ambiguous inputs; the named real model."""

from __future__ import annotations

import gguf as gg
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import interp
from interp.cli import app
from interp.models import gguf
from tests.models.gguf_fixture import write_tiny_llama_gguf


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("gguf")
    hf = write_tiny_llama_gguf(d / "tiny.gguf")
    return d / "tiny.gguf", hf


def test_f32_gguf_loads_exactly(tiny):
    path, hf = tiny
    m = interp.load_model(str(path), device="cpu")
    x = torch.randint(4, 260, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = hf(x, output_hidden_states=True)
        out, acts = interp.trace(m, x, capture=m.resid_names())
    assert (out - ref.logits).abs().max() < 1e-5
    # HF's last hidden state is after the final norm: compare the ones before it
    for name, hidden in zip(m.resid_names()[:-1], ref.hidden_states[:-1], strict=True):
        assert (acts[name] - hidden).abs().max() < 1e-5, name
    assert m.source["architecture"] == "llama" and m.source["quantization"] == ["F32"]
    assert m.model_id == str(path)
    assert m.tokenizer.decode(m.tokenizer.encode("hi there")) == "hi there"


def test_second_load_reuses_the_conversion(tiny, monkeypatch):
    path, _ = tiny
    first = gguf.convert(path)

    def boom(*a, **k):
        raise AssertionError("converted twice")

    monkeypatch.setattr(gguf, "_write_converted", boom)
    assert gguf.convert(path) == first
    interp.load_model(str(path.parent), device="cpu")  # a directory holding one GGUF file


def test_quantised_gguf_is_dequantised(tmp_path):
    hf = write_tiny_llama_gguf(tmp_path / "q8.gguf", quantize="Q8_0")
    m = interp.load_model(str(tmp_path / "q8.gguf"), device="cpu")
    x = torch.randint(4, 260, (1, 8))
    with torch.no_grad():
        err = (m(x) - hf(x).logits).abs().max()
    assert 0 < err < 0.05  # Q8_0 rounding, not an exact copy
    assert m.source["quantization"][0] == "Q8_0"


def test_truncated_and_garbage_files_are_named(tiny, tmp_path):
    path, _ = tiny
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match="cut.gguf.*truncated|cut.gguf.*not a readable"):
        interp.load_model(str(cut), device="cpu")
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf file at all" * 10)
    with pytest.raises(ValueError, match="junk.gguf is not a readable GGUF"):
        gguf.inspect(junk)
    assert not list((gguf.cache_dir() / "gguf").glob("cut-*")), (
        "a failed conversion left a directory"
    )


def test_unsupported_architecture_names_it_and_the_supported(tmp_path):
    w = gg.GGUFWriter(str(tmp_path / "odd.gguf"), "rwkv6")
    w.add_tensor("token_embd.weight", np.zeros((4, 4), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(
        ValueError, match=r"'rwkv6' \(quantisation F32\).*Supported architectures: .*llama"
    ):
        interp.load_model(str(tmp_path / "odd.gguf"), device="cpu")


def test_crash_mid_conversion_leaves_nothing(tmp_path, monkeypatch):
    write_tiny_llama_gguf(tmp_path / "crash.gguf", seed=3)
    real = gguf._write_converted

    def crash(path, out):
        real(path, out)
        raise KeyboardInterrupt  # killed after the weights, before the record

    monkeypatch.setattr(gguf, "_write_converted", crash)
    with pytest.raises(KeyboardInterrupt):
        gguf.convert(tmp_path / "crash.gguf")
    assert not gguf.converted_dir(tmp_path / "crash.gguf").exists()
    monkeypatch.setattr(gguf, "_write_converted", real)
    assert (gguf.convert(tmp_path / "crash.gguf") / gguf.INFO_FILE).is_file()


def test_directory_with_two_gguf_files_asks_which(tiny, tmp_path):
    path, _ = tiny
    for name in ("a.gguf", "b.gguf"):
        (tmp_path / name).write_bytes(path.read_bytes())
    with pytest.raises(ValueError, match="holds 2 GGUF files.*a.gguf, b.gguf"):
        interp.load_model(str(tmp_path), device="cpu")


def test_interp_check_passes_on_a_gguf_file(tiny):

    path, _ = tiny
    res = CliRunner().invoke(app, ["check", str(path), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert "logits_match" in res.output and "does not hold" not in res.output
