"""One compare-and-promote at a time: the OS lock, plus Prefect's global concurrency limit
when runs report to a configured server."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from prefect.client.orchestration import get_client
from prefect.concurrency.sync import concurrency
from prefect.settings import PREFECT_API_URL

from model.cycle.locks import PROMOTION_TIMEOUT_S, promotion_lock
from model.errors import CycleLockError
from model.settings import get_settings

PROMOTION_LIMIT = "retraining-promotion"
PROMOTION_LEASE_S = 60.0
"""Lease of the global limit's slot: the shortest the server accepts. A holder that dies stops
renewing it; the server frees the slot within about 75 s (60 s + its 15 s sweep)."""


def ensure_promotion_limit() -> None:
    """Create the global concurrency limit (1 slot) if it does not exist; idempotent."""
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(PROMOTION_LIMIT, 1)


def uses_api_server() -> bool:
    """Whether runs report to a configured Prefect server (``PREFECT_API_URL``), not to the
    ephemeral one a process starts for itself."""
    return bool(PREFECT_API_URL.value())


@contextlib.contextmanager
def promotion_guard(timeout: float = PROMOTION_TIMEOUT_S) -> Iterator[None]:
    """Serialize compare-and-promote across every cycle on this registry.

    The guarantee is the OS lock ``models/.promotion.lock`` (the kernel frees it when its
    holder dies). With a configured server, the global limit ``retraining-promotion`` is also
    held (lease 60 s, so a dead holder's slot frees within ~75 s); the ephemeral server of a
    plain ``python -m flows.retraining`` does not take it: its leases die with the process
    and would leave the slot taken in the database for good.
    """
    with promotion_lock(get_settings().models_dir, timeout), contextlib.ExitStack() as stack:
        if uses_api_server():
            ensure_promotion_limit()
            try:
                stack.enter_context(
                    concurrency(
                        PROMOTION_LIMIT,
                        occupy=1,
                        strict=True,
                        lease_duration=PROMOTION_LEASE_S,
                        timeout_seconds=timeout,
                    )
                )
            except TimeoutError:
                raise CycleLockError(
                    f"the global concurrency limit {PROMOTION_LIMIT!r} stayed taken for "
                    f"{timeout:.0f} s; a dead run's slot frees when its {PROMOTION_LEASE_S:.0f} s "
                    "lease expires, a slot no lease holds (lost in a server restart) with "
                    f"`prefect gcl update {PROMOTION_LIMIT} --active-slots 0`"
                ) from None
        yield
