"""End to end on a production-shaped stack: PostgreSQL, a Prefect server on it, two process
workers, the deployments of prefect.yaml, two models in one working root.

`deployments/stack-up.sh` with RETRAIN_STACK_DB=postgres and `--workers 2` (each worker two
flow runs at a time, so the four runs land on both) in a tmp folder, with a retraining.toml of
two models (``demo`` and ``churn``, the latter without cooldown); always stopped by
`stack-down.sh --purge` (by PID) and the recorded process groups. Drift events for both models
at once, a second one for ``demo`` and a forced ``churn`` run: ``demo`` retrains for its first
event and its second ends ``skip-cooldown-…``; the two models promote at the same time (each
promotion holds its lock 12 s: ``RETRAIN_TEST_PAUSE_AT``), ``churn`` never twice at once.
"""

from __future__ import annotations

import datetime as dt
import json
import os
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
from stack_tools import free_port, kill_group, run_snippet

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BIN = Path(sys.executable).parent
POLL_TIMEOUT = 240.0
DEMO_DRIFT = ["--batch-rows", "1000", "--drift", "0.6"]
FAST = {"num_epochs": 4, "n_bootstrap": 200, "batch_size": 256}
MODELS = ("demo", "churn")
PROMOTION_PAUSE_S = 12


