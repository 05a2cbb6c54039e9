"""Issue 25, rule 4: damage is a failure, everywhere. ``retrain status`` exits non-zero when it
prints a problem; the service's ``/health`` and ``/version`` report a deleted or corrupt
production or challenger, and it stops routing to a challenger that is gone.

The probe's cases: after the production or the challenger version folder was deleted,
``/version`` reported no problem and about 47 % of traffic still went to the deleted
challenger; ``retrain status`` exited 0 while printing "CORRUPT … v0002" for production."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from serving_models import build_registry

from model.cli import main
from model.registry import ModelRegistry
from model.settings import Settings

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx`:DeprecationWarning")
ROWS = [{"id": i, "x": float(i), "c": "a", "city": "p"} for i in range(200)]


def _remove(folder: Path) -> None:
    for sub, _dirs, files in os.walk(folder):
        os.chmod(sub, 0o755)
        for name in files:
            os.chmod(Path(sub) / name, 0o644)
    shutil.rmtree(folder)


def _refresh(client: Any) -> None:
    client.app.state.service.holder.refresh()


def test_a_deleted_challenger_gets_no_traffic_and_is_reported(
    make_client: Callable[..., Any], registry: ModelRegistry
) -> None:
    registry.set_challenger("v0002", 50.0)
    client = make_client(poll_seconds=3600)
    roles = {p["role"] for p in client.post("/predict", json={"rows": ROWS}).json()["predictions"]}
    assert roles == {"production", "challenger"}
    _remove(registry.version_path("v0002"))
    _refresh(client)
    out = client.post("/predict", json={"rows": ROWS}).json()["predictions"]
    assert {p["version"] for p in out} == {"v0001"}  # not one row to the deleted challenger
    version = client.get("/version").json()
    assert version["challenger"] is None
    assert any("challenger v0002 not served" in p and "gone" in p for p in version["problems"])
    health = client.get("/health")
    assert health.status_code == 200 and "challenger v0002" in health.json()["problems"][0]


@pytest.mark.parametrize("damage", ["deleted", "corrupt"])
def test_a_damaged_production_is_degraded_health_and_still_served(
    make_client: Callable[..., Any], registry: ModelRegistry, damage: str
) -> None:
    client = make_client(poll_seconds=3600)
    assert client.get("/health").json() == {"status": "ok", "problems": []}
    folder = registry.version_path("v0001")
    if damage == "deleted":
        _remove(folder)
    else:
        os.chmod(folder / "model.pt", 0o644)
        with open(folder / "model.pt", "r+b") as fh:
            fh.seek(100)
            fh.write(b"\x00\x01\x02\x03")
    _refresh(client)
    health = client.get("/health")
    assert health.status_code == 503 and health.json()["status"] == "degraded"
    problem = health.json()["problems"][0]
    assert "production v0001 is damaged" in problem
    assert ("gone" if damage == "deleted" else "checksum mismatch") in problem
    assert "production v0001 is damaged" in client.get("/version").json()["problems"][0]
    r = client.post("/predict", json={"rows": ROWS[:3]})
    assert r.status_code == 200  # the copy in memory still serves


def test_status_exits_non_zero_for_a_corrupt_production(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = build_registry(settings.root)
    pt = registry.version_path("v0001") / "model.pt"
    os.chmod(pt, 0o644)
    pt.write_bytes(pt.read_bytes()[:-8] + b"garbage!")
    capsys.readouterr()
    assert main(["status"]) == 2
    out, err = capsys.readouterr()
    assert "CORRUPT" in out and "v0001" in out
    assert err.startswith("error: ") and "v0001" in err
