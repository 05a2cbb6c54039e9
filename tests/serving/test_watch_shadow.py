"""The service's default shadow (``watch``): after a promotion the previous production scores
every row in shadow while the post-promotion watch of that promotion is open, so the watch
flow has paired rows; a rollback, a manual change, a look that ended the watch or the closed
window leaves no shadow."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from model.artifact import load_model
from model.registry import ModelRegistry
from model.serving.log import read_log
from model.serving.models import ModelHolder, watched_previous

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx`:DeprecationWarning")

NOW = dt.datetime(2026, 3, 20, 12, tzinfo=dt.UTC)


def ev(event: str, days_ago: float, **fields: Any) -> dict[str, Any]:
    time = (NOW - dt.timedelta(days=days_ago)).isoformat()
    return {"event": event, "time": time, "id": f"{event}-{days_ago}", **fields}


FIRST = ev("promoted", 30, version="v0001", previous=None)
FORCED = ev("forced", 2, version="v0002", previous="v0001")


@pytest.mark.parametrize(
    ("events", "production", "expected"),
    [
        ([], "v0001", None),  # no promotion yet
        ([FIRST], "v0001", None),  # the first production model: nothing before it
        ([FIRST, FORCED], "v0002", "v0001"),  # a forced promotion is watched too
        ([FIRST, ev("promoted", 13.9, version="v0002", previous="v0001")], "v0002", "v0001"),
        ([FIRST, ev("promoted", 14.1, version="v0002", previous="v0001")], "v0002", None),
        ([FIRST, FORCED, ev("rolled_back", 1, version="v0001")], "v0001", None),
        ([FIRST, FORCED], "v0003", None),  # production is not the promoted version
        (
            [FIRST, FORCED, ev("watch_checked", 1, promotion=FORCED["id"], decision="KEEP")],
            "v0002",
            None,
        ),
        (
            [FIRST, FORCED, ev("watch_checked", 1, promotion=FORCED["id"], decision="ROLLBACK")],
            "v0002",
            None,
        ),
        (
            [
                FIRST,
                FORCED,
                ev("watch_checked", 1.5, promotion=FORCED["id"], decision="INCONCLUSIVE"),
                ev("watch_checked", 1, promotion="another", decision="KEEP"),
                ev("compared", 0.5, version="v0003"),  # not a production change
            ],
            "v0002",
            "v0001",
        ),
    ],
)
def test_watched_previous(
    events: list[dict[str, Any]], production: str, expected: str | None
) -> None:
    assert watched_previous(events, production, NOW, 14.0) == expected


def test_holder_shadows_the_previous_production_only_while_the_watch_is_open(
    registry: ModelRegistry,
) -> None:
    holder = ModelHolder(registry.root, shadow="watch")
    holder.refresh()
    assert holder.current is not None and holder.current.shadow is None  # first model
    registry.promote("v0002", "t", force=True)
    assert holder.refresh()
    current = holder.current
    assert current is not None and current.production.version == "v0002"
    assert current.shadow is not None and current.shadow.version == "v0001"
    # a look that ends the watch (KEEP at the window's end) drops the shadow
    promotion = registry.history()[-1]["id"]
    registry.record("watch_checked", promotion=promotion, decision="KEEP", version="v0002")
    assert holder.refresh()
    assert holder.current is not None and holder.current.shadow is None
    assert {m.version for m in holder.current.models()} == {"v0002"}
    # the next promotion is watched against the version it replaced
    registry.promote("v0003", "t", force=True)
    assert holder.refresh()
    assert holder.current.shadow is not None and holder.current.shadow.version == "v0002"
    # a rollback ends the watch: the restored version serves alone
    assert registry.rollback(reason="t") == "v0002"
    assert holder.refresh()
    assert holder.current.production.version == "v0002" and holder.current.shadow is None


def test_holder_watch_window_is_configurable(registry: ModelRegistry) -> None:
    registry.promote("v0002", "t", force=True)
    holder = ModelHolder(registry.root, shadow="watch", watch_max_days=1e-9)  # already closed
    holder.refresh()
    assert holder.current is not None and holder.current.shadow is None


def test_default_service_logs_the_previous_production_in_shadow(
    make_client: Callable[..., Any], registry: ModelRegistry, tmp_path: Path
) -> None:
    rows = [{"id": i, "x": float(i), "c": "ab"[i % 2], "city": "pqrs"[i % 4]} for i in range(8)]
    registry.promote("v0002", "t", force=True)
    client = make_client()  # the default shadow mode
    version = client.get("/version").json()
    assert version["shadow_mode"] == "watch" and version["shadow"]["version"] == "v0001"
    out = client.post("/predict", json={"rows": rows}).json()["predictions"]
    assert {p["version"] for p in out} == {"v0002"}
    client.__exit__(None, None, None)
    table = read_log(tmp_path / "predictions" / "demo")
    assert table is not None and table.num_rows == len(rows)
    assert set(table.column("__shadow_version__").to_pylist()) == {"v0001"}
    frame = pd.DataFrame(rows).astype({"c": object, "city": object})
    expected = load_model(registry.version_path("v0001")).predict_proba(frame)
    np.testing.assert_allclose(table.column("__shadow_score__").to_pylist(), expected, rtol=1e-6)


def test_a_shadow_challenger_is_scored_on_every_row_beside_an_open_watch(
    make_client: Callable[..., Any], registry: ModelRegistry, tmp_path: Path
) -> None:
    """An INCONCLUSIVE candidate set with 0 % traffic serves no row but scores every one, in
    the second shadow slot while the watch of a promotion holds the first; the live adapter
    pairs each of them with production from whichever slot scored it."""
    from model.live import labelled_log

    rows = [{"id": i, "x": float(i), "c": "ab"[i % 2], "city": "pqrs"[i % 4]} for i in range(8)]
    registry.promote("v0002", "t", force=True)  # the watch of v0002 over v0001 is open
    registry.set_challenger("v0003", 0, reason="INCONCLUSIVE offline")
    holder = ModelHolder(registry.root, shadow="watch")
    holder.refresh()
    current = holder.current
    assert current is not None and current.challenger is None and current.traffic == 0
    assert (current.shadow.version, current.shadow2.version) == ("v0001", "v0003")  # type: ignore[union-attr]
    client = make_client()
    version = client.get("/version").json()
    assert version["shadow"]["version"] == "v0001" and version["shadow2"]["version"] == "v0003"
    out = client.post("/predict", json={"rows": rows}).json()["predictions"]
    assert {p["version"] for p in out} == {"v0002"}  # the challenger serves nothing
    client.__exit__(None, None, None)
    table = read_log(tmp_path / "predictions" / "demo")
    assert table is not None and table.num_rows == len(rows)
    assert set(table.column("__shadow2_version__").to_pylist()) == {"v0003"}
    frame = pd.DataFrame(rows).astype({"c": object, "city": object})
    expected = load_model(registry.version_path("v0003")).predict_proba(frame)
    np.testing.assert_allclose(table.column("__shadow2_score__").to_pylist(), expected, rtol=1e-6)
    logged = table.to_pandas()
    logged[labelled_log.LABEL] = [i % 2 for i in range(len(rows))]
    pairs = labelled_log.paired_rows(logged, "v0002", "v0003")  # served vs second shadow
    np.testing.assert_allclose(pairs[labelled_log.CANDIDATE_SCORE], expected, rtol=1e-6)
    watch_pairs = labelled_log.paired_rows(logged, "v0001", "v0002")  # the watch's pairs
    assert len(watch_pairs) == len(rows)
    # without a watch the shadow challenger takes the first slot; cleared, it is gone
    registry.record("watch_checked", promotion=registry.last_event("forced")["id"], decision="KEEP")  # type: ignore[index]
    holder.refresh()
    assert holder.current.shadow.version == "v0003" and holder.current.shadow2 is None  # type: ignore[union-attr]
    registry.clear_challenger(reason="t")
    holder.refresh()
    assert holder.current.shadow is None and holder.current.shadow2 is None  # type: ignore[union-attr]
    # --shadow off scores no shadow challenger either
    registry.set_challenger("v0003", 0)
    off = ModelHolder(registry.root, shadow="off")
    off.refresh()
    assert off.current is not None and off.current.models() == [off.current.production]
