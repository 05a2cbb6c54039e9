"""``make run`` adds a batch no cycle has seen on every run: today's, or the day after the
newest batch when today's exists (a second run on the same day); ``stack-down`` finds a run's
process from its ``infrastructure_pid``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from deployments.stack_cancel import process_of
from flows.demo import batch_day

TODAY = dt.date(2026, 3, 10)


def test_each_run_gets_a_new_batch_date(tmp_path: Path) -> None:
    incoming = tmp_path / "incoming"
    assert batch_day(incoming, TODAY) == TODAY  # no folder yet
    (incoming / "date=2026-03-01").mkdir(parents=True)
    assert batch_day(incoming, TODAY) == TODAY  # older batches only: today's is new
    (incoming / "date=2026-03-10").mkdir()
    assert batch_day(incoming, TODAY) == dt.date(2026, 3, 11)  # second run, same day
    (incoming / "date=2026-03-11").mkdir()
    assert batch_day(incoming, TODAY) == dt.date(2026, 3, 12)  # third run
    assert batch_day(incoming, dt.date(2026, 3, 20)) == dt.date(2026, 3, 20)  # days later


def test_process_of_a_runs_infrastructure_pid() -> None:
    import socket

    assert process_of("4242") == 4242
    assert process_of(f"{socket.gethostname()}:4242") == 4242
    assert process_of("another-machine:4242") is None
    assert process_of(None) is None and process_of("") is None and process_of("x") is None
