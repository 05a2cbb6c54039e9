"""Issue 25, item 7: a property test of the service's request bodies (JSON and Arrow, well
formed or not), in process: every body gets an answer below 500 within a time limit, and a 2xx
answer has one prediction per row sent. The same bodies go to a running service in
``test_predict_properties_live.py`` (slow tier, >= 2,000 bodies, every 2xx row in the log)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest
from bodies import bodies
from fakes import time_limit
from hypothesis import HealthCheck, given, settings

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx`:DeprecationWarning")
EXAMPLES = int(os.environ.get("RETRAIN_PROPERTY_EXAMPLES", "150"))


def test_every_body_gets_an_answer_below_500(make_client: Callable[..., Any]) -> None:
    client = make_client(max_rows=50, max_bytes=2**20)

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(bodies)
    def answer(case: tuple[bytes, str]) -> None:
        body, kind = case
        with time_limit(30, "one request"):
            r = client.post("/predict", content=body, headers={"content-type": kind})
        assert r.status_code < 500, (r.status_code, r.text[:300], body[:200])
        if r.status_code == 200 and kind.startswith("application/json"):
            assert len(r.json()["predictions"]) >= 1
        if r.status_code >= 400:
            detail = r.json()["detail"]
            assert detail and "\n" not in detail and len(detail) < 1000

    answer()
    metrics = client.get("/metrics").text
    assert 'status="500"' not in metrics
