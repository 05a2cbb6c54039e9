"""Shared by the tasks: the retry policy of IO tasks (retry transient failures, never bad
input) and artifact keys (none in a backtest's scratch root)."""

from __future__ import annotations

from typing import Any

from model.errors import RetrainError
from model.settings import get_settings

IO_RETRIES = 2
IO_RETRY_DELAYS: list[float] = [2.0, 5.0]


def retry_unless_bad_input(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: a RetrainError fails the same way on every try."""
    return not isinstance(getattr(state, "data", None), RetrainError)


def keyed(key: str) -> str | None:
    """An artifact's key, or None in a backtest's scratch root (``Settings.sandbox``): its runs
    keep their artifacts on the run, and never become the real model's latest keyed ones."""
    return None if get_settings().sandbox else key
