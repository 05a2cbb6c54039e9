"""Benchmark the scoring service (``retrain serve``) with a C load generator (``wrk``).

Outside ``make test``. Service and ``wrk`` share the machine (loopback only); every phase
is bounded in time. One ``wrk`` thread, keep-alive connections. Phases, each against a
fresh process:

1. a no-op FastAPI POST (the ceiling of this stack on this machine);
2. the naive reference: FastAPI + pydantic rows -> pandas -> torch, single-row and 1,000-row;
3. the service, log on: single-row for ``--seconds`` (60 s at full size) at ``--connections``
   (8: saturation, where wrk and the service share the 2 cores), then single-row for
   ``--seconds`` at ``--low-connections`` (4: the latency target, >= 1,000 requests/s with
   p99 <= 25 ms, below saturation), then 1,000-row JSON and 1,000-row Arrow IPC requests;
4. the service under single-row load with a promotion every 5 s (10 swaps): failed
   requests, rows whose production version was neither the production of that moment nor
   the one before, p99 over the phase against the steady p99, and RSS before and after.

Writes bench/results/serve.json with the load average around each phase (the machine is
shared). ``--quick`` runs every phase for a few seconds (a smoke test, not for quoting).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from pydantic import BaseModel

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "serve.json"
FEATURES = 10
NAIVE = "naive"
NOOP = "noop"


# --------------------------------------------------------------------------- reference apps


class NaiveRequest(BaseModel):
    """The naive reference's request body: pydantic-validated rows."""

    rows: list[dict[str, float]]


def reference_app(kind: str, model_dir: str) -> Any:
    """The no-op POST or the naive /predict (pydantic rows -> pandas -> torch)."""
    from fastapi import FastAPI

    app = FastAPI()
    if kind == NOOP:

        @app.post("/predict")
        async def noop() -> dict[str, str]:
            return {"ok": "yes"}

        return app
    import pandas as pd

    from model.artifact import load_model

    model = load_model(model_dir)

    @app.post("/predict")
    def predict(request: NaiveRequest) -> dict[str, Any]:
        frame = pd.DataFrame(request.rows)
        scores = model.predict_proba(frame)
        threshold = model.decision_threshold
        return {"predictions": [{"score": float(s), "label": int(s >= threshold)} for s in scores]}

    return app


def serve_reference(kind: str, port: int, model_dir: str) -> None:
    import uvicorn

    uvicorn.run(
        reference_app(kind, model_dir),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
    )


# --------------------------------------------------------------------------- set-up


def build_home(home: Path, versions: int = 3) -> None:
    """A registry of ``versions`` models over the demo's 10 features (64-32 MLP)."""
    import torch

    from model.artifact import save_model
    from model.data import infer_spec
    from model.data.demo import make_customers
    from model.registry import ModelRegistry
    from model.serving.loading import verify_loads
    from model.training.network import Preprocessor, build_model

    frame = make_customers(5_000, seed=1)
    spec = infer_spec(frame, id_column="id")
    pre = Preprocessor.fit(frame, spec)
    registry = ModelRegistry(home / "models", verify=verify_loads)
    for seed in range(1, versions + 1):
        torch.manual_seed(seed)
        folder = home / "runs" / f"m{seed}"
        save_model(build_model(spec, pre, [64, 32], 0.0, "relu", 0.5), folder)
        registry.register(folder)
    registry.promote("v0001", "bench", force=True)


def bodies(work: Path) -> dict[str, Path]:
    """Request bodies: one row, 1,000 rows (JSON), 1,000 rows (Arrow IPC stream)."""
    import pyarrow as pa
    import pyarrow.ipc as ipc

    from model.data.demo import make_customers

    frame = make_customers(1_000, seed=3, batch=5).drop(columns=["target"])
    rows = json.loads(frame.to_json(orient="records"))
    out = {
        "one": work / "one.json",
        "thousand": work / "thousand.json",
        "arrow": work / "thousand.arrows",
    }
    out["one"].write_text(json.dumps({"rows": rows[:1]}))
    out["thousand"].write_text(json.dumps({"rows": rows}))
    table = pa.Table.from_pandas(frame, preserve_index=False)
    with ipc.new_stream(str(out["arrow"]), table.schema) as writer:
        writer.write_table(table)
    return out


