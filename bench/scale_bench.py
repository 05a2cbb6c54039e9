"""Every stage on data larger than memory: prepare, drift, one training epoch and the gate,
streamed within a memory budget at ``--rows`` rows, next to the in-memory path at
``--reference-rows`` rows in the same run.

The data: 12 numeric features (5 % missing) and 8 text ones (10 to 10,000 levels, 2 %
missing) and a 0/1 target, generated in chunks of 1M rows as a folder of Parquet files, and
a shifted copy (the first three numeric features moved 0.3 SD) for drift. Each stage runs in
a process of its own, which reports its wall time and peak RSS (``resource.getrusage``):

- prepare: ``model.data.prepare`` of the folder;
- drift: the prepared training split against the shifted copy;
- train: one epoch at batch 4,096 (``train_prepared``), twice (the gate's two models);
- gate: the spilled comparison of the two models on the prepared test split (15 % of the
  rows), or the in-memory comparison.

    python bench/scale_bench.py [--rows 100000000] [--reference-rows 10000000]
        [--current-rows N] [--budget 2GiB] [--stages prepare drift]

``--stages``: measure these stages only (each needs those before it: drift and train read the
prepared folder, the gate the trained models); the others keep their figures from the last
``scale.json``, and ``measured_at`` says when each stage's figures were taken.

Targets (issue 26): peak RSS at most 4 GiB per stage at ``--rows``; per-row cost within 1.5x
of the in-memory path's at ``--reference-rows``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

STAGES = ("prepare", "drift", "train", "gate")


def write_data(folder: Path, rows: int, shift: float) -> Path:
    """The data set (made once per size and shift)."""
    from prepare_stream_bench import write_data as write

    done = write(folder / f"shift-{shift}", rows)
    if shift and not (done / "_shifted").exists():
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        for f in sorted(done.glob("*.parquet")):
            table = pq.read_table(f)
            for j in range(3):
                name = f"num_{j}"
                moved = pc.add(table.column(name), shift * (j + 1))
                table = table.set_column(table.schema.get_field_index(name), name, moved)
            pq.write_table(table, f, row_group_size=1 << 17)
        (done / "_shifted").write_text("")
    return done


def run_stage(mode: str, stage: str, work: Path, data: Path, current: Path, budget: int) -> dict:
    os.environ["RETRAIN_HOME"] = str(work / "home")
    os.environ["RETRAIN_MEMORY_BUDGET"] = str(budget)
    limit = budget if mode == "streamed" else None
    state_file = work / "state.json"
    state = json.loads(state_file.read_text()) if state_file.exists() else {}
    t0 = time.perf_counter()
    out: dict[str, Any] = {"mode": mode, "stage": stage}
    if stage == "prepare":
        from model.data import prepare

        manifest = prepare([data], work / "prepared", memory_budget=limit)
        state["prepared"] = str(manifest.path)
        out.update(rows=manifest.rows, preparation=manifest.preparation)
    elif stage == "drift":
        from model.data import load_manifest, read_table
        from model.drift import DriftSettings, detect_drift
        from model.drift.stream import stream_drift

        manifest = load_manifest(state["prepared"])
        train = manifest.split_path("train")
        ds = DriftSettings(seed=3)
        if limit:
            report = stream_drift(train, current, manifest.spec, ds, memory_budget=budget)
        else:
            report = detect_drift(read_table(train), read_table(current), manifest.spec, ds)
        out["rows"] = manifest.splits["train"].rows + report.current["rows"]
        out["drifted"] = sorted(f for f, d in report.features.items() if d.drifted)
    elif stage == "train":
        from model.data import load_manifest
        from model.training import TrainParams, train_prepared

        state["models"] = {}
        out["val_auc"] = {}
        for name, seed in (("baseline", 1), ("candidate", 2)):
            params = TrainParams(num_epochs=1, batch_size=4096, seed=seed, device="cpu")
            folder, result = train_prepared(
                state["prepared"], work / "models" / name, params, memory_budget=limit
            )
            state["models"][name] = str(folder)
            out["val_auc"][name] = result.val_metrics["auc"]
        manifest = load_manifest(state["prepared"])
        out["rows"] = 2 * (manifest.splits["train"].rows + manifest.splits["val"].rows)
    else:
        out.update(_gate(state, limit))
    out["seconds"] = round(time.perf_counter() - t0, 2)
    out["ns_per_row"] = round(out["seconds"] / out["rows"] * 1e9, 1)
    out["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    state_file.write_text(json.dumps(state))
    return out


def _gate(state: dict, limit: int | None) -> dict[str, Any]:
    from model.comparator import ModelComparator
    from model.cycle.evaluation import comparison_inputs, spilled_comparison
    from model.data import load_manifest, load_split
    from model.registry import ModelRegistry
    from model.settings import get_settings
    from model.training.artifact import load_model

    settings = get_settings()
    registry = ModelRegistry(settings.models_dir)
    manifest = load_manifest(state["prepared"])
    gate = ModelComparator(n_bootstrap=200, random_state=5)
    baseline = load_model(state["models"]["baseline"])
    candidate = load_model(state["models"]["candidate"])
    if limit:
        result = spilled_comparison(settings, registry, manifest, gate, baseline, candidate)
    else:
        test = load_split(manifest, "test")
        inputs = comparison_inputs(settings, registry, test, manifest)
        result = gate.compare(baseline, candidate, test, **inputs.kwargs())
    return {"rows": manifest.splits["test"].rows, "decision": result.to_dict()["decision"]}


PARTIAL = ROOT / "bench" / "results" / "scale.partial.json"
"""Each stage's figures as soon as it ends (a run cut short keeps them)."""


