"""The scoring service as a real process (``retrain serve`` on a free port): it follows a
promotion made with the registry while traffic flows, with no failed request; SIGTERM
flushes every served row; SIGKILL in the middle of a flush leaves only complete Parquet files.
Every process started here is stopped by its PID."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from serving_models import build_registry
from stack_tools import free_port

from model.serving.log import log_files, read_log

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def post(port: int, rows: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/predict",
        data=json.dumps({"rows": rows}).encode(),
        headers={"content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


class Service:
    def __init__(self, home: Path, *extra: str, env: dict[str, str] | None = None) -> None:
        self.home = home
        self.port = free_port()
        self.log_path = home / "serve.log"
        environment = {
            **os.environ,
            "RETRAIN_HOME": str(home),
            "PYTHONPATH": str(REPO),
            "PREFECT_API_URL": "",
            **(env or {}),
        }
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "model.cli",
                "serve",
                "--port",
                str(self.port),
                "--poll-seconds",
                "0.2",
                "--no-events",
                *extra,
            ],
            cwd=REPO,
            env=environment,
            stdout=self.log_path.open("wb"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2):
                    return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop(signal.SIGKILL)
                    output = self.log_path.read_text()
                    raise AssertionError(f"service did not start: {output}") from None
                time.sleep(0.2)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
            raise AssertionError("service did not stop on SIGTERM") from None


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    build_registry(tmp_path)
    yield tmp_path


def row(i: int) -> dict[str, Any]:
    return {"id": i, "x": float(i % 7), "c": "ab"[i % 2], "city": "pqrs"[i % 4]}


def test_follows_a_promotion_under_traffic_and_sigterm_flushes_everything(home: Path) -> None:
    from model.registry import ModelRegistry

    service = Service(home, "--flush-seconds", "30", "--flush-rows", "100000")
    said = service.log_path.read_text()  # start-up: address, model and version (issue 24)
    assert "retrain serve: model demo, production v0001" in said, said
    assert f"http://127.0.0.1:{service.port} (POST /predict" in said, said
    answers: list[tuple[int, dict[str, Any]]] = []
    stop = threading.Event()

    def traffic() -> None:
        i = 0
        while not stop.is_set():
            answers.append(post(service.port, [row(i), row(i + 1)]))
            i += 2

    sender = threading.Thread(target=traffic)
    try:
        sender.start()
        time.sleep(1.0)
        ModelRegistry(home / "models" / "demo").promote("v0002", "e2e", force=True)
        deadline = time.monotonic() + 30
        while not any(
            a[1].get("predictions", [{}])[0].get("version") == "v0002" for a in answers[-5:]
        ):
            assert time.monotonic() < deadline, "the service never switched to v0002"
            time.sleep(0.1)
        time.sleep(0.5)
        stop.set()
        sender.join(30)
        # uvicorn shuts down gracefully, then re-raises the signal: exit status -SIGTERM
        assert service.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
    finally:
        stop.set()
        service.stop(signal.SIGKILL)
    assert all(status == 200 for status, _ in answers), [a for a in answers if a[0] != 200][:3]
    versions = [p["version"] for _, a in answers for p in a["predictions"]]
    switch = versions.index("v0002")
    assert set(versions[:switch]) == {"v0001"} and set(versions[switch:]) == {"v0002"}
    # SIGTERM flushed every served row (the buffer was never flushed before: 30 s, 100k rows)
    table = read_log(home / "predictions" / "demo")
    assert table is not None and table.num_rows == len(versions)
    served = dict(
        zip((p["id"] for _, a in answers for p in a["predictions"]), versions, strict=True)
    )
    logged = dict(
        zip(
            table.column("id").to_pylist(),
            table.column("__served_version__").to_pylist(),
            strict=True,
        )
    )
    assert logged == served
    assert "prediction log closed" in service.log_path.read_text()


def test_sigkill_mid_flush_leaves_only_complete_parquet_files(home: Path) -> None:
    service = Service(
        home,
        "--flush-seconds",
        "0.2",
        env={"RETRAIN_FAULT_FLUSH_PAUSE": "3"},  # a flush waits 3 s before its rename
    )
    folder = home / "predictions" / "demo"
    try:
        for i in range(0, 40, 4):
            assert post(service.port, [row(i + k) for k in range(4)])[0] == 200
        deadline = time.monotonic() + 30
        while not list(folder.glob("date=*/.part-*.tmp")):
            assert time.monotonic() < deadline, "no flush started"
            time.sleep(0.05)
        os.kill(service.proc.pid, signal.SIGKILL)  # mid-flush: written, not yet renamed
        service.proc.wait(10)
    finally:
        service.stop(signal.SIGKILL)
    leftovers = list(folder.glob("date=*/.part-*.tmp"))
    assert leftovers, "the kill did not land mid-flush"
    for path in folder.rglob("*.parquet"):  # every Parquet name is a complete file
        assert pq.read_table(path).num_rows > 0
    assert all(p.name.startswith("part-") for p in log_files(folder))
    table = read_log(folder)
    assert table is None or table.num_rows <= 40  # at most the buffer in flight was lost