def lua(work: Path, body: Path, content_type: str) -> Path:
    script = work / f"{body.stem}-{body.suffix[1:]}.lua"
    script.write_text(
        f'local f = io.open("{body}", "rb")\n'
        'wrk.body = f:read("*a")\nf:close()\n'
        'wrk.method = "POST"\n'
        f'wrk.headers["Content-Type"] = "{content_type}"\n'
    )
    return script


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(command: list[str], env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(command, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                stop(proc)
                raise RuntimeError(f"{command} did not start; see {log}") from None
            time.sleep(0.2)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    return float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")


def wrk(port: int, script: Path, seconds: int, connections: int) -> dict[str, Any]:
    """One wrk run: requests/s, p50/p99 (ms), failed requests (non-2xx + socket errors)."""
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "5s",
        "--latency",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}/predict",
    ]
    load_before = os.getloadavg()
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60).stdout
    result: dict[str, Any] = {
        "seconds": seconds,
        "connections": connections,
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
    }
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    result["requests_per_s"] = float(m.group(1)) if m else float("nan")
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", out, re.M)
        result[f"p{pct}_ms"] = _ms(m.group(1)) if m else float("nan")
    m = re.search(r"(\d+) requests in", out)
    result["requests"] = int(m.group(1)) if m else 0
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    result["failed"] = (int(non2xx.group(1)) if non2xx else 0) + (
        sum(int(x) for x in sock.groups()) if sock else 0
    )
    return result


# --------------------------------------------------------------------------- phases


def swap_check(home: Path, switches: list[tuple[float, str]]) -> dict[str, Any]:
    """Rows served as production whose version was neither production at request time nor
    the one before it (``switches``: (time, version) in order, the initial one first)."""
    import numpy as np

    from model.serving.log import read_log

    table = read_log(home / "predictions" / "demo")
    if table is None:
        return {"rows": 0, "bad_rows": None}
    times = table.column("__request_time__").cast("int64").to_numpy() / 1000.0
    versions = np.asarray(table.column("__served_version__").to_pylist(), dtype=object)
    roles = np.asarray(table.column("__role__").to_pylist(), dtype=object)
    starts = np.array([t for t, _ in switches])
    names = [v for _, v in switches]
    idx = np.searchsorted(starts, times, side="right") - 1
    bad = 0
    for i in np.flatnonzero(roles == "production"):
        k = max(int(idx[i]), 0)
        allowed = {names[k], names[k - 1] if k > 0 else names[0]}
        bad += versions[i] not in allowed
    return {
        "rows": len(times),
        "production_rows": int((roles == "production").sum()),
        "bad_rows": int(bad),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    home = work / "home"
    build_home(home)
    files = bodies(work)
    scripts = {
        "one": lua(work, files["one"], "application/json"),
        "thousand": lua(work, files["thousand"], "application/json"),
        "arrow": lua(work, files["arrow"], "application/vnd.apache.arrow.stream"),
    }
    extra = str(ROOT / ".extra")
    path = os.pathsep.join([str(ROOT), extra] if Path(extra).is_dir() else [str(ROOT)])
    env = {**os.environ, "RETRAIN_HOME": str(home), "PYTHONPATH": path, "PREFECT_API_URL": ""}
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import importlib.util as u;"
            "print(bool(u.find_spec('uvloop')), bool(u.find_spec('httptools')))",
        ],
        env=env,
        capture_output=True,
        text=True,
    ).stdout.split()
    short, full = args.short, args.seconds
    log = work / "servers.log"
    out: dict[str, Any] = {"uvloop": probe[0] == "True", "httptools": probe[1] == "True"}

    model_dir = str(home / "models" / "versions" / "v0001")
    for kind in (NOOP, NAIVE):
        port = free_port()
        proc = start(
            [
                sys.executable,
                __file__,
                "--serve-reference",
                kind,
                "--port",
                str(port),
                "--model-dir",
                model_dir,
            ],
            env,
            port,
            log,
        )
        try:
            wrk(port, scripts["one"], 2, 8)  # warm-up
            out[f"{kind}_single_row"] = wrk(port, scripts["one"], short, args.connections)
            if kind == NAIVE:
                res = wrk(port, scripts["thousand"], short, 4)
                res["rows_per_s"] = res["requests_per_s"] * 1000
                out["naive_1000_rows_json"] = res
        finally:
            stop(proc)

    port = free_port()
    # the bare serving path (no watch shadow after the promotions below: one model per row)
    service = [sys.executable, "-m", "model.cli", "serve", "--port", str(port), "--no-events"]
    service += ["--shadow", "off"]
    proc = start(service, env, port, log)
    try:
        wrk(port, scripts["one"], 2, 8)
        out["service_single_row"] = wrk(port, scripts["one"], full, args.connections)
        out["service_single_row_low_connections"] = wrk(
            port, scripts["one"], full, args.low_connections
        )
        for name in ("thousand", "arrow"):
            res = wrk(port, scripts[name], short, 4)
            res["rows_per_s"] = res["requests_per_s"] * 1000
            out[f"service_1000_rows_{'json' if name == 'thousand' else 'arrow'}"] = res
    finally:
        stop(proc)

    # promotions every 5 s under single-row load, 10 swaps, RSS before/after
    from model.registry import ModelRegistry

    shutil.rmtree(home / "predictions", ignore_errors=True)
    proc = start(service, env, port, log)
    registry = ModelRegistry(home / "models")
    switches: list[tuple[float, str]] = [(0.0, "v0001")]
    try:
        wrk(port, scripts["one"], 3, 8)
        rss_before = rss_mb(proc.pid)
        swaps = args.swaps

        def promote() -> None:
            for k in range(swaps):
                time.sleep(args.swap_every)
                version = ("v0002", "v0003", "v0001")[k % 3]
                registry.promote(version, "bench swap", force=True)
                switches.append((time.time(), version))

        promoter = threading.Thread(target=promote)
        promoter.start()
        load = wrk(port, scripts["one"], int(args.swap_every * swaps + 3), args.connections)
        promoter.join()
        time.sleep(3)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/version") as response:
            version_doc = json.loads(response.read())
        rss_after = rss_mb(proc.pid)
    finally:
        stop(proc)  # SIGTERM: the log is flushed
    load["swaps"] = len(switches) - 1
    load["rss_mb_before"] = round(rss_before, 1)
    load["rss_mb_after"] = round(rss_after, 1)
    load["rss_growth"] = round(rss_after / rss_before - 1, 4)
    load["models_loaded"] = [
        m["version"]
        for m in (version_doc["production"], version_doc["challenger"], version_doc["shadow"])
        if m
    ]
    load.update(swap_check(home, switches))
    out["service_with_swaps"] = load
    shutil.rmtree(work, ignore_errors=True)
    return out


