"""Installed outside a source checkout: per-user cache and runs folders (overridable), and a
maintained file lock with a timeout and a clear message."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from interp import utils


def test_default_folders_are_per_user_not_the_package_folder(monkeypatch, tmp_path):
    import platformdirs

    monkeypatch.delenv("INTERP_CACHE", raising=False)
    monkeypatch.delenv("INTERP_RUNS", raising=False)
    monkeypatch.setattr(platformdirs, "user_cache_dir", lambda *a, **k: str(tmp_path / "cache"))
    monkeypatch.setattr(platformdirs, "user_data_dir", lambda *a, **k: str(tmp_path / "data"))
    assert (
        utils.cache_dir() == tmp_path / "cache" and utils.runs_dir() == tmp_path / "data" / "runs"
    )
    package = Path(utils.__file__).resolve().parents[1]
    assert package not in utils.cache_dir().parents and package not in utils.runs_dir().parents


def test_environment_overrides_win(monkeypatch, tmp_path):
    monkeypatch.setenv("INTERP_CACHE", str(tmp_path / "c"))
    monkeypatch.setenv("INTERP_RUNS", str(tmp_path / "r"))
    assert utils.cache_dir() == tmp_path / "c" and utils.runs_dir() == tmp_path / "r"


def test_the_makefile_keeps_demo_and_app_in_the_checkout():
    text = (Path(utils.__file__).resolve().parents[1] / "Makefile").read_text()
    assert "INTERP_RUNS=$(CURDIR)/runs" in text and "INTERP_CACHE=$(CURDIR)/data/cache" in text


def test_a_held_lock_times_out_with_a_clear_message(tmp_path):
    lock = tmp_path / "x.lock"
    code = textwrap.dedent(f"""
        import time, pathlib
        from interp.utils import file_lock
        with file_lock({str(lock)!r}):
            pathlib.Path({str(tmp_path / "held")!r}).touch()
            time.sleep(30)
    """)
    holder = subprocess.Popen([sys.executable, "-c", code])
    try:
        for _ in range(600):  # until the holder has the lock (it imports torch-free interp first)
            if (tmp_path / "held").exists() or holder.poll() is not None:
                break
            time.sleep(0.1)
        assert holder.poll() is None, "the lock holder exited early"
        with pytest.raises(
            TimeoutError, match=r"waited 1 s for the lock .*x.lock \(building zoo model t\)"
        ):
            with utils.file_lock(lock, timeout=1, what="building zoo model t"):
                pass
    finally:
        holder.kill()
        holder.wait()
    with utils.file_lock(lock, timeout=5):  # released when its holder died
        pass
