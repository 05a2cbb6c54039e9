"""Calibration of the promotion gate by simulation: the rates docs/gate.md quotes.

Runs the scenarios of ``tests/gate/test_gate_guarantees.py`` (the tests assert the bounds;
this records the measured counts) on calibrated binormal scores
(:func:`model.gate.simulation.binormal_scores`), for the threshold rule and, where it shows
the difference, the lab's rule. Writes ``bench/results/gate_calibration.json``.

    .venv/bin/python bench/gate_calibration.py [--runs 200] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from model.gate.comparator import ModelComparator
from model.gate.simulation import binormal_scores, posterior

RESULTS = Path(__file__).resolve().parent / "results" / "gate_calibration.json"

SCENARIOS: list[dict[str, Any]] = [
    # name, gate options, simulation
    {"name": "equal, T=0, 1000/1000", "gate": {"improvement_threshold": 0.0},
     "sim": {"n_pos": 1000, "n_neg": 1000, "auc_b": 0.8, "auc_c": 0.8, "rho": 0.5}},
    {"name": "equal, T=0, 100/1900", "gate": {"improvement_threshold": 0.0},
     "sim": {"n_pos": 100, "n_neg": 1900, "auc_b": 0.8, "auc_c": 0.8, "rho": 0.5}},
    {"name": "equal, T=0, 10000/10000", "gate": {"improvement_threshold": 0.0},
     "sim": {"n_pos": 10_000, "n_neg": 10_000, "auc_b": 0.8, "auc_c": 0.8, "rho": 0.5}},
    {"name": "equal, T=0, 1000/19000", "gate": {"improvement_threshold": 0.0},
     "sim": {"n_pos": 1000, "n_neg": 19_000, "auc_b": 0.8, "auc_c": 0.8, "rho": 0.5}},
    {"name": "gain = T = 0.02, n = 2,000", "gate": {"improvement_threshold": 0.02},
     "sim": {"n_pos": 1000, "n_neg": 1000, "auc_b": 0.80, "auc_c": 0.82, "rho": 0.8}},
    {"name": "gain = T = 0.02, n = 20,000", "gate": {"improvement_threshold": 0.02},
     "sim": {"n_pos": 10_000, "n_neg": 10_000, "auc_b": 0.80, "auc_c": 0.82, "rho": 0.8}},
    {"name": "gain = T = 0.02, n = 20,000, lab rule",
     "gate": {"improvement_threshold": 0.02, "rule": "lab"},
     "sim": {"n_pos": 10_000, "n_neg": 10_000, "auc_b": 0.80, "auc_c": 0.82, "rho": 0.8}},
    {"name": "0.80 -> 0.83, T = 0.02, n = 20,000 (power)", "gate": {"improvement_threshold": 0.02},
     "sim": {"n_pos": 10_000, "n_neg": 10_000, "auc_b": 0.80, "auc_c": 0.83, "rho": 0.8}},
    {"name": "0.80 -> 0.83, T = 0.005 (the default), n = 2,000 (power)", "gate": {},
     "sim": {"n_pos": 1000, "n_neg": 1000, "auc_b": 0.80, "auc_c": 0.83, "rho": 0.8}},
]  # fmt: skip


def gate(**kw: Any) -> ModelComparator:
    return ModelComparator(n_bootstrap=20, n_jobs=1, **kw)


def run_scenario(s: dict[str, Any], runs: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    g = gate(**s["gate"])
    counts = {"PROMOTE": 0, "REJECT": 0, "INCONCLUSIVE": 0}
    start = time.perf_counter()
    for _ in range(runs):
        y, sb, sc = binormal_scores(rng, **s["sim"])
        counts[g.compare_scores(y, sb, sc).decision] += 1
    row = {**s, "runs": runs, "counts": counts, "seconds": round(time.perf_counter() - start, 1)}
    print(json.dumps(row), flush=True)
    return row


def family(runs: int, control: bool, cycles: int = 12) -> dict[str, Any]:
    """Sequences of ``cycles`` comparisons of fresh equal candidates on one holdout."""
    rng = np.random.default_rng(12)
    n, rho, auc = 1000, 0.5, 0.8
    y = np.r_[np.ones(n, np.int8), np.zeros(n, np.int8)]
    mu = np.sqrt(2) * stats.norm.ppf(auc)
    gates = {
        k: gate(improvement_threshold=0.0, holdout_uses=k if control else 1)
        for k in range(1, cycles + 1)
    }
    hits = 0
    for _ in range(runs):
        base = rng.normal(size=y.size)
        sb = posterior(base + mu * y, auc)
        for k in range(1, cycles + 1):
            latent = rho * base + np.sqrt(1 - rho * rho) * rng.normal(size=y.size) + mu * y
            if gates[k].compare_scores(y, sb, posterior(latent, auc)).decision == "PROMOTE":
                hits += 1
                break
    row = {
        "name": f"{cycles} cycles of equal candidates, T=0, 1000/1000, "
        + ("holdout_uses = 1..12" if control else "every comparison at alpha"),
        "runs": runs,
        "sequences_with_a_promotion": hits,
    }
    print(json.dumps(row), flush=True)
    return row


EXAMPLES: list[dict[str, Any]] = [
    {"name": "census-like: tiny gain on a huge holdout",
     "sim": {"n_pos": 150_000, "n_neg": 150_000, "auc_b": 0.850, "auc_c": 0.852, "rho": 0.97}},
    {"name": "NOAA-like recovery +0.02 on 1,500 recent rows",
     "sim": {"n_pos": 500, "n_neg": 1000, "auc_b": 0.775, "auc_c": 0.797, "rho": 0.6}},
    {"name": "NOAA-like recovery +0.04 on 1,500 recent rows",
     "sim": {"n_pos": 500, "n_neg": 1000, "auc_b": 0.775, "auc_c": 0.815, "rho": 0.6}},
    {"name": "NOAA-like recovery +0.06 on 1,500 recent rows",
     "sim": {"n_pos": 500, "n_neg": 1000, "auc_b": 0.775, "auc_c": 0.835, "rho": 0.6}},
]  # fmt: skip


def examples(runs: int = 100) -> list[dict[str, Any]]:
    """Decisions over ``runs`` repetitions of each example: the defaults (T = 0.005, first
    comparison) against the lab's rule at the same T."""
    rows = []
    ours, lab = gate(), gate(rule="lab")
    for i, ex in enumerate(EXAMPLES):
        rng = np.random.default_rng(100 + i)
        counts = {"threshold": dict.fromkeys(("PROMOTE", "REJECT", "INCONCLUSIVE"), 0)}
        counts["lab"] = dict(counts["threshold"])
        gains = []
        for _ in range(runs):
            y, sb, sc = binormal_scores(rng, **ex["sim"])
            result = ours.compare_scores(y, sb, sc)
            gains.append(result.improvement or 0.0)
            counts["threshold"][result.decision] += 1
            counts["lab"][lab.compare_scores(y, sb, sc).decision] += 1
        row = {**ex, "runs": runs, "mean_gain": round(float(np.mean(gains)), 4), **counts}
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--family-runs", type=int, default=500)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    started = os.getloadavg()
    rows = [run_scenario(s, args.runs, seed=i) for i, s in enumerate(SCENARIOS)]
    rows.append(family(args.family_runs, control=True))
    rows.append(family(args.family_runs, control=False))
    report = {
        "benchmark": "gate calibration by simulation (calibrated binormal scores)",
        "date": datetime.now(UTC).isoformat(),
        "load_average": {"start": started, "end": os.getloadavg()},
        "alpha": 0.05,
        "results": rows,
        "examples": examples(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
