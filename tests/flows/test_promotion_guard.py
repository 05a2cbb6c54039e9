"""Compare-and-promote's guard (issue 12, item 1): the OS lock always; the global limit only
with a configured server, with a 60 s lease and a timeout — a slot left taken by a dead
ephemeral server never blocks a cycle."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate

import flows.promotion as retraining_module
from flows.promotion import promotion_limit
from flows.retraining import ensure_promotion_limit, promotion_guard
from model.cycle.locks import PROMOTION_LOCK_NAME, is_locked
from model.errors import CycleLockError
from model.settings import Settings

PROMOTION_LIMIT = promotion_limit("demo")


def _active_slots() -> int:
    with get_client(sync_client=True) as client:
        return int(client.read_global_concurrency_limit_by_name(PROMOTION_LIMIT).active_slots)


@pytest.fixture
def stale_slot(prefect_harness: None) -> Iterator[None]:
    """The global slot taken by a holder that no longer exists (its lease died with it)."""
    ensure_promotion_limit()
    with get_client(sync_client=True) as client:
        client.update_global_concurrency_limit(
            PROMOTION_LIMIT, GlobalConcurrencyLimitUpdate(active_slots=1)
        )
        try:
            yield
        finally:
            client.update_global_concurrency_limit(
                PROMOTION_LIMIT, GlobalConcurrencyLimitUpdate(active_slots=0)
            )


def test_stale_global_slot_does_not_block_an_ephemeral_run(
    stale_slot: None, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retraining_module, "uses_api_server", lambda: False)
    with promotion_guard(timeout=5):
        assert is_locked(settings.models_dir / PROMOTION_LOCK_NAME)
        assert _active_slots() == 1  # untouched: the OS lock is the guarantee
    assert not is_locked(settings.models_dir / PROMOTION_LOCK_NAME)


def test_stuck_global_slot_is_a_clear_error_not_a_hang(
    stale_slot: None, settings: Settings
) -> None:
    refused = pytest.raises(CycleLockError, match=f"limit '{PROMOTION_LIMIT}' stayed taken for 1 s")
    with refused, promotion_guard(timeout=1):
        pytest.fail("entered the guard with the only slot taken")


def test_with_a_server_the_limit_is_held_with_a_short_lease(
    prefect_harness: None, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[dict[str, Any]] = []
    real = retraining_module.concurrency

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(retraining_module, "concurrency", spy)
    with promotion_guard():
        assert _active_slots() == 1
        assert is_locked(settings.models_dir / PROMOTION_LOCK_NAME)
    assert _active_slots() == 0
    assert seen and seen[0]["lease_duration"] == 60 and seen[0]["strict"] is True
