"""The clock the domain reads (model.clock): the wall clock, or a simulated one in a scope,
and the places that read it (registry events, model.json, the trigger state)."""

from __future__ import annotations

import contextvars
import datetime as dt
import threading
from pathlib import Path

from fakes import make_model

from model import clock
from model.cycle.triggers import TriggerState
from model.registry import ModelRegistry

T0 = dt.datetime(2021, 3, 4, 5, 6, 7, tzinfo=dt.UTC)


def test_wall_clock_outside_any_scope() -> None:
    before = dt.datetime.now(dt.UTC)
    seen = clock.now()
    assert before <= seen <= dt.datetime.now(dt.UTC)
    assert not clock.simulated()


def test_simulated_clock_starts_at_its_time_and_runs_on() -> None:
    with clock.at(T0):
        first = clock.now()
        second = clock.now()
        assert clock.simulated()
    assert first == T0 and second == T0 + clock.TICK  # one tick a reading: deterministic
    assert clock.now().year >= 2025  # the scope ended: the wall clock again


def test_a_naive_start_is_utc_and_scopes_nest() -> None:
    with clock.at(dt.datetime(2020, 1, 1)):
        assert clock.now().tzinfo is not None and clock.now().year == 2020
        with clock.at(T0):
            assert clock.now().year == 2021
        assert clock.now().year == 2020


def test_a_thread_that_copies_the_context_sees_the_simulated_time() -> None:
    """Prefect runs tasks in threads that copy the caller's context: the scope reaches them."""
    seen: list[dt.datetime] = []
    with clock.at(T0):
        ctx = contextvars.copy_context()
    thread = threading.Thread(target=lambda: seen.append(ctx.run(clock.now)))
    thread.start()
    thread.join()
    assert seen[0].year == 2021


def test_registry_events_and_trigger_state_read_the_clock(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "models")
    with clock.at(T0):
        version = registry.register(make_model(tmp_path / "m"), reason="test")
        state = TriggerState()
    event = registry.last_event("registered")
    assert event is not None and event["version"] == version
    assert event["time"].startswith("2021-03-04T05:06:")
    assert event["time"].endswith("Z")
    assert state.now.year == 2021 and state.now.month == 3
    outside = ModelRegistry(tmp_path / "models").record("skipped", reasons=["now"])
    assert not outside["time"].startswith("2021")
