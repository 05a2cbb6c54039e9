"""prepare -> drift -> train -> compare on Parquet data, one stage at a time, either within a memory
budget (``streamed``: every stage streams) or reading everything whole (``whole``); prints
one JSON line: what the stage gave and the process's peak RSS.

    python tests/scale_pipeline.py MODE WORKDIR BUDGET STAGE

Each stage runs in a process of its own, as the flow's tasks could (a worker per task), so
each process's peak RSS is that stage's. WORKDIR holds ``data/base`` and ``data/current``
(Parquet folders, written by the test). The whole mode's compare stage also compares the
streamed run's two models, so both gates can be checked on the same models. Run by
tests/test_scale_pipeline.py.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any


def peak_mib() -> float:
    """This process's peak RSS since it started (VmHWM: ru_maxrss would carry the peak of the
    process that forked it, pytest's, across the exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("/proc/self/status has no VmHWM line")


STAGES = ("prepare", "drift", "train", "compare")


def main(mode: str, work: Path, budget: int, stage: str) -> dict[str, Any]:
    """One stage; what the earlier ones left is read from ``work/state-MODE.json``."""
    os.environ["RETRAIN_HOME"] = str(work / f"home-{mode}")
    os.environ["RETRAIN_MEMORY_BUDGET"] = str(budget)
    state_file = work / f"state-{mode}.json"
    state = json.loads(state_file.read_text()) if state_file.exists() else {}
    streamed = mode == "streamed"
    limit = budget if streamed else None
    _import(stage)  # what the stage imports is not data: its RSS is measured apart
    out: dict[str, Any] = {"imports_mib": peak_mib()}
    if stage == "prepare":
        from model.data import prepare

        manifest = prepare([work / "data" / "base"], work / f"prepared-{mode}", memory_budget=limit)
        state["prepared"] = str(manifest.path)
        out.update(sha256=manifest.sha256, preparation=manifest.preparation)
    elif stage == "drift":
        from model.data import load_manifest, read_table
        from model.drift import DriftSettings, detect_drift
        from model.drift.stream import stream_drift

        manifest = load_manifest(state["prepared"])
        train_split, current = manifest.split_path("train"), work / "data" / "current"
        ds = DriftSettings(seed=3)
        names = {"reference_path": "train", "current_path": "current"}
        if streamed:
            report = stream_drift(
                train_split, current, manifest.spec, ds, memory_budget=budget, **names
            )
        else:
            reference, now = read_table(train_split), read_table(current)
            report = detect_drift(reference, now, manifest.spec, ds, **names)
        out["report"] = report.to_dict()
    elif stage == "train":
        from model.training import TrainParams, train_prepared

        state["models"] = {}
        for name, seed in (("baseline", 1), ("candidate", 2)):
            params = TrainParams(num_epochs=1, batch_size=4096, seed=seed, device="cpu")
            folder, result = train_prepared(
                state["prepared"], work / f"models-{mode}" / name, params, memory_budget=limit
            )
            state["models"][name] = str(folder)
            out[name] = {
                "val_auc": result.val_metrics["auc"],
                "data_reading": result.extra.get("data_reading"),
            }
    else:
        out["result"] = _compare(state["prepared"], state["models"], streamed)
        if not streamed:  # the streamed run's models too: both gates on the same models
            theirs = json.loads((work / "state-streamed.json").read_text())["models"]
            out["their_models"] = _compare(state["prepared"], theirs, False)
    state_file.write_text(json.dumps(state))
    return out


def _import(stage: str) -> None:
    import model.data
    import model.drift.stream

    if stage in ("train", "compare"):
        import model.comparator
        import model.cycle.evaluation
        import model.training  # noqa: F401


def _compare(prepared: str, models: dict[str, str], spilled: bool) -> dict[str, Any]:
    from model.comparator import ModelComparator
    from model.cycle.evaluation import comparison_inputs, spilled_comparison
    from model.data import load_manifest, load_split
    from model.registry import ModelRegistry
    from model.settings import get_settings
    from model.training.artifact import load_model

    settings = get_settings()
    registry = ModelRegistry(settings.models_dir)
    gate = ModelComparator(n_bootstrap=200, random_state=5)
    manifest = load_manifest(prepared)

    baseline, candidate = load_model(models["baseline"]), load_model(models["candidate"])
    if spilled:
        result = spilled_comparison(settings, registry, manifest, gate, baseline, candidate)
    else:
        test = load_split(manifest, "test")
        inputs = comparison_inputs(settings, registry, test, manifest)
        result = gate.compare(baseline, candidate, test, **inputs.kwargs())
    return result.to_dict()


if __name__ == "__main__":
    mode, work, budget, stage = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    result = main(mode, work, budget, stage)
    result["peak_mib"] = peak_mib()
    print(json.dumps(result, default=str))
