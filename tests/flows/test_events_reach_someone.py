"""Drift events reach a listener, or the user is told (issue 24, item 5): without a server the
drift monitor sends nothing into nowhere and prints the command that retrains;
``retrain drift --then-retrain`` runs the cycle in the same process on the report it just
wrote (one drift report per cycle); the command-line flows use a running ``make stack-up``
server when there is one (``RETRAIN_PREFECT_SERVER``)."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes import REPO_ROOT
from prefect.events.worker import EventsWorker
from prefect.testing.fixtures import (  # noqa: F401  (pytest fixtures)
    asserting_events_worker,
    reset_worker_events,
)
from test_drift_cycle import FAST, drift_events, history  # the drift loop's own helpers

import flows.drift_monitor
from flows.drift_monitor import DRIFT_EVENT, drift_monitor
from flows.ephemeral import stack_api_url
from flows.retraining import retraining
from model.cli import main
from model.data.demo import write_demo
from model.settings import Settings


def test_drift_without_a_server_sends_nothing_and_names_the_command(
    prefect_harness: None,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    asserting_events_worker: EventsWorker,  # noqa: F811
    reset_worker_events: None,  # noqa: F811
) -> None:
    write_demo(settings, rows=2_500, seed=7)
    assert retraining(**FAST).status == "promoted"
    write_demo(settings, rows=2_500, seed=7, drift=0.8, batches=1, batch_rows=3_000)
    monkeypatch.setattr(flows.drift_monitor, "uses_api_server", lambda: False)
    summary = drift_monitor()
    assert summary["dataset_drift"] is True
    assert summary["event"] is None
    assert summary["retrain_command"] == (
        f"python -m flows.retraining --model demo -p drift_report_path={summary['report_path']}"
    )
    assert drift_events(asserting_events_worker) == []
    monkeypatch.setattr(flows.drift_monitor, "uses_api_server", lambda: True)  # the harness's
    assert drift_monitor()["event"] == DRIFT_EVENT
    assert len(drift_events(asserting_events_worker)) == 1


def test_retrain_drift_then_retrain_uses_the_report_it_wrote(
    prefect_harness: None,
    settings: Settings,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write_demo(settings, rows=2_500, seed=7)
    assert retraining(**FAST).status == "promoted"
    write_demo(settings, rows=2_500, seed=7, drift=0.8, batches=1, batch_rows=3_000)
    drift_dir = settings.reports_dir / "drift"
    assert not drift_dir.exists()

    assert main(["drift", "--no-model"]) == 0  # no --emit, no --then-retrain: told what to do
    err = capsys.readouterr().err
    assert (
        "no deployment will retrain" in err and "retrain --model demo drift --then-retrain" in err
    )
    assert len(list(drift_dir.iterdir())) == 1

    assert main(["drift", "--emit", "--then-retrain"]) == 2
    assert "choose one" in capsys.readouterr().err

    # the cycle's table has num_epochs 100: a short one through the model's configuration
    config = settings.root / "retraining.toml"
    config.write_text('[models.demo]\nid_column = "id"\nnum_epochs = 3\nn_bootstrap = 200\n'
                      "min_hours_between_trainings = 0.0\n")  # fmt: skip
    monkeypatch.setenv("RETRAIN_CONFIG", str(config))
    assert main(["drift", "--no-model", "--then-retrain"]) == 0
    out = capsys.readouterr().out
    reports = sorted(drift_dir.iterdir())
    assert len(reports) == 2  # this command's report; the cycle computed none of its own
    assert f"retraining demo on {reports[-1] / 'drift.json'}" in out
    trained = [e for e in history(settings) if e["event"] == "registered"][-1]
    assert trained["version"] == "v0002"
    assert trained["reason"]["trigger"] == "drift"
    assert trained["reason"]["drift_report_path"] == str(reports[-1] / "drift.json")


class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/api/health" else 404)
        self.end_headers()
        self.wfile.write(b"true")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def stack_dir(tmp_path: Path) -> Iterator[Path]:
    """What `make stack-up` leaves in <RETRAIN_HOME>/stack: a live server PID and its API
    address, answered by a stand-in /health on a free loopback port."""
    server = http.server.HTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    folder = tmp_path / "stack"
    folder.mkdir()
    (folder / "server.pid").write_text(str(os.getpid()))
    (folder / "api_url").write_text(f"http://127.0.0.1:{server.server_port}/api\n")
    try:
        yield folder
    finally:
        server.shutdown()
        server.server_close()


PROBE = """
import json, os, sys
from pathlib import Path
import flows.ephemeral as ephemeral
from prefect.settings import PREFECT_API_URL
ephemeral.start_tied_ephemeral_server = lambda: True  # recorded by the answer, not started
try:
    chose = ephemeral.connect_cli_run(Path(sys.argv[1]))
except Exception as exc:
    chose = f"{type(exc).__name__}: {exc}"
print(json.dumps([chose, PREFECT_API_URL.value(), os.environ.get("PREFECT_API_URL")]))
"""


def connect(stack_dir: Path, setting: str | None = None) -> list[Any]:
    """``connect_cli_run`` in a fresh interpreter (no Prefect settings context of the tests'
    harness), without PREFECT_API_URL."""
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.pop("RETRAIN_PREFECT_SERVER", None)
    if setting is not None:
        env["RETRAIN_PREFECT_SERVER"] = setting
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(stack_dir)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


def test_cli_flows_use_the_running_stack_server(stack_dir: Path) -> None:
    url = (stack_dir / "api_url").read_text().strip()
    assert stack_api_url(stack_dir) == url
    assert connect(stack_dir) == ["stack", url, url]  # seen by Prefect and by child processes


def test_a_dead_or_silent_stack_means_a_temporary_server(stack_dir: Path) -> None:
    assert connect(stack_dir, "temporary") == ["temporary", None, None]
    (stack_dir / "server.pid").write_text("999999999")  # no such process
    assert stack_api_url(stack_dir) is None
    (stack_dir / "server.pid").write_text(str(os.getpid()))
    (stack_dir / "api_url").write_text("http://127.0.0.1:1/api")  # nothing answers there
    assert stack_api_url(stack_dir) is None
    assert connect(stack_dir, "auto") == ["temporary", None, None]
    assert stack_api_url(stack_dir.parent / "none") is None
    chose = connect(stack_dir, "sometimes")[0]
    assert chose.startswith("ParameterError: RETRAIN_PREFECT_SERVER='sometimes'"), chose
