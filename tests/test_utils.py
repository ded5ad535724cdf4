"""Shared helpers: atomic writes that never delete what they must not, locks, stale temp files."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

from interp.utils import atomic_path, clean_stale_tmp, file_lock


def test_atomic_path_without_replace_leaves_an_existing_target(tmp_path):
    target = tmp_path / "run"
    target.mkdir()
    (target / "keep.txt").write_text("first")
    with pytest.raises(FileExistsError, match="left as it is"):
        with atomic_path(target, replace=False) as tmp:
            tmp.mkdir()
            (tmp / "keep.txt").write_text("second")
    assert (target / "keep.txt").read_text() == "first"
    assert not list(tmp_path.glob(".*.tmp"))  # the loser's temp directory is gone too


def test_atomic_path_replaces_by_default(tmp_path):
    (tmp_path / "f").write_text("old")
    with atomic_path(tmp_path / "f") as tmp:
        tmp.write_text("new")
    assert (tmp_path / "f").read_text() == "new"


def test_clean_stale_tmp_removes_only_old_leftovers(tmp_path):
    old, young = tmp_path / ".run.a.tmp", tmp_path / ".run.b.tmp"
    old.mkdir()
    young.mkdir()
    os.utime(old, (time.time() - 3 * 24 * 3600,) * 2)
    assert clean_stale_tmp(tmp_path) == [old]
    assert young.exists() and not old.exists()


def test_file_lock_makes_a_second_process_wait(tmp_path):
    lock, log = tmp_path / "x.lock", tmp_path / "log"
    code = textwrap.dedent(f"""
        import time
        from interp.utils import file_lock
        with file_lock({str(lock)!r}):
            open({str(log)!r}, "a").write("in\\n")
            time.sleep(0.5)
            open({str(log)!r}, "a").write("out\\n")
    """)
    procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(2)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    assert log.read_text().split() == ["in", "out", "in", "out"]  # never interleaved
    with file_lock(lock):  # and it is free again
        pass


def test_registry_refuses_a_taken_name_and_lists_close_ones():
    from interp.utils import Registry

    reg: Registry[int] = Registry("widget")
    reg.add("beta", 2)
    reg.register("alpha")(lambda: None)
    assert reg.names() == ["alpha", "beta"] and reg.get("beta") == 2
    with pytest.raises(ValueError, match="widget 'beta' registered twice"):
        reg.add("beta", 3)
    assert reg.get("beta") == 2  # the refused registration changed nothing
    with pytest.raises(KeyError, match="Did you mean: beta"):
        reg.get("betta")
    ordered: Registry[int] = Registry("widget", ordered=True)
    ordered.add("z", 1)
    ordered.add("a", 2)
    assert ordered.names() == ["z", "a"] and [n for n, _ in ordered.items()] == ["z", "a"]
