"""Issue 25, done-when: a Hypothesis test sends >= 2,000 generated bodies (JSON and Arrow,
well formed or not) to a running ``retrain serve``. It gets no 5xx, and every row of every 2xx
answer appears in the prediction log after a flush (the SIGTERM the service stops with)."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from bodies import bodies
from fakes import REPO_ROOT, time_limit
from hypothesis import HealthCheck, given, settings
from serving_models import build_registry
from stack_tools import free_port

from model.serving.log import read_log

pytestmark = pytest.mark.slow
BODIES = int(os.environ.get("RETRAIN_LIVE_BODIES", "2000"))


def _start(root: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "RETRAIN_HOME": str(root), "RETRAIN_MODEL_NAME": "demo"}
    command = [sys.executable, "-m", "model.cli", "serve", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--no-events", "--max-rows", "50", "--poll-seconds", "30"]
    proc = subprocess.Popen(command, env=env, cwd=REPO_ROOT)
    with time_limit(180, "the service's start"):
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    return proc
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, "the service exited"
            time.sleep(0.3)


def test_generated_bodies_to_a_running_service(tmp_path: Path) -> None:
    root = tmp_path / "home"
    build_registry(root, manifest=True)  # production trained on integer ids
    port = free_port()
    proc = _start(root, port)
    answered: collections.Counter[str] = collections.Counter()
    statuses: collections.Counter[int] = collections.Counter()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:

            @settings(
                max_examples=BODIES,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(bodies)
            def send(case: tuple[bytes, str]) -> None:
                body, kind = case
                with time_limit(30, "one request"):
                    r = client.post("/predict", content=body, headers={"content-type": kind})
                statuses[r.status_code] += 1
                assert r.status_code < 500, (r.status_code, r.text[:300], body[:200])
                if r.status_code == 200:  # JSON answers (no Accept header asks for Arrow)
                    answered.update(p["id"] for p in r.json()["predictions"])

            send()
    finally:
        os.kill(proc.pid, signal.SIGTERM)  # stops it by its PID; the log is flushed
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
    assert sum(statuses.values()) >= BODIES and not any(s >= 500 for s in statuses)
    assert statuses[200] > BODIES // 8, statuses  # many bodies are served, and logged
    log = read_log(root / "predictions" / "demo")
    logged = collections.Counter(log.column("id").to_pylist() if log is not None else [])
    assert logged == answered  # every row answered 2xx, and nothing else
    print(f"statuses {dict(statuses)}; rows answered and logged {sum(logged.values())}")
