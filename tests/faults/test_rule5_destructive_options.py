"""Issue 25, rule 5: destructive options refuse nonsense. A negative retention is refused like
``--keep -1``; the migration's last steps are idempotent (one ``migrated`` event whatever the
kills); a full disk names the path and leaves nothing behind.

The probe's cases: ``retrain gc --keep-predictions-days -1`` deleted today's whole prediction
log (rc 0); SIGKILL after the ``migrated`` record but before the journal is removed wrote a
second ``migrated`` event, and ``status`` said the root still had the old layout; a full disk in
``train --out`` and ``drift --out`` named no path and left an empty folder or a 0-byte temporary
file; a torn or ``[]`` migration journal was a traceback (JSONDecodeError, TypeError)."""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fakes import make_model
from probe import holdout, one_error_line, run_cli

from model.data import prepare
from model.registry import ModelRegistry
from model.serving.features import Batch
from model.serving.log import PredictionLog, log_files
from model.serving.models import Scored
from model.settings import Settings

REAL_WRITE = os.write


@contextlib.contextmanager
def full_disk(under: Path) -> Iterator[None]:
    """``os.write`` to any file under ``under`` fails with ENOSPC, like a full disk."""
    prefix = str(under.absolute())

    def write(fd: int, data: bytes) -> int:
        try:
            path = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            path = ""
        if path.startswith(prefix):
            raise OSError(errno.ENOSPC, "No space left on device")
        return REAL_WRITE(fd, data)

    os.write = write  # type: ignore[assignment]
    try:
        yield
    finally:
        os.write = REAL_WRITE


def test_a_negative_prediction_retention_is_refused_and_todays_log_kept(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reg = ModelRegistry(settings.models_dir)
    reg.register(make_model(tmp_path / "m1"))
    log = PredictionLog(settings.predictions_dir / "demo", "id", ["x"], [])
    batch = Batch(np.zeros((3, 1), np.float32), np.zeros((3, 0), np.int64), ["1", "2", "3"], {})
    scores = np.full(3, 0.5)
    log.append(Scored(batch, scores, np.ones(3, np.int8), ["v0001"] * 3, ["production"] * 3))
    assert log.flush() == 3
    rc, _, err = run_cli(["gc", "--keep-predictions-days", "-1"], capsys)
    assert rc == 2
    one_error_line(err, "--keep-predictions-days", "-1")
    assert len(log_files(settings.predictions_dir / "demo")) == 1  # today's log is still there
    assert reg.version_names() == ["v0001"]  # and nothing else was deleted first


def _legacy_root(root: Path, tmp_path: Path) -> None:
    """A single-model working root (models/registry.json) with one version."""
    ModelRegistry(root / "models").register(make_model(tmp_path / "legacy-model"))
    assert (root / "models" / "registry.json").is_file()


def test_a_migration_killed_after_its_record_records_it_once(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _legacy_root(settings.root, tmp_path)
    journal = settings.root / ".migrate-layout.json"
    real_unlink = Path.unlink

    def killed(self: Path, missing_ok: bool = False) -> None:  # SIGKILL before the unlink
        if self == journal:
            raise SystemExit("killed")
        real_unlink(self, missing_ok=missing_ok)

    Path.unlink = killed  # type: ignore[method-assign]
    try:
        with pytest.raises(SystemExit):
            run_cli(["migrate-layout", "--model", "demo"], capsys)
    finally:
        Path.unlink = real_unlink  # type: ignore[method-assign]
    assert journal.exists()
    rc, _, err = run_cli(["status"], capsys)  # refused, but says what to do
    assert rc == 2
    line = one_error_line(err, "stopped", "retrain migrate-layout --model demo")
    assert "single-model layout" not in line
    rc, _, _ = run_cli(["migrate-layout", "--model", "demo"], capsys)
    assert rc == 0 and not journal.exists()
    events = ModelRegistry(settings.models_dir).history()
    assert [e["event"] for e in events].count("migrated") == 1


@pytest.mark.parametrize("text", ["", "[]", '{"model": "demo", "moved": [', '{"model": 3}'])
def test_a_torn_or_empty_journal_is_one_line(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    _legacy_root(settings.root, tmp_path)
    journal = settings.root / ".migrate-layout.json"
    journal.write_text(text)
    rc, _, err = run_cli(["migrate-layout", "--model", "demo"], capsys)
    assert rc == 2
    one_error_line(err, str(journal))


def test_a_full_disk_in_train_out_names_the_path_and_leaves_nothing(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data.parquet"
    holdout(600).to_parquet(data, index=False)
    prepared = prepare(data, tmp_path / "prepared")
    out = tmp_path / "model-out"
    with full_disk(out):
        argv = ["train", "--data", str(prepared.path), "--out", str(out), "--epochs", "1"]
        rc, _, err = run_cli([*argv, "--quiet"], capsys)
    assert rc == 2
    one_error_line(err, str(out), "No space left on device")
    assert not out.exists()  # no empty folder, no temporary file


def test_a_full_disk_in_drift_out_names_the_path_and_leaves_nothing(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reference, current = tmp_path / "ref.parquet", tmp_path / "cur.parquet"
    holdout(300, seed=1).to_parquet(reference, index=False)
    holdout(300, seed=2).to_parquet(current, index=False)
    out = tmp_path / "reports" / "today"
    with full_disk(out):
        argv = ["drift", "--reference", str(reference), "--current", str(current)]
        rc, _, err = run_cli([*argv, "--out", str(out), "--no-model"], capsys)
    assert rc == 2
    one_error_line(err, str(out), "No space left on device")
    assert not out.exists()
    assert not list((tmp_path / "reports").rglob("*tmp*"))


def test_a_prune_with_a_negative_retention_never_deletes(tmp_path: Path) -> None:
    from model.errors import RetrainError
    from model.serving.log import prune_log

    folder = tmp_path / "demo" / f"date={dt.date.today().isoformat()}"
    folder.mkdir(parents=True)
    (folder / "part-1.parquet").write_bytes(b"x")
    with pytest.raises(RetrainError, match=">= 0"):
        prune_log(tmp_path, -1)
    assert folder.exists()
    assert json.dumps(prune_log(tmp_path, 0, dry_run=True).kept) == "1"
