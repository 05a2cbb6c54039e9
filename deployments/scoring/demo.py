"""``make serve-demo``: the loop closed on demo data — score, log, label, retrain.

1. a production model (the demo's first cycle when there is none yet);
2. ``retrain serve`` starts on a free local port;
3. demo customers (a new, drifted draw) are sent through ``POST /predict``, without labels;
4. the service stops (SIGTERM: the prediction log is flushed);
5. their labels arrive late: ``retrain labels add`` joins them to the log by id and writes
   ``incoming/date=<today>/labels-<hash>.parquet``;
6. the drift monitor compares the prediction log (unlabelled) with production's training data;
7. a forced cycle trains on the data including that batch (its manifest lists it).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from typing import Any

from model.data.demo import make_customers, write_demo
from model.registry import ModelRegistry
from model.serving.labels import add_labels, production_contract
from model.serving.log import log_folder
from model.settings import Settings, get_settings

FAST: dict[str, Any] = {"min_hours_between_trainings": 0.0, "id_column": "id"}
TRAFFIC_SEED = 11
"""The demo traffic's seed: its ids never collide with the base data's (seed 42)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_service(settings: Settings, *extra: str) -> tuple[subprocess.Popen[bytes], int]:
    """``retrain serve`` on a free port; returns (process, port) once /health answers."""
    port = _free_port()
    env = {**os.environ, "RETRAIN_HOME": str(settings.root)}
    command = [sys.executable, "-m", "model.cli", "--model", settings.model_name, "serve"]
    command += ["--port", str(port), "--no-events"]
    proc = subprocess.Popen([*command, *extra], env=env)
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return proc, port
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                stop_service(proc, signal.SIGKILL)
                raise RuntimeError("the scoring service did not start") from None
            time.sleep(0.2)


def stop_service(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Stop the service by its PID (SIGTERM flushes the log); SIGKILL after 30 s."""
    if proc.poll() is None:
        os.kill(proc.pid, sig)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)


def send_traffic(port: int, rows: list[dict[str, Any]], chunk: int) -> dict[str, int]:
    """POST the rows in requests of ``chunk``; the versions that answered, counted."""
    versions: dict[str, int] = {}
    for start in range(0, len(rows), chunk):
        body = json.dumps({"rows": rows[start : start + chunk]}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/predict",
            data=body,
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            for p in json.loads(response.read())["predictions"]:
                versions[p["version"]] = versions.get(p["version"], 0) + 1
    return versions


def score_and_label(
    settings: Settings,
    *,
    rows: int = 2_000,
    chunk: int = 100,
    drift: float = 0.4,
    cycle: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Steps 2-7 (production must exist); returns what happened, for printing or a test."""
    from flows.retraining import retraining
    from model.cycle.evaluation import manifest_batches
    from model.cycle.monitor import monitor_drift

    frame = make_customers(rows, TRAFFIC_SEED, drift, batch=1)
    features = frame.drop(columns=["target"])
    traffic = json.loads(features.to_json(orient="records"))
    proc, port = start_service(settings, "--flush-seconds", "1")
    try:
        versions = send_traffic(port, traffic, chunk)
    finally:
        stop_service(proc)
    labels_path = settings.root / "labels" / f"demo-labels-{int(time.time())}.csv"
    labels_path.parent.mkdir(parents=True, exist_ok=True)
    frame[["id", "target"]].to_csv(labels_path, index=False)
    labelled = add_labels(
        labels_path,
        log_folder=log_folder(settings.predictions_dir, settings.model_name),
        incoming_dir=settings.incoming_dir,
        id_column="id",
        label_column="target",
        contract=production_contract(settings.models_dir, settings.root),
    )
    drift_summary = monitor_drift(settings, prediction_log=settings.model_name)
    result = retraining(force_retrain=True, **{**FAST, **(cycle or {})})
    registry = ModelRegistry(settings.models_dir)
    candidate = result.candidate_version
    batches: list[str] = []
    if candidate:
        manifest_ref = registry.metadata(candidate).get("data_manifest") or {}
        batches = manifest_batches(settings.resolve(manifest_ref["path"]))
    return {
        "served": versions,
        "labels": labelled.to_dict(),
        "drift": {k: drift_summary.get(k) for k in ("status", "dataset_drift", "current")},
        "cycle": result,
        "candidate": candidate,
        "candidate_batches": batches,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000, help="rows of demo traffic")
    parser.add_argument("--chunk", type=int, default=100, help="rows per request")
    parser.add_argument("--drift", type=float, default=0.4, help="drift of the traffic (0-1)")
    args = parser.parse_args(argv)
    from flows.ephemeral import start_tied_ephemeral_server
    from flows.retraining import retraining
    from model.cycle.models_config import select_model
    from model.settings import model_scope

    # the default model's folders, for the data written here and the flows alike
    with model_scope(select_model(None, get_settings(), "RETRAIN_MODEL_NAME")):
        settings = get_settings()
        return _demo(settings, args, retraining, start_tied_ephemeral_server)


def _demo(settings: Settings, args: argparse.Namespace, retraining: Any, start: Any) -> int:
    start()
    if ModelRegistry(settings.models_dir).production() is None:
        print("=== [1/7] no production model: demo data and a first cycle", flush=True)
        write_demo(settings, rows=10_000, seed=42, drift=0.0, batches=0)
        print(retraining(**FAST).summary())
    print("=== [2-7/7] serve demo traffic, log it, add its labels, retrain", flush=True)
    out = score_and_label(settings, rows=args.rows, chunk=args.chunk, drift=args.drift)
    print(f"served: {out['served']}")
    print(f"labels: {json.dumps(out['labels'])}")
    print(f"drift of the prediction log: {json.dumps(out['drift'], default=str)[:300]}")
    print(out["cycle"].summary())
    print(f"{out['candidate']} trained on batches {out['candidate_batches']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
