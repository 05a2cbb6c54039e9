"""Reading a drift report given to the flow (issue 12): only regular files, at most 10 MiB, a
message that says what the path is — never a hang on a FIFO, never gigabytes of memory."""

from __future__ import annotations

import json
import os
import resource
import threading
from pathlib import Path

import pytest

from model.drift import read_drift_report
from model.drift.files import MAX_DRIFT_REPORT_BYTES
from model.errors import DriftInputError


def _read_within(path: Path, seconds: float = 10.0) -> BaseException | None:
    """read_drift_report(path) in a thread; fails the test if it does not return in time."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            read_drift_report(path)
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():  # unblock the reader (a FIFO open waits for a writer) and fail
        with open(path, "w"):
            pass
        pytest.fail(f"reading {path} did not return within {seconds} s")
    return outcome[0]


def test_fifo_is_refused_by_name_without_hanging(tmp_path: Path) -> None:
    fifo = tmp_path / "report.json"
    os.mkfifo(fifo)
    exc = _read_within(fifo)
    assert isinstance(exc, DriftInputError)
    assert str(exc) == (
        f"drift report {fifo}: is a FIFO (named pipe); only a regular file is read as a "
        "drift report"
    )


def test_device_and_folder_are_refused_by_name(tmp_path: Path) -> None:
    exc = _read_within(Path("/dev/zero"))
    assert isinstance(exc, DriftInputError)
    assert "is a character device" in str(exc) and "not found" not in str(exc)
    with pytest.raises(DriftInputError, match="is a folder; only a regular file"):
        read_drift_report(tmp_path)
    with pytest.raises(DriftInputError, match="file not found"):
        read_drift_report(tmp_path / "missing.json")


def test_oversized_report_is_refused_before_reading(tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    with big.open("wb") as fh:  # 1 GiB, sparse: nothing is written to disk
        fh.truncate(1 << 30)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(DriftInputError) as info:
        read_drift_report(big)
    assert str(info.value) == (
        f"drift report {big}: 1024.0 MiB is over the 10 MiB limit for a drift report"
    )
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 50_000, f"reading a refused report grew memory by {grown_kib} KiB"


def test_report_at_the_limit_is_read(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    body = json.dumps({"dataset_drift": True, "pad": ""})
    pad = MAX_DRIFT_REPORT_BYTES - len(body)
    report.write_text(json.dumps({"dataset_drift": True, "pad": "x" * pad}))
    assert report.stat().st_size == MAX_DRIFT_REPORT_BYTES
    assert read_drift_report(report)["dataset_drift"] is True
    with report.open("a") as fh:
        fh.write(" ")
    with pytest.raises(DriftInputError, match="over the 10 MiB limit"):
        read_drift_report(report)


def test_long_values_are_quoted_short(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"dataset_drift": "y" * 100_000}))
    with pytest.raises(DriftInputError) as info:
        read_drift_report(report)
    assert len(str(info.value)) < 200 + len(str(report))