def measure(
    mode: str, rows: int, current_rows: int, budget: int, scratch: Path, stages: tuple[str, ...]
) -> dict:
    data = write_data(scratch, rows, 0.0)
    current = write_data(scratch, current_rows, 0.3)
    work = Path(tempfile.mkdtemp(dir=scratch))
    try:
        done_stages = {}
        for stage in stages:
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    mode,
                    stage,
                    str(work),
                    str(data),
                    str(current),
                    str(budget),
                ],
                check=True,
                capture_output=True,
                text=True,
            )
            done_stages[stage] = json.loads(out.stdout.strip().splitlines()[-1])
            print(json.dumps(done_stages[stage]), file=sys.stderr, flush=True)
            done = json.loads(PARTIAL.read_text()) if PARTIAL.exists() else {}
            done.setdefault(mode, {})[stage] = {**done_stages[stage], "data_rows": rows}
            PARTIAL.write_text(json.dumps(done, indent=1) + "\n")
        return done_stages
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000_000)
    parser.add_argument("--reference-rows", type=int, default=10_000_000)
    parser.add_argument("--current-rows", type=int, default=None)
    parser.add_argument("--budget", default="2GiB")
    parser.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    parser.add_argument("--child", nargs=6)
    args = parser.parse_args()
    if args.child:
        mode, stage, work, data, current, budget = args.child
        result = run_stage(mode, stage, Path(work), Path(data), Path(current), int(budget))
        print(json.dumps(result))
        return
    from model.settings import parse_memory_size

    budget = parse_memory_size(args.budget)
    scratch = Path(os.environ.get("BENCH_SCRATCH") or tempfile.gettempdir()) / "scale-bench"
    scratch.mkdir(parents=True, exist_ok=True)
    stages = STAGES[: max(STAGES.index(s) for s in args.stages) + 1]  # and those before
    out = ROOT / "bench" / "results" / "scale.json"
    earlier = json.loads(out.read_text()) if set(stages) != set(STAGES) else {}
    now = datetime.now(UTC).isoformat()
    current_rows = args.current_rows or args.rows // 10
    reference = measure(
        "whole", args.reference_rows, args.reference_rows // 10, budget, scratch, stages
    )
    streamed = measure("streamed", args.rows, current_rows, budget, scratch, stages)
    measured_at = dict.fromkeys(stages, now)
    for s in STAGES[len(stages) :]:  # the stages not measured now keep their last figures
        measured_at[s] = earlier.get("measured_at", {}).get(s, earlier["machine"]["date"])
        reference[s] = earlier["reference_in_memory"][s]
        streamed[s] = earlier["streamed"][s]
    ratios = {s: round(streamed[s]["ns_per_row"] / reference[s]["ns_per_row"], 2) for s in STAGES}
    result = {
        "benchmark": "prepare, drift, one training epoch and the gate streamed in a memory "
        "budget vs the in-memory path, each stage in a process of its own",
        "machine": {
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_start": list(os.getloadavg()),
            "date": datetime.now(UTC).isoformat(),
        },
        "memory_budget_mib": budget >> 20,
        "rows": args.rows,
        "reference_rows": args.reference_rows,
        "streamed": streamed,
        "reference_in_memory": reference,
        "per_row_cost_ratio_streamed_vs_memory": ratios,
        "measured_at": measured_at,
        "targets": {
            "peak_rss_at_most_4_gib": all(streamed[s]["peak_rss_mib"] <= 4096 for s in STAGES),
            "per_row_cost_within_1_5x": all(r <= 1.5 for r in ratios.values()),
        },
    }
    out.write_text(json.dumps(result, indent=1) + "\n")
    PARTIAL.unlink(missing_ok=True)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
