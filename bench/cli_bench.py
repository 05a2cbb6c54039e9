"""Benchmark the everyday commands of the ``retrain`` CLI: wall time of a whole process.

Each command runs 5 times as a new process (``.venv/bin/retrain ...``, the way a user types
it) on a working root with one registered version; the median is reported beside the
median of ``python -c pass`` measured in the same run, so a loaded machine shows as a slow
baseline rather than a slow CLI; and the largest peak memory (max RSS) of any of them.

Writes bench/results/cli.json. Target (issue 24): ``retrain --help`` and ``retrain status``
at most 0.5 s wall on a quiet machine (before: 5.8-6.4 s, 460 MB).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # fakes.make_model: a registry-valid model folder
RESULTS = ROOT / "bench" / "results" / "cli.json"
RUNS = 5
TARGET_S = 0.5
RETRAIN = str(Path(sys.executable).parent / "retrain")
COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "retrain --help": [RETRAIN, "--help"],
    "retrain status": [RETRAIN, "status"],
    "retrain history -n 1": [RETRAIN, "history", "-n", "1"],
    "retrain versions": [RETRAIN, "versions"],
    "retrain gate status": [RETRAIN, "gate", "status"],
}


def _home(tmp: Path) -> Path:
    from fakes import make_model

    from model.registry import ModelRegistry

    home = tmp / "home"
    registry = ModelRegistry(home / "models" / "demo")
    version = registry.register(make_model(tmp / "m"), reason="benchmark")
    registry.promote(version, "benchmark", force=True)
    return home


def _time(cmd: list[str], env: dict[str, str]) -> float:
    """Wall seconds of one process, start to exit."""
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        home = _home(Path(tmp))
        env = {**os.environ, "RETRAIN_HOME": str(home), "RETRAIN_MODEL_NAME": "demo"}
        for cmd in COMMANDS.values():  # warm the file cache and the bytecode once
            _time(cmd, env)
        samples: dict[str, list[float]] = {name: [] for name in COMMANDS}
        for _ in range(RUNS):  # interleaved: a burst of load hits every command alike
            for name, cmd in COMMANDS.items():
                samples[name].append(_time(cmd, env))
    results: dict[str, Any] = {}
    for name, values in samples.items():
        results[name] = {
            "median_s": round(statistics.median(values), 3),
            "min_s": round(min(values), 3),
            "max_s": round(max(values), 3),
        }
        print(f"{name:<24} median {results[name]['median_s']:.3f} s")
    baseline = results["python -c pass"]["median_s"]
    out = {
        "benchmark": "cli",
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "load_average_1min": round(os.getloadavg()[0], 2),
        "runs": RUNS,
        "commands": results,
        "baseline_python_c_pass_s": baseline,
        "target_s": TARGET_S,
        "meets_target": all(
            results[name]["median_s"] <= TARGET_S for name in ("retrain --help", "retrain status")
        ),
        "peak_rss_mb_all_runs": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
