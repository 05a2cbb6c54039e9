"""Issue 16's guardrail end to end on the demo: serve → a deliberately worse model forced into
production → traffic and late labels → the ``post-promotion-watch`` flow rolls it back → the
running service answers with the previous version again.

Everything is the real thing: the models are trained, registered and promoted with the
``retrain`` CLI (in process); the scoring service is ``retrain serve`` as a process on a free
127.0.0.1 port (stopped by its PID), with its default shadow mode (the previous production
scores every row while the watch is open); traffic goes over HTTP; labels are joined with
``retrain labels add``; the flow runs on the session's Prefect test server, which the service
also subscribes to for ``retraining.model.rolled_back``. Paths come from
:class:`model.settings.Settings`, never spelled out.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fakes import REPO_ROOT
from stack_tools import free_port

from model.cli import main as retrain
from model.data.demo import make_customers
from model.registry import ModelRegistry
from model.serving.log import log_folder, read_log
from model.settings import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROLLED_BACK = "retraining.model.rolled_back"
TRAIN = ["--preset", "recommended", "--epochs", "6", "--seed", "0", "--quiet"]
DEADLINE = 120.0  # seconds any wait below may take before the test fails


def wait_for(what: str, check: Callable[[], Any], seconds: float = DEADLINE) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after the
    deadline (a bounded wait, never a fixed sleep)."""
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found is not None and found is not False and not (isinstance(found, list) and not found):
            return found
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        time.sleep(0.2)


