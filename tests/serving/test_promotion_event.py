"""The service wakes on ``retraining.model.promoted`` and ``retraining.model.rolled_back`` (the
post-promotion watch's rollback) of its own model when a Prefect API is configured (one
temporary Prefect server for the session: slow)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", ["retraining.model.promoted", "retraining.model.rolled_back"])
def test_a_production_change_event_wakes_the_follower(prefect_harness: None, name: str) -> None:
    from prefect.events import emit_event

    from deployments.scoring.app import _subscribe

    async def scenario() -> bool:
        service = SimpleNamespace(wake=asyncio.Event(), config=SimpleNamespace(model_name="demo"))
        task = asyncio.create_task(_subscribe(service))  # type: ignore[arg-type]
        try:
            await asyncio.sleep(2.0)  # subscribed
            for _ in range(3):  # another model's event: not this service's
                emit_event(name, resource={"prefect.resource.id": "retraining.model.other"})
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(service.wake.wait(), 1.0)
            for _ in range(20):
                resource = {"prefect.resource.id": "retraining.model.demo"}
                emit_event(name, resource=resource)
                try:
                    await asyncio.wait_for(service.wake.wait(), 1.0)
                    return True
                except TimeoutError:
                    continue
            return False
        finally:
            task.cancel()

    assert asyncio.run(scenario())