def summarise(res: dict[str, Any]) -> dict[str, Any]:
    single = res["service_single_row"]
    low = res["service_single_row_low_connections"]
    noop = res["noop_single_row"]["requests_per_s"]
    naive = res["naive_single_row"]
    swaps = res["service_with_swaps"]
    return {
        "single_row_rps": single["requests_per_s"],
        "single_row_p99_ms": single["p99_ms"],
        "single_row_failed": single["failed"],
        "single_row_target_met": single["requests_per_s"] >= 1_000 and single["p99_ms"] <= 25,
        "low_connections": low["connections"],
        "low_connections_rps": low["requests_per_s"],
        "low_connections_p99_ms": low["p99_ms"],
        "low_connections_failed": low["failed"],
        "low_connections_target_met": low["requests_per_s"] >= 1_000 and low["p99_ms"] <= 25,
        "reference_failed": res["noop_single_row"]["failed"]
        + naive["failed"]
        + res["naive_1000_rows_json"]["failed"],
        "noop_ceiling_rps": noop,
        "ratio_to_noop_ceiling": round(single["requests_per_s"] / noop, 3),
        "ratio_to_naive_single_row": round(single["requests_per_s"] / naive["requests_per_s"], 2),
        "json_1000_rows_per_s": res["service_1000_rows_json"]["rows_per_s"],
        "arrow_1000_rows_per_s": res["service_1000_rows_arrow"]["rows_per_s"],
        "ratio_to_naive_1000_rows": round(
            res["service_1000_rows_json"]["rows_per_s"] / res["naive_1000_rows_json"]["rows_per_s"],
            2,
        ),
        "swap_failed_requests": swaps["failed"],
        "swap_bad_version_rows": swaps["bad_rows"],
        "swap_p99_over_steady_p99": round(swaps["p99_ms"] / single["p99_ms"], 2),
        "rss_growth_over_swaps": swaps["rss_growth"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds per phase")
    parser.add_argument("--seconds", type=int, default=60, help="sustained single-row phase")
    parser.add_argument("--short", type=int, default=15, help="the other phases")
    parser.add_argument("--swaps", type=int, default=10)
    parser.add_argument(
        "--connections", type=int, default=8, help="wrk connections, single-row phases"
    )
    parser.add_argument(
        "--low-connections",
        type=int,
        default=4,
        help="wrk connections, the second single-row phase (the latency target)",
    )
    parser.add_argument("--swap-every", type=float, default=5.0)
    parser.add_argument("--serve-reference", choices=(NOOP, NAIVE), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.serve_reference:
        serve_reference(args.serve_reference, args.port, args.model_dir)
        return 0
    if shutil.which("wrk") is None:
        print(
            "serve_bench: the load generator `wrk` is not installed; install it with "
            "`apt-get install -y wrk` (Debian/Ubuntu) and run again",
            file=sys.stderr,
        )
        return 2
    if args.quick:
        args.seconds, args.short, args.swaps, args.swap_every = 4, 3, 3, 2.0
    results = run(args)
    doc = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "note": "service and wrk share the machine with other agents' jobs; see loadavg",
        },
        "quick": bool(args.quick),
        "summary": summarise(results),
        "phases": results,
    }
    text = json.dumps(doc, indent=2)
    print(text)
    if not args.quick:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
