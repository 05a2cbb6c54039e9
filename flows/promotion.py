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
"""Prefix of each model's global limit: ``retraining-promotion-<model>``."""
PROMOTION_LEASE_S = 60.0
"""Lease of the global limit's slot: the shortest the server accepts. A holder that dies stops
renewing it; the server frees the slot within about 75 s (60 s + its 15 s sweep)."""


def promotion_limit(model_name: str | None = None) -> str:
    """The global concurrency limit of ``model_name`` (default: the current model's): one per
    model, so two models promote in parallel and one model never twice at once; a backtest's
    scratch root (``sandbox``) has its own, apart from the real model's."""
    settings = get_settings()
    sandbox = f"{settings.sandbox}-" if settings.sandbox else ""
    return f"{PROMOTION_LIMIT}-{sandbox}{model_name or settings.model_name}"


def ensure_promotion_limit(model_name: str | None = None) -> str:
    """Create the model's global concurrency limit (1 slot) if it does not exist; idempotent.
    Returns its name."""
    name = promotion_limit(model_name)
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(name, 1)
    return name


def uses_api_server() -> bool:
    """Whether runs report to a configured Prefect server (``PREFECT_API_URL``), not to the
    ephemeral one a process starts for itself."""
    return bool(PREFECT_API_URL.value())


@contextlib.contextmanager
def promotion_guard(timeout: float = PROMOTION_TIMEOUT_S) -> Iterator[None]:
    """Serialize compare-and-promote across every cycle on the current model's registry.

    The guarantee is the OS lock ``models/<model>/.promotion.lock`` (the kernel frees it when
    its holder dies). With a configured server, the global limit
    ``retraining-promotion-<model>`` is also held (lease 60 s, so a dead holder's slot frees
    within ~75 s); the ephemeral server of a plain ``python -m flows.retraining`` does not take
    it: its leases die with the process and would leave the slot taken in the database for
    good.
    """
    with promotion_lock(get_settings().models_dir, timeout), contextlib.ExitStack() as stack:
        if uses_api_server():
            limit = ensure_promotion_limit()
            try:
                stack.enter_context(
                    concurrency(
                        limit,
                        occupy=1,
                        strict=True,
                        lease_duration=PROMOTION_LEASE_S,
                        timeout_seconds=timeout,
                    )
                )
            except TimeoutError:
                raise CycleLockError(
                    f"the global concurrency limit {limit!r} stayed taken for "
                    f"{timeout:.0f} s; a dead run's slot frees when its {PROMOTION_LEASE_S:.0f} s "
                    "lease expires, a slot no lease holds (lost in a server restart) with "
                    f"`prefect gcl update {limit} --active-slots 0`"
                ) from None
        yield
