"""End to end against a real Prefect server: deploy from prefect.yaml, run through a worker,
and start runs from drift events through the deployment's automation.

Starts `deployments/stack-up.sh` on a free loopback port with its own PREFECT_HOME and
RETRAIN_HOME under tmp_path, and always stops what it started, by PID.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes import REPO_ROOT
from stack_tools import free_port, kill_group, run_snippet

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


BIN = Path(sys.executable).parent
POLL_TIMEOUT = 300.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("e2e")
    port = free_port()
    env = {
        **os.environ,
        "RETRAIN_HOME": str(tmp / "home"),
        "RETRAIN_MODEL_NAME": "demo",
        "RETRAIN_PREFECT_PORT": str(port),
        "PREFECT_HOME": str(tmp / "prefect"),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_WORKER_QUERY_SECONDS": "2",
        "PREFECT": str(BIN / "prefect"),
    }
    state = tmp / "home" / "stack"
    try:
        subprocess.run(
            [
                str(BIN / "retrain"),
                "demo-data",
                "--rows",
                "3000",
                "--batches",
                "1",
                "--batch-rows",
                "1000",
                "--drift",
                "0.6",
            ],
            cwd=REPO_ROOT,
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        up = subprocess.run(
            ["bash", "deployments/stack-up.sh"],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert up.returncode == 0, up.stdout + up.stderr
        assert f"http://127.0.0.1:{port}" in up.stdout
        yield {"env": env, "tmp": tmp, "port": port}
    finally:
        subprocess.run(
            ["bash", "deployments/stack-down.sh"],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            timeout=60,
        )
        for name in ("worker", "server"):  # in case stack-down itself failed
            kill_group(state / f"{name}.pid")


RUNS_OF_WEEKLY = """
import json
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
with get_client(sync_client=True) as c:
    dep = c.read_deployment_by_name("retraining/weekly")
    runs = c.read_flow_runs(deployment_filter=DeploymentFilter(id={"any_": [dep.id]}))
    print(json.dumps([{"id": str(r.id), "state": r.state.type.value if r.state else None,
                       "params": r.parameters, "name": r.name} for r in runs]))
"""


def _wait_for_run(stack: dict[str, Any], known: set[str]) -> dict[str, Any]:
    """Poll until a new run of retraining/weekly reaches a final state; return it."""
    deadline = time.monotonic() + POLL_TIMEOUT
    while time.monotonic() < deadline:
        for run in run_snippet(stack["env"], RUNS_OF_WEEKLY):
            if run["id"] not in known and run["state"] in {"COMPLETED", "FAILED", "CRASHED"}:
                return run
        time.sleep(3)
    raise AssertionError(f"no new run of retraining/weekly finished within {POLL_TIMEOUT} s")


def _emit(stack: dict[str, Any], payload: dict[str, Any]) -> None:
    code = (
        "from prefect.events import emit_event\n"
        f"e = emit_event(event='retraining.drift.detected', "
        f"resource={{'prefect.resource.id': 'retraining.model.demo'}}, payload={payload!r})\n"
        "from prefect.events.worker import EventsWorker\n"
        "EventsWorker.drain_all()\n"
        "import json; print(json.dumps(str(e.id) if e else None))\n"
    )
    assert run_snippet(stack["env"], code) is not None


def test_deploy_run_and_drift_events(stack: dict[str, Any]) -> None:
    env = stack["env"]
    run = subprocess.run(
        [
            str(BIN / "prefect"),
            "deployment",
            "run",
            "retraining/weekly",
            "-p",
            "force_retrain=true",
            "-p",
            "num_epochs=5",
            "--watch",
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=POLL_TIMEOUT,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    runs = run_snippet(stack["env"], RUNS_OF_WEEKLY)  # the cron schedule adds future SCHEDULED runs
    assert [r["state"] for r in runs if r["state"] != "SCHEDULED"] == ["COMPLETED"]
    registry = Path(env["RETRAIN_HOME"]) / "models" / "demo"
    assert (registry / "production" / "model.pt").is_file()
    history = [json.loads(line) for line in (registry / "history.jsonl").read_text().splitlines()]
    assert "promoted" in [e["event"] for e in history]

    automations = run_snippet(
        stack["env"],
        "import json\nfrom prefect.client.orchestration import get_client\n"
        "with get_client(sync_client=True) as c:\n"
        "    print(json.dumps([a.name for a in c.read_automations()]))\n",
    )
    assert any("retrain-on-drift" in name for name in automations), automations

    known = {r["id"] for r in runs}
    report = str(stack["tmp"] / f"drift-{uuid.uuid4().hex}.json")
    Path(report).write_text(json.dumps({"dataset_drift": True, "drift_share": 0.7}))
    _emit(stack, {"report_path": report, "drift_share": 0.7, "drifted_features": ["income"]})
    triggered = _wait_for_run(stack, known)
    assert triggered["state"] == "COMPLETED", triggered
    assert triggered["params"]["drift_report_path"] == report

    known.add(triggered["id"])
    _emit(stack, {})
    bare = _wait_for_run(stack, known)
    assert bare["state"] == "COMPLETED", bare
    assert bare["params"].get("drift_report_path") is None
