"""The cycle's OS locks: freed by the kernel when the holder dies, a clear error on timeout,
and the scratch folders of dead cycles removed (issue 12, item 1 and the scratch folder)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fakes import REPO_ROOT

from model.cycle.locks import (
    CYCLE_LOCK_NAME,
    PROMOTION_LOCK_NAME,
    CycleScratch,
    is_cycle_alive,
    is_locked,
    promotion_lock,
    remove_stale_scratch,
)
from model.errors import CycleLockError

HOLD = """
import sys, time
from pathlib import Path
from model.cycle.locks import CycleScratch, promotion_lock
kind, where = sys.argv[1], Path(sys.argv[2])
if kind == "promotion":
    ctx = promotion_lock(where)
else:
    ctx = CycleScratch(where, "run-a")
with ctx:
    if kind == "cycle":
        (where / "run-a" / "candidate-x").mkdir()
    print("held", flush=True)
    time.sleep(600)
"""


def _holder(kind: str, where: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, kind, str(where)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO_ROOT,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "held"
    return proc


def _kill(proc: subprocess.Popen[str]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def test_promotion_lock_of_a_killed_holder_is_free_at_once(tmp_path: Path) -> None:
    models = tmp_path / "models"
    proc = _holder("promotion", models)
    try:
        assert is_locked(models / PROMOTION_LOCK_NAME)
        busy = pytest.raises(CycleLockError, match="comparing or promoting for more than 0 s")
        with busy, promotion_lock(models, timeout=0.2):
            pass
    finally:
        _kill(proc)
    start = time.monotonic()
    with promotion_lock(models, timeout=5):
        assert time.monotonic() - start < 1.0
    assert not is_locked(models / PROMOTION_LOCK_NAME)


def test_promotion_lock_serializes_within_one_process(tmp_path: Path) -> None:
    busy = pytest.raises(CycleLockError, match=PROMOTION_LOCK_NAME)
    with promotion_lock(tmp_path), busy, promotion_lock(tmp_path, timeout=0.1):
        pass


def test_unusable_lock_folder_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    refused = pytest.raises(CycleLockError, match="cannot open the lock file")
    with refused, promotion_lock(blocker / "models"):
        pass


def test_cycle_scratch_lives_with_its_cycle(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    with CycleScratch(runs, "run-1") as scratch:
        assert is_cycle_alive(runs, "run-1")
        assert scratch.folder == runs / "run-1"
        folder = scratch.new_folder("candidate")
        assert folder.parent == scratch.folder and not folder.exists()
        with CycleScratch(runs, "run-1"):  # a second cycle under the same top-level run
            pass
        assert scratch.folder.is_dir(), "the other holder removed a folder still in use"
        assert remove_stale_scratch(runs) == []
    assert not (runs / "run-1").exists()
    assert not is_cycle_alive(runs, "run-1")


def test_stale_scratch_of_a_killed_cycle_is_removed(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    proc = _holder("cycle", runs)
    try:
        assert is_cycle_alive(runs, "run-a")
        assert remove_stale_scratch(runs) == []  # alive: kept
    finally:
        _kill(proc)
    assert (runs / "run-a" / "candidate-x").is_dir()  # what the killed cycle left
    assert not is_cycle_alive(runs, "run-a")

    old = runs / "old-unlocked"  # a scratch folder from before cycle locks
    old.mkdir()
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    fresh = runs / "fresh-unlocked"  # a cycle creating its lock right now
    fresh.mkdir()
    (runs / "link").symlink_to(tmp_path)
    with CycleScratch(runs, "live"):
        removed = remove_stale_scratch(runs)
        assert sorted(p.name for p in removed) == ["old-unlocked", "run-a"]
        assert (runs / "live" / CYCLE_LOCK_NAME).exists()
    assert fresh.is_dir() and (runs / "link").is_symlink()
