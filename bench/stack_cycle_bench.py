"""Benchmark a forced demo cycle started from the command line, with and without a running
``make stack-up`` server.

In a fresh working root: demo data, ``deployments/stack-up.sh`` on a free loopback port, then
``python -m flows.retraining --force`` (the CLI finds the stack's server through
``$RETRAIN_HOME/stack/api_url``, ``RETRAIN_PREFECT_SERVER=auto``) 5 times, wall time of the
whole process each; then once with ``RETRAIN_PREFECT_SERVER=temporary`` (its own temporary
server, as without a stack) for comparison; the imports alone (``python -c "import
flows.retraining"``: Prefect, torch, SciPy) and ``python -c pass``, a median of 3 each, show
how much of the time is not the cycle; then ``stack-down.sh``. The first forced cycle (the one
that creates production) is run before timing.

Writes bench/results/stack_cycle.json. Target (issue 24): median <= 10 s on a quiet machine
(before: about 20 s, of which about 2 s is the work).
"""

from __future__ import annotations

import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "stack_cycle.json"
RUNS = 5
TARGET_S = 10.0
PY = sys.executable
BIN = Path(PY).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _timed(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return wall


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        port = _free_port()
        env = {
            **os.environ,
            "RETRAIN_HOME": str(home),
            "PREFECT_HOME": str(Path(tmp) / "prefect"),
            "RETRAIN_PREFECT_PORT": str(port),
            "DO_NOT_TRACK": "1",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT": str(BIN / "prefect"),
            "PYTHON_BIN": PY,
        }
        env.pop("PREFECT_API_URL", None)
        cycle = [PY, "-m", "flows.retraining", "--force", "--model", "demo"]
        try:
            _timed([str(BIN / "retrain"), "demo-data"], env)
            _timed(["bash", "deployments/stack-up.sh"], env)
            _timed(cycle, env)  # the first cycle: production v0001
            stack = [_timed(cycle, env) for _ in range(RUNS)]
            temporary = _timed(cycle, {**env, "RETRAIN_PREFECT_SERVER": "temporary"})
            imports = [_timed([PY, "-c", "import flows.retraining"], env) for _ in range(3)]
            bare = [_timed([PY, "-c", "pass"], env) for _ in range(3)]
        finally:
            subprocess.run(["bash", "deployments/stack-down.sh"], cwd=ROOT, env=env, timeout=300)
    median = statistics.median(stack)
    out = {
        "benchmark": "stack_cycle",
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "load_average_1min": round(os.getloadavg()[0], 2),
        "command": "python -m flows.retraining --force --model demo (10,000 demo rows)",
        "with_running_stack_server_s": [round(x, 2) for x in stack],
        "with_running_stack_server_median_s": round(median, 2),
        "with_temporary_server_s": round(temporary, 2),
        "of_which_imports_median_s": round(statistics.median(imports), 2),
        "python_c_pass_median_s": round(statistics.median(bare), 2),
        "target_s": TARGET_S,
        "meets_target": median <= TARGET_S,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
