"""Issue 25, item 8: tests that can see the faults they name. A hand mutation test found bugs
the default suite missed; each now fails a test of ``make test-fast``:

- removing both fsyncs in ``model/registry/files.py`` (``write_all`` and ``fsync_dir``), or
  writing ``production.json`` in place with no temporary file and rename: the order of the
  registry's steps is recorded (``os.fsync``, ``os.replace`` patched) and checked;
- writing the prediction log straight to its final name: the order of the log's steps, and a
  write that fails half-way (a fault hook) must leave no ``part-*.parquet``;
- dropping the check for a missing numeric column of an Arrow request:
  ``tests/serving/test_service.py::test_arrow_body_errors_name_the_column_and_row``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fakes import make_model

import model.serving.log as log_module
from model.registry import ModelRegistry
from model.serving.features import Batch
from model.serving.log import PredictionLog, log_files
from model.serving.models import Scored

Step = tuple[str, str, str]


def _fd_path(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""


@pytest.fixture
def steps(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Step]]:
    """Every ``os.fsync`` (of which file or folder) and ``os.replace`` (from, to), in order."""
    done: list[Step] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        done.append(("fsync", _fd_path(fd), ""))
        real_fsync(fd)

    def replace(src: Any, dst: Any, **kw: Any) -> None:
        done.append(("replace", os.fspath(src), os.fspath(dst)))
        real_replace(src, dst, **kw)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    yield done


def _check_atomic(done: list[Step], final: Path) -> None:
    """``final`` was made by a rename from a temporary file in its folder that was fsynced
    first, and the folder was fsynced after."""
    renames = [i for i, s in enumerate(done) if s[0] == "replace" and s[2] == str(final)]
    assert renames, f"{final.name} was not renamed into place: {done}"
    i = renames[-1]
    tmp = Path(done[i][1])
    assert tmp.parent == final.parent and tmp.name != final.name
    assert ("fsync", str(tmp), "") in done[:i], f"{tmp.name} not fsynced before its rename"
    assert ("fsync", str(final.parent), "") in done[i + 1 :], f"{final.parent} not fsynced"


def test_a_promotion_writes_every_file_by_fsync_then_rename_then_folder_fsync(
    tmp_path: Path, steps: list[Step]
) -> None:
    reg = ModelRegistry(tmp_path / "models")
    reg.register(make_model(tmp_path / "m1", seed=1))
    steps.clear()
    reg.promote("v0001", "first", force=True)
    root = reg.root.resolve()
    _check_atomic(steps, root / "production.json")
    link = [s for s in steps if s[0] == "replace" and s[2] == str(root / "production")]
    assert link, "the production link was not renamed into place"
    history = [s for s in steps if s == ("fsync", str(root / "history.jsonl"), "")]
    assert history, "the history's append was not fsynced"


def test_register_fsyncs_the_copied_files_and_their_folder(
    tmp_path: Path, steps: list[Step]
) -> None:
    reg = ModelRegistry(tmp_path / "models")
    version = reg.register(make_model(tmp_path / "m1", seed=1))
    versions = reg.version_path(version).resolve().parent
    fsynced = [Path(s[1]) for s in steps if s[0] == "fsync"]
    copied = {p.name for p in fsynced if p.parent.parent == versions}  # in the copy's folder
    assert {"model.pt", "model.json"} <= copied
    assert versions in fsynced


def _scored(n: int) -> Scored:
    batch = Batch(
        np.zeros((n, 1), np.float32),
        np.zeros((n, 0), np.int64),
        [str(i) for i in range(n)],
        {"x": [float(i) for i in range(n)]},
    )
    scores = np.full(n, 0.25)
    return Scored(batch, scores, np.zeros(n, np.int8), ["v0001"] * n, ["production"] * n)


def test_the_prediction_log_writes_a_temporary_file_then_renames_it(
    tmp_path: Path, steps: list[Step]
) -> None:
    log = PredictionLog(tmp_path / "log", "id", ["x"], [])
    log.append(_scored(5))
    assert log.flush() == 5
    (final,) = log_files(tmp_path / "log")
    _check_atomic(steps, final.resolve())
    assert not final.name.startswith(".") and final.name.endswith(".parquet")


def test_a_log_write_that_fails_half_way_leaves_no_parquet_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = log_module.pq.write_table

    def half(table: Any, where: Any, **kw: Any) -> None:  # the fault hook: a crash mid-write
        real_write(table, where, **kw)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(log_module.pq, "write_table", half)
    log = PredictionLog(tmp_path / "log", "id", ["x"], [])
    log.append(_scored(4))
    assert log.flush() == 0
    assert log.counters.dropped == 4
    assert log_files(tmp_path / "log") == []
    leftovers = [p.name for p in (tmp_path / "log").rglob("*") if p.is_file()]
    assert leftovers == [], leftovers
