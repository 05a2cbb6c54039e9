"""End to end on a production-shaped stack: PostgreSQL, a Prefect server on it, two process
workers, the deployments of prefect.yaml; concurrent retraining runs and a drift event.

`deployments/stack-up.sh` with RETRAIN_STACK_DB=postgres and `--workers 2` (each worker one
flow run at a time, so two concurrent runs land on both) in a tmp folder; always stopped by
`stack-down.sh --purge` (by PID) and the recorded process groups.

Models are handled through :class:`ModelRuns` (start a run, emit a drift event, read its
registry) so that a second model can be added once a working root holds several.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fakes import REPO_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BIN = Path(sys.executable).parent
POLL_TIMEOUT = 240.0
DEMO_DRIFT = ["--batch-rows", "1000", "--drift", "0.6"]
FAST = {"num_epochs": 4, "n_bootstrap": 200, "batch_size": 256}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


def _kill_group(pid_file: Path) -> None:
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text())
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        for _ in range(50):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    if _pg_bin() is None:
        pytest.skip("PostgreSQL's server programs are not installed (.ci/run installs them)")
    tmp = tmp_path_factory.mktemp("e2e-pg")
    port = _free_port()
    env = {
        **os.environ,
        "RETRAIN_HOME": str(tmp / "home"),
        "RETRAIN_MODEL_NAME": "demo",
        "RETRAIN_PREFECT_PORT": str(port),
        "RETRAIN_STACK_DB": "postgres",
        "RETRAIN_STACK_WORKER_LIMIT": "1",
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
            [str(BIN / "retrain"), "demo-data", "--rows", "3000", "--batches", "1", *DEMO_DRIFT],
            cwd=REPO_ROOT,
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        up = subprocess.run(
            ["bash", "deployments/stack-up.sh", "--workers", "2"],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert up.returncode == 0, up.stdout + up.stderr
        assert "database: postgres, workers: 2" in up.stdout, up.stdout
        yield {"env": env, "tmp": tmp, "state": state}
    finally:
        subprocess.run(
            ["bash", "deployments/stack-down.sh", "--purge"],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            timeout=120,
        )
        for name in ("worker", "worker-2", "server"):  # in case stack-down itself failed
            _kill_group(state / f"{name}.pid")


def _py(stack: dict[str, Any], code: str, timeout: float = 120) -> Any:
    """Run a snippet against the stack's API in a fresh interpreter; return its JSON output."""
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env=stack["env"],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def _sql(stack: dict[str, Any], query: str) -> list[list[str]]:
    """Rows of ``query`` on the Prefect server's PostgreSQL database (psql, tab-separated)."""
    state = stack["state"]
    bin_dir = _pg_bin()
    assert bin_dir is not None
    port = (state / "postgres.port").read_text().strip()
    connect = ["-h", "127.0.0.1", "-p", port, "-U", "postgres", "-d", "prefect"]
    out = subprocess.run(
        [str(bin_dir / "psql"), *connect, "-tA", "-F", "\t", "-c", query],
        env={**os.environ, "PGPASSWORD": (state / "postgres.password").read_text().strip()},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return [line.split("\t") for line in out.stdout.splitlines() if line]


RUNS = """
import json
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter
with get_client(sync_client=True) as c:
    dep = c.read_deployment_by_name("retraining/weekly")
    runs = c.read_flow_runs(deployment_filter=DeploymentFilter(id={"any_": [dep.id]}))
    print(json.dumps([{"id": str(r.id), "state": r.state.type.value if r.state else None,
                       "params": r.parameters, "name": r.name} for r in runs]))
"""

LOCKED_SPANS = """
import json
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowFilter, FlowRunFilter, TaskRunFilter
with get_client(sync_client=True) as c:
    subflows = c.read_flow_runs(flow_filter=FlowFilter(name={"any_": ["evaluate-and-promote"]}))
    spans = []
    for run in subflows:
        tasks = c.read_task_runs(flow_run_filter=FlowRunFilter(id={"any_": [run.id]}))
        inside = [t for t in tasks if t.name.rsplit("-", 1)[0] in
                  ("compare_models", "promote_model", "record_event")]
        spans.append({"run": str(run.id), "name": run.name,
                      "start": min(t.start_time for t in inside).isoformat(),
                      "end": max(t.end_time for t in inside).isoformat(),
                      "tasks": sorted(t.name for t in inside)})
    print(json.dumps(spans))
"""


@dataclass
class ModelRuns:
    """One model on the stack: start retraining runs, emit drift events, read its registry."""

    stack: dict[str, Any]
    name: str

    def start_retraining(self, **params: Any) -> str:
        params = {**params, "model_name": self.name}
        code = (
            "import json\nfrom prefect.deployments import run_deployment\n"
            f"r = run_deployment('retraining/weekly', parameters={params!r}, timeout=0)\n"
            "print(json.dumps(str(r.id)))\n"
        )
        return str(_py(self.stack, code))

    def emit_drift(self, payload: dict[str, Any]) -> None:
        resource = {"prefect.resource.id": f"retraining.model.{self.name}"}
        resource["prefect.resource.name"] = self.name
        code = (
            "from prefect.events import emit_event\n"
            f"e = emit_event(event='retraining.drift.detected', resource={resource!r}, "
            f"payload={payload!r})\n"
            "from prefect.events.worker import EventsWorker\n"
            "EventsWorker.drain_all()\n"
            "import json; print(json.dumps(str(e.id) if e else None))\n"
        )
        assert _py(self.stack, code) is not None

    @property
    def registry(self) -> Path:
        """Today one working root holds one model's registry (``$RETRAIN_HOME/models``)."""
        return Path(self.stack["env"]["RETRAIN_HOME"]) / "models"

    def history(self) -> list[dict[str, Any]]:
        text = (self.registry / "history.jsonl").read_text()
        return [json.loads(line) for line in text.splitlines()]


def _wait_final(stack: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """Poll until ``count`` runs of retraining/weekly (not the cron's SCHEDULED ones) are
    final; return them."""
    deadline = time.monotonic() + POLL_TIMEOUT
    runs: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        runs = [r for r in _py(stack, RUNS) if r["state"] != "SCHEDULED"]
        final = [r for r in runs if r["state"] in {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}]
        if len(final) >= count and len(final) == len(runs):
            return runs
        time.sleep(3)
    raise AssertionError(f"runs of retraining/weekly not final in {POLL_TIMEOUT} s: {runs}")


def _overlap(a: dict[str, Any], b: dict[str, Any]) -> bool:
    start = max(dt.datetime.fromisoformat(a["start"]), dt.datetime.fromisoformat(b["start"]))
    end = min(dt.datetime.fromisoformat(a["end"]), dt.datetime.fromisoformat(b["end"]))
    return start < end


def test_postgres_stack_two_workers_concurrent_runs(stack: dict[str, Any]) -> None:
    # One deployment, several runs at once (the many-models work raises the yaml's limit).
    _py(
        stack,
        "import json\nfrom prefect.client.orchestration import get_client\n"
        "from prefect.client.schemas.actions import DeploymentUpdate\n"
        "with get_client(sync_client=True) as c:\n"
        "    d = c.read_deployment_by_name('retraining/weekly')\n"
        "    c.update_deployment(d.id, DeploymentUpdate(concurrency_limit=3))\n"
        "    print(json.dumps(c.read_deployment(d.id).concurrency_limit))\n",
    )
    demo = ModelRuns(stack, "demo")
    report = str(stack["tmp"] / f"drift-{uuid.uuid4().hex}.json")
    Path(report).write_text(json.dumps({"dataset_drift": True, "drift_share": 0.7}))
    forced = [demo.start_retraining(force_retrain=True, **FAST) for _ in range(2)]
    demo.emit_drift({"report_path": report, "drift_share": 0.7})

    runs = _wait_final(stack, 3)
    assert len(runs) == 3, runs
    assert {r["id"] for r in runs} >= set(forced)
    assert all(r["state"] == "COMPLETED" for r in runs), runs
    drift_runs = [r for r in runs if r["id"] not in forced]
    assert drift_runs[0]["params"]["drift_report_path"] == report
    assert drift_runs[0]["params"]["model_name"] == "demo"

    # Both workers took runs: the worker's "submitting" line is in the server's log table.
    taken = _sql(
        stack,
        "SELECT flow_run_id, message FROM log WHERE message LIKE 'Worker %submitting flow run%'",
    )
    by_worker: dict[str, set[str]] = {}
    for run_id, message in taken:
        by_worker.setdefault(message.split("'")[1], set()).add(run_id)
    assert set(by_worker) == {"retraining-worker", "retraining-worker-2"}, by_worker
    assert set().union(*by_worker.values()) >= {r["id"] for r in runs}

    # The server's database holds the runs, in their final state.
    rows = _sql(
        stack,
        "SELECT fr.id, fr.state_type FROM flow_run fr JOIN deployment d "
        "ON fr.deployment_id = d.id WHERE d.name = 'weekly' AND fr.state_type <> 'SCHEDULED'",
    )
    assert {(r[0], r[1]) for r in rows} == {(r["id"], "COMPLETED") for r in runs}

    # No two compare-and-promote spans of the model overlapped (the promotion lock).
    spans = _py(stack, LOCKED_SPANS)
    trained = [e for e in demo.history() if e["event"] == "registered"]
    assert len(spans) == len(trained) >= 2, (spans, trained)
    for i, a in enumerate(spans):
        for b in spans[i + 1 :]:
            assert not _overlap(a, b), (a, b)

    # The registry's history is complete: every run has its events, every candidate its
    # decision; production is the last promoted version.
    history = demo.history()
    by_run: dict[str, list[str]] = {}
    for event in history:
        by_run.setdefault(event.get("run_id"), []).append(event["event"])
    assert set(by_run) == {r["id"] for r in runs}, by_run
    for run_id, events in by_run.items():
        if events == ["skipped"]:
            assert run_id not in forced
            continue
        assert events[:2] == ["registered", "compared"], events
        assert events[2] in {"promoted", "rejected", "inconclusive"}, events
    promoted = [e["version"] for e in history if e["event"] == "promoted"]
    pointer = json.loads((demo.registry / "production.json").read_text())
    assert promoted and pointer["version"] == promoted[-1]
