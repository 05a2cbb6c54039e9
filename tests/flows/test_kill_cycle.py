"""Fault injection (issue 12, "done when"): a cycle SIGKILLed at each stage never blocks the
next one, and leaves the registry verifiable and every candidate with an outcome.

One chain of real ``python -m flows.retraining --force`` processes on one registry, each
killing itself (``RETRAIN_TEST_KILL_AT``, tasks/faults.py) at the next stage: preparing,
training, registering, comparing (promotion lock held), promoting (promotion lock held, PROMOTE
recorded); then one that completes. Each cycle after a kill is the "next cycle" of the one
before it: it gets past the point where the dead one stopped (the kernel freed its locks),
records ``failed`` for its candidate and removes its scratch folder. They share one Prefect
home (the database is migrated once) and, with no ``PREFECT_API_URL``, each starts its own
ephemeral server — which must not outlive its SIGKILLed process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fakes import REPO_ROOT

from model.data.demo import write_demo
from model.registry import ModelRegistry
from model.settings import Settings
from model.training.artifact import load_model
from tasks.faults import KILL_AT_ENV, STAGES

HANG_GUARD_S = 600
"""Only a guard against a hang (the suite must end): no assertion is made on how long a cycle
takes. That nothing waits for a dead cycle is checked by the lock's own message instead."""
WAITING = "Waiting for this model's running cycle to finish"
"""What a cycle logs when another holds the model's cycle lock (``flows/retraining.py``)."""

pytestmark = pytest.mark.slow


def _servers_of(prefect_home: Path) -> list[int]:
    """Processes running a Prefect server with this Prefect home (our ephemeral servers)."""
    marker = f"PREFECT_HOME={prefect_home}".encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if b"uvicorn" in cmdline and marker in environ.split(b"\0"):
            pids.append(int(proc.name))
    return pids


def _cycle(env: dict[str, str], kill_at: str | None) -> subprocess.CompletedProcess[str]:
    run_env = {**env, KILL_AT_ENV: kill_at} if kill_at else env
    args = ["--force", "-p", "num_epochs=3", "-p", "n_bootstrap=100", "-p", "id_column=id"]
    return subprocess.run(
        [sys.executable, "-m", "flows.retraining", *args],
        env=run_env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_S,
    )


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_cycle_killed_at_any_stage_never_blocks_the_next(
    settings: Settings, tmp_path: Path
) -> None:
    write_demo(settings, rows=2_000, seed=3)
    prefect_home = tmp_path / "prefect"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API_")}
    env.update(
        PYTHONPATH=str(REPO_ROOT),
        RETRAIN_HOME=str(settings.home),
        PREFECT_HOME=str(prefect_home),
        PREFECT_LOGGING_LEVEL="INFO",  # the lock's waiting message is INFO
    )
    registry = ModelRegistry(settings.models_dir)
    try:
        for stage in STAGES:
            proc = _cycle(env, stage)
            assert proc.returncode == -signal.SIGKILL, (stage, proc.stderr[-3000:])
            assert WAITING not in proc.stdout + proc.stderr, f"the cycle of {stage} waited"
        dead = [e["version"] for e in registry.history() if e["event"] == "registered"]
        assert dead == ["v0001", "v0002", "v0003"]  # registering, comparing, promoting

        proc = _cycle(env, None)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert WAITING not in proc.stdout + proc.stderr, "the cycle after the kills waited"
        assert "Decision: PROMOTED" in proc.stdout
    finally:
        deadline = time.monotonic() + 30  # SIGTERM from the kernel, then a graceful stop
        while _servers_of(prefect_home) and time.monotonic() < deadline:
            time.sleep(0.5)
        orphans = _servers_of(prefect_home)
        for pid in orphans:
            os.kill(pid, signal.SIGKILL)
    assert orphans == [], "an ephemeral Prefect server outlived its SIGKILLed process"

    status = subprocess.run(
        [sys.executable, "-m", "model.cli", "status"],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert status.returncode == 0, status.stderr
    lines = registry.history_path.read_text().splitlines()
    events = [json.loads(line) for line in lines]  # every line parses
    prod = registry.production()
    assert prod is not None and prod.version == "v0004"
    assert load_model(settings.models_dir / "production").metadata is not None

    outcome = {e["version"]: e for e in events if e["event"] in ("failed", "promoted")}
    for version in dead:
        assert outcome[version]["event"] == "failed", version
        assert outcome[version]["error"].startswith("the cycle that trained it died")
    assert outcome["v0004"]["event"] == "promoted"
    assert not list(settings.runs_dir.iterdir()), "a dead cycle's scratch folder is left"
