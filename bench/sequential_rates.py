"""The sequential gate's error rates with more runs than the suite's 200 (docs/challenger.md).

Same simulation as ``tests/live/test_sequential_simulation.py`` (shadow mode, binormal scores,
30–50 % positives, within-class correlation 0.8, 30 daily chunks up to N_max = 5,000, T = 0),
``--runs`` runs per scenario; writes ``bench/results/sequential_rates.json``.
Run: ``PYTHONPATH=. python bench/sequential_rates.py --runs 1000``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "live")]

import test_sequential_simulation as sim  # noqa: E402

from model.live.sequential import SequentialPlan  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    args = parser.parse_args()
    sim.RUNS = args.runs
    auc, plan, a1 = sim.AUC, SequentialPlan, sim.ALPHA  # live labels: the full alpha
    watch = plan(kind="watch", threshold=0.01)
    scenarios = {
        "equal challenger, alpha 0.05": ("paired", auc, auc, plan(alpha=sim.ALPHA), "PROMOTE"),
        "challenger +0.05, alpha 0.05": ("paired", auc, auc + 0.05, plan(alpha=a1), "PROMOTE"),
        "challenger +0.02, alpha 0.05": ("paired", auc, auc + 0.02, plan(alpha=a1), "PROMOTE"),
        "watch: new -0.05": ("paired", auc, auc - 0.05, watch, "ROLLBACK"),
        "watch: equal": ("paired", auc, auc, watch, "ROLLBACK"),
        "watch: new -0.01 (at the margin)": ("paired", auc, auc - 0.01, watch, "ROLLBACK"),
        "routed equal, alpha 0.05": ("routed", auc, auc, plan(alpha=sim.ALPHA), "PROMOTE"),
        "routed +0.05, alpha 0.05": ("routed", auc, auc + 0.05, plan(alpha=a1), "PROMOTE"),
        "routed +0.02, alpha 0.05": ("routed", auc, auc + 0.02, plan(alpha=a1), "PROMOTE"),
    }
    results: dict[str, object] = {"runs": args.runs}
    for i, (name, (mode, auc_b, auc_c, the_plan, target)) in enumerate(scenarios.items()):
        seed = 26000 + i
        if mode == "paired":
            counts, naive = sim._paired_runs(seed, auc_b, auc_c, the_plan)
        else:
            counts, naive = sim._routed_runs(seed, auc_b, auc_c, the_plan), None
        k = counts.get(target, 0)
        rate = k / args.runs
        se = math.sqrt(rate * (1 - rate) / args.runs)
        results[name] = {
            "counts": counts,
            "rate": rate,
            "se": se,
            "naive_rate": (None if naive is None else naive / args.runs),
        }
        print(f"{name}: {target} {k}/{args.runs} = {rate:.3f} ± {1.96 * se:.3f}"
              + ("" if naive is None else f"; naive daily peeking {naive / args.runs:.3f}"),
              flush=True)  # fmt: skip
    out = ROOT / "bench" / "results" / "sequential_rates.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
