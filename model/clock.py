"""The time the domain reads: the wall clock, or a simulated one inside :func:`clock_scope`.

Every decision that depends on "now" (trigger cooldowns and ages, the registry's event times,
a model's ``trained_at``, the post-promotion watch's window, which version the service scores
in shadow) reads :func:`now` here. Outside a scope that is ``datetime.now(UTC)``. A backtest
(:mod:`model.backtest`) replays history by entering ``clock_scope(SimulatedClock(batch_time))``
around each batch's cycle: the same code then sees the batch's time, and the scope, a context
variable like :func:`model.settings.model_scope`, reaches the Prefect tasks a flow runs in
threads (they copy the context) but not other processes (a Dask worker enters its own).

A :class:`SimulatedClock` starts at the time it is given and moves on by one millisecond at
every reading: deterministic (the same code reads the same times, however long it takes), and
never still, so what a cycle records after its trigger check is later than the check, as in
production. A 24 h cooldown then holds back a cycle started exactly a day after the previous
one (its check comes a day after the previous check, which came before that training), and
not one started a week after.

May import nothing from ``model`` (layer 0, beside ``errors`` and ``settings``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Protocol


class Clock(Protocol):
    """Something that says what time it is (timezone-aware, UTC)."""

    def now(self) -> dt.datetime: ...


class WallClock:
    """The real time."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)


class SimulatedClock:
    """``start``, then one :data:`TICK` later at every reading (thread-safe: a counter)."""

    def __init__(self, start: dt.datetime) -> None:
        if start.tzinfo is None:
            start = start.replace(tzinfo=dt.UTC)
        self.start = start.astimezone(dt.UTC)
        self._ticks = itertools.count()

    def now(self) -> dt.datetime:
        return self.start + next(self._ticks) * TICK

    def __repr__(self) -> str:
        return f"SimulatedClock({self.start.isoformat()})"


TICK = dt.timedelta(milliseconds=1)
"""How far a simulated clock moves at each reading."""
WALL = WallClock()
_CLOCK: ContextVar[Clock | None] = ContextVar("retrain_clock", default=None)


def now() -> dt.datetime:
    """The current time: the innermost :func:`clock_scope`'s, else the wall clock's."""
    return (_CLOCK.get() or WALL).now()


def iso_now(timespec: str = "milliseconds") -> str:
    """:func:`now` as ISO 8601 with a ``Z`` (the registry's and model.json's format)."""
    return now().isoformat(timespec=timespec).replace("+00:00", "Z")


def simulated() -> bool:
    """Whether a simulated clock is in force (a backtest)."""
    return _CLOCK.get() is not None


@contextlib.contextmanager
def clock_scope(clock: Clock) -> Iterator[Clock]:
    """Within this block (and the Prefect tasks it runs), :func:`now` is ``clock.now()``."""
    token = _CLOCK.set(clock)
    try:
        yield clock
    finally:
        _CLOCK.reset(token)


def at(start: dt.datetime) -> contextlib.AbstractContextManager[Clock]:
    """``clock_scope(SimulatedClock(start))``: time starts at ``start`` and runs on from it."""
    return clock_scope(SimulatedClock(start))
