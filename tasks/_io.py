"""Shared retry policy for IO tasks: retry transient failures, never bad input."""

from __future__ import annotations

from typing import Any

from model.errors import RetrainError

IO_RETRIES = 2
IO_RETRY_DELAYS: list[float] = [2.0, 5.0]


def retry_unless_bad_input(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: a RetrainError fails the same way on every try."""
    return not isinstance(getattr(state, "data", None), RetrainError)