class Service:
    """``retrain serve`` as a process on a free loopback port, stopped by its PID."""

    def __init__(self, settings: Settings, api_url: str) -> None:
        self.port = free_port()
        self.output = settings.root / "serve.log"
        env = {
            **os.environ,
            "RETRAIN_HOME": str(settings.root),
            "RETRAIN_MODEL_NAME": settings.model_name,
            "PYTHONPATH": str(REPO_ROOT),
            "PREFECT_API_URL": api_url,  # the test server: the service follows its events
        }
        command = [sys.executable, "-m", "model.cli", "serve", "--port", str(self.port)]
        command += ["--model", settings.model_name, "--poll-seconds", "0.5"]
        command += ["--flush-seconds", "0.3"]
        self.proc = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=self.output.open("wb"), stderr=subprocess.STDOUT
        )
        wait_for(f"the service to start ({self.output})", self._healthy)

    def _healthy(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"the service exited: {self.output.read_text()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2):
                return True
        except OSError:
            return False

    def version(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/version", timeout=10) as r:
            return dict(json.loads(r.read()))

    def serving(self, production: str, shadow: str | None) -> bool:
        doc = self.version()
        return bool(
            doc["production"]["version"] == production
            and (doc["shadow"] or {}).get("version") == shadow
        )

    def predict(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/predict",
            data=json.dumps({"rows": rows}).encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200
            return list(json.loads(response.read())["predictions"])

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def cli(*argv: str) -> None:
    assert retrain(list(argv)) == 0, f"retrain {' '.join(argv)} failed"


def train_model(frame: pd.DataFrame, folder: Path, name: str) -> Path:
    """Demo rows → ``retrain prepare`` → ``retrain train``: the model folder."""
    data = folder / f"{name}.parquet"
    frame.to_parquet(data, index=False)
    cli("prepare", "--data", str(data), "--out", str(folder / f"prepared-{name}"))
    (prepared,) = (p.parent for p in (folder / f"prepared-{name}").glob("*/manifest.json"))
    cli("train", "--data", str(prepared), "--out", str(folder / name), *TRAIN)
    return folder / name


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return list(json.loads(frame.drop(columns=["target"]).to_json(orient="records")))


def send(service: Service, frame: pd.DataFrame, chunk: int = 200) -> list[dict[str, Any]]:
    rows = records(frame)
    out: list[dict[str, Any]] = []
    for start in range(0, len(rows), chunk):
        out += service.predict(rows[start : start + chunk])
    return out


def logged(settings: Settings, rows: int) -> pd.DataFrame:
    """The prediction log once it holds ``rows`` rows (the service flushes every 0.3 s)."""

    def complete() -> pd.DataFrame | None:
        table = read_log(log_folder(settings.predictions_dir, settings.model_name))
        return table.to_pandas() if table is not None and table.num_rows == rows else None

    return wait_for(f"{rows} rows in the prediction log", complete)


def rolled_back_events(version: str) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter

    with get_client(sync_client=True) as client:
        # the client's default page (100) is over the server's maximum (50)
        name = EventNameFilter(name=[ROLLED_BACK])
        page = client.read_events(EventFilter(event=name), limit=50)
    return [e for e in page.events if (e.payload or {}).get("version") == version]


@pytest.fixture
def api_url(prefect_harness: None) -> str:
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    assert url, "the Prefect test harness set no API URL"
    return str(url)


@pytest.fixture
def service_holder() -> Iterator[list[Service]]:
    started: list[Service] = []
    yield started
    for service in started:
        service.stop()


def test_watch_rolls_back_a_forced_worse_model_and_the_service_follows(
    settings: Settings,
    tmp_path: Path,
    api_url: str,
    service_holder: list[Service],
    capsys: pytest.CaptureFixture[str],
) -> None:
    from flows.post_promotion_watch import post_promotion_watch

    # 1. a good production model, and a deliberately worse one trained on shuffled labels
    work = tmp_path / "work"
    work.mkdir()
    base = make_customers(rows=4000, seed=42)
    shuffled = base.copy()
    shuffled["target"] = np.random.default_rng(0).permutation(base["target"].to_numpy())
    good_folder = train_model(base, work, "good")
    bad_folder = train_model(shuffled, work, "bad")
    cli("register", str(good_folder), "--reason", "e2e: trained on the demo")
    cli("register", str(bad_folder), "--reason", "e2e: trained on shuffled labels")
    cli("promote", "v0001", "--reason", "e2e: first production model")
    registry = ModelRegistry(settings.models_dir)

    # 2. serve; force the worse model into production; the service follows, previous in shadow
    service = Service(settings, api_url)
    service_holder.append(service)
    assert service.serving("v0001", None)  # the first model: nothing to watch
    cli("promote", "v0002", "--force", "--reason", "e2e: deliberately worse (shuffled labels)")
    wait_for(
        "the service to serve v0002 with v0001 in shadow", lambda: service.serving("v0002", "v0001")
    )

    # 3. traffic over HTTP (demo customers the models never saw), answered by the new production
    traffic = make_customers(rows=2400, seed=11, batch=1)
    answers = send(service, traffic)
    assert len(answers) == len(traffic)
    assert {(a["version"], a["role"]) for a in answers} == {("v0002", "production")}
    frame = logged(settings, len(traffic))
    assert set(frame["__served_version__"]) == {"v0002"}
    assert set(frame["__shadow_version__"]) == {"v0001"}  # the previous production, unreturned
    assert frame["__shadow_score__"].notna().all()

    # 4. the labels arrive late: `retrain labels add` joins them to the log by id
    labels = work / "labels.csv"
    traffic[["id", "target"]].rename(columns={"target": "churned"}).to_csv(labels, index=False)
    capsys.readouterr()
    cli("labels", "add", str(labels), "--id-column", "id", "--label-column", "churned", "--json")
    counts = json.loads(capsys.readouterr().out)
    assert counts["added"] == len(traffic) and counts["never_served"] == 0
    assert counts["batch"] and Path(counts["batch"]).is_file()
    assert Path(counts["batch"]).is_relative_to(settings.incoming_dir)

    # 5. the watch flow rolls the worse model back at its first look (2,400 labelled rows)
    outcome = post_promotion_watch()
    assert outcome["decision"] == "ROLLBACK" and outcome["restored"] == "v0001", outcome
    prod = registry.production()
    assert prod is not None and prod.version == "v0001"

    # 6. the running service follows: previous version back, no shadow once the watch is over
    wait_for("the service to serve v0001 again", lambda: service.serving("v0001", None))
    after = make_customers(rows=300, seed=12, batch=2)  # ids of their own
    answers = send(service, after, chunk=100)
    assert {(a["version"], a["role"]) for a in answers} == {("v0001", "production")}
    frame = logged(settings, len(traffic) + len(after))
    late = frame[frame["id"].isin(after["id"].astype(str))]  # the log keeps ids as text
    assert len(late) == len(after) and set(late["__served_version__"]) == {"v0001"}
    assert late["__shadow_version__"].isna().all()

    # 7. the history: the forced promotion, the watch's looks, then the rollback with evidence
    events = [
        e
        for e in registry.history()
        if e["event"] in ("promoted", "forced", "watch_checked", "rolled_back")
    ]
    kinds = [e["event"] for e in events]
    assert kinds[:2] == ["promoted", "forced"] and kinds[-1] == "rolled_back", kinds
    assert kinds[2:-1] and set(kinds[2:-1]) == {"watch_checked"}, kinds
    forced, look, rolled = events[1], events[-2], events[-1]
    assert (forced["version"], forced["previous"]) == ("v0002", "v0001")
    assert look["promotion"] == forced["id"] and look["decision"] == "ROLLBACK"
    assert look["n"] == len(traffic) and look["alpha_spent"] > 0
    assert rolled["version"] == "v0001"
    reason = rolled["reason"]
    assert reason.startswith("post-promotion watch: AUC change -"), reason
    assert f"on {len(traffic)} rows" in reason
    assert "the new production is worse than the previous by more than 0.01" in reason

    # 8. the flow told the Prefect server: retraining.model.rolled_back (v0002 → v0001)
    found = wait_for(f"a {ROLLED_BACK} event", lambda: rolled_back_events("v0001"), 60)
    assert found[0].payload["previous"] == "v0002"
    assert found[0].resource.id == settings.event_resource_id