def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    if _pg_bin() is None:
        pytest.skip("PostgreSQL's server programs are not installed (.ci/run installs them)")
    tmp = tmp_path_factory.mktemp("e2e-pg")
    port = free_port()
    config = tmp / "retraining.toml"
    fast = "\n".join(f"{k} = {v}" for k, v in FAST.items())
    # churn has no cooldown: its two cycles both train and compare (one after the other)
    extra = {"demo": "", "churn": "min_hours_between_trainings = 0.0\n"}
    config.write_text("".join(f"[models.{m}]\n{fast}\n{extra[m]}\n" for m in MODELS))
    env = {
        **{k: v for k, v in os.environ.items() if k != "RETRAIN_MODEL_NAME"},
        "RETRAIN_HOME": str(tmp / "home"),
        "RETRAIN_CONFIG": str(config),
        "RETRAIN_TEST_PAUSE_AT": f"promoting:{PROMOTION_PAUSE_S}",
        "RETRAIN_PREFECT_PORT": str(port),
        "RETRAIN_STACK_DB": "postgres",
        "RETRAIN_STACK_WORKER_LIMIT": "2",
        "PREFECT_HOME": str(tmp / "prefect"),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_WORKER_QUERY_SECONDS": "2",
        "PREFECT": str(BIN / "prefect"),
    }
    state = tmp / "home" / "stack"
    try:
        for seed, model in enumerate(MODELS):
            args = ["--model", model, "demo-data", "--rows", "3000", "--batches", "1"]
            subprocess.run(
                [str(BIN / "retrain"), *args, "--seed", str(seed), *DEMO_DRIFT],
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
            kill_group(state / f"{name}.pid")


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
                      "model": run.parameters["config"]["model_name"],
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
        return str(run_snippet(self.stack["env"], code))

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
        assert run_snippet(self.stack["env"], code) is not None

    @property
    def registry(self) -> Path:
        """This model's registry: ``$RETRAIN_HOME/models/<model>``."""
        return Path(self.stack["env"]["RETRAIN_HOME"]) / "models" / self.name

    def history(self) -> list[dict[str, Any]]:
        text = (self.registry / "history.jsonl").read_text()
        return [json.loads(line) for line in text.splitlines()]


def _wait_final(stack: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """Poll until ``count`` runs of retraining/weekly (not the cron's SCHEDULED ones) are
    final; return them."""
    deadline = time.monotonic() + POLL_TIMEOUT
    runs: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        runs = [r for r in run_snippet(stack["env"], RUNS) if r["state"] != "SCHEDULED"]
        final = [r for r in runs if r["state"] in {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}]
        if len(final) >= count and len(final) == len(runs):
            return runs
        time.sleep(3)
    raise AssertionError(f"runs of retraining/weekly not final in {POLL_TIMEOUT} s: {runs}")


def _overlap(a: dict[str, Any], b: dict[str, Any]) -> bool:
    start = max(dt.datetime.fromisoformat(a["start"]), dt.datetime.fromisoformat(b["start"]))
    end = min(dt.datetime.fromisoformat(a["end"]), dt.datetime.fromisoformat(b["end"]))
    return start < end


SCHEDULES = """
import json
from prefect.client.orchestration import get_client
with get_client(sync_client=True) as c:
    out = {}
    for name in ("retraining/weekly", "drift-monitor/daily"):
        d = c.read_deployment_by_name(name)
        gcl = d.global_concurrency_limit
        out[name] = {"limit": gcl.limit if gcl else None,
                     "schedules": sorted((s.slug, s.parameters.get("model_name"))
                                         for s in c.read_deployment_schedules(d.id))}
    print(json.dumps(out))
"""


def test_postgres_stack_two_models_two_workers(stack: dict[str, Any]) -> None:
    # The stack gave each model its schedules; the retraining deployment has no run limit (the
    # flow's per-model lock serializes one model's cycles).
    schedules = run_snippet(stack["env"], SCHEDULES)
    assert schedules["retraining/weekly"]["limit"] is None, schedules
    for name in ("retraining/weekly", "drift-monitor/daily"):
        assert schedules[name]["schedules"] == sorted([f"model-{m}", m] for m in MODELS)

    demo, churn = ModelRuns(stack, "demo"), ModelRuns(stack, "churn")
    reports = {}
    for model in MODELS:
        reports[model] = str(stack["tmp"] / f"drift-{model}-{uuid.uuid4().hex}.json")
        Path(reports[model]).write_text(json.dumps({"dataset_drift": True, "drift_share": 0.7}))
    demo.emit_drift({"report_path": reports["demo"], "drift_share": 0.7})
    churn.emit_drift({"report_path": reports["churn"], "drift_share": 0.7})
    demo.emit_drift({"report_path": reports["demo"], "drift_share": 0.7})
    forced = churn.start_retraining(force_retrain=True)

    runs = _wait_final(stack, 4)
    assert len(runs) == 4, runs
    assert all(r["state"] == "COMPLETED" for r in runs), runs
    by_model: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        by_model.setdefault(run["params"]["model_name"], []).append(run)
        if run["id"] != forced:
            assert run["params"]["drift_report_path"] == reports[run["params"]["model_name"]]
    assert {m: len(r) for m, r in by_model.items()} == {"demo": 2, "churn": 2}, runs

    # demo trained once and skipped its second event on the default cooldown; churn (no
    # cooldown) trained twice, one cycle after the other; every run's events are there.
    for model in (demo, churn):
        history = model.history()
        by_run: dict[str, list[str]] = {}
        for event in history:
            by_run.setdefault(event.get("run_id"), []).append(event["event"])
        assert set(by_run) == {r["id"] for r in by_model[model.name]}, by_run
        cycles = sorted(by_run.values())
        if model is demo:
            assert cycles == [["registered", "compared", "promoted"], ["skipped"]], by_run
        else:
            assert all(c[:2] == ["registered", "compared"] for c in cycles), by_run
            decisions = sorted(c[2] for c in cycles)
            assert "promoted" in decisions, by_run
            assert set(decisions) <= {"promoted", "rejected", "inconclusive"}, by_run
        promoted = [e["version"] for e in history if e["event"] == "promoted"]
        pointer = json.loads((model.registry / "production.json").read_text())
        assert pointer["version"] == promoted[-1]
        skipped = [e for e in history if e["event"] == "skipped"]
        assert all("cooldown" in " ".join(e["reasons"]) for e in skipped), skipped
    names = sorted(r["name"] for r in by_model["demo"])
    assert any(n.startswith("demo · skip-cooldown-") for n in names), names

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

    # Compare-and-promote spans (each holds its promotion lock 12 s): demo's overlaps one of
    # churn's (each model has its own lock), churn's two never overlap (one model never
    # compares and promotes twice at once).
    spans = run_snippet(stack["env"], LOCKED_SPANS)
    by_span: dict[str, list[dict[str, Any]]] = {}
    for span in spans:
        by_span.setdefault(span["model"], []).append(span)
    assert {m: len(v) for m, v in by_span.items()} == {"demo": 1, "churn": 2}, spans
    assert any(_overlap(by_span["demo"][0], c) for c in by_span["churn"]), spans
    assert not _overlap(*by_span["churn"]), spans
