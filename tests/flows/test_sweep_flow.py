"""A candidate sweep through the retraining flow: 4 configurations on a 2-worker Dask
LocalCluster, the winner chosen on validation AUC, and an instrumented reader proving that no
process read the test split before the promotion gate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fakes import REPO_ROOT
from prefect.artifacts import Artifact
from sklearn.metrics import roc_auc_score

from flows.retraining import retraining
from model.data import encode_target, load_split
from model.data.demo import write_demo
from model.registry import ModelRegistry
from model.settings import Settings
from model.training.artifact import load_model

AUDIT_DIR = Path(__file__).resolve().parents[1] / "read_audit"
FAST: dict[str, Any] = {
    "num_epochs": 3,
    "batch_size": 256,
    "patience": None,
    "n_bootstrap": 200,
    "id_column": "id",
    "min_hours_between_trainings": 0.0,
}
SWEEP = {
    "hidden_sizes": [[16], [32, 16]],
    "learning_rate": [0.03, 0.001],
    "search": "grid",
    "max_candidates": 4,
    "workers": 2,
}


@pytest.mark.slow
def test_sweep_of_four_on_two_workers_never_reads_the_test_split_before_the_gate(
    prefect_harness: None,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write_demo(settings, rows=3_000, seed=11)
    log = tmp_path / "reads.jsonl"
    monkeypatch.setenv("RETRAIN_READ_AUDIT", str(log))
    path = os.pathsep.join([str(AUDIT_DIR), str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])
    monkeypatch.setenv("PYTHONPATH", path)  # the Dask worker processes load the audit too
    sys.path.insert(0, str(AUDIT_DIR))
    try:
        import sitecustomize as audit  # the folder's, first on sys.path

        if getattr(audit, "ENV", None) != "RETRAIN_READ_AUDIT":  # another one was loaded
            del sys.modules["sitecustomize"]
            import sitecustomize as audit
        audit.install()
    finally:
        sys.path.remove(str(AUDIT_DIR))

    result = retraining(**FAST, sweep=SWEEP)
    assert result.status == "promoted", result.reasons

    # Only the winner was registered, and it carries the sweep's table.
    history = [
        json.loads(x) for x in (settings.models_dir / "history.jsonl").read_text().splitlines()
    ]
    assert [e["event"] for e in history] == ["registered", "compared", "promoted"]
    meta = ModelRegistry(settings.models_dir).metadata(result.candidate_version or "")
    rows = meta["sweep"]["candidates"]
    assert [r["candidate"] for r in rows] == [1, 2, 3, 4]
    configs = {(tuple(r["hidden_sizes"]), r["learning_rate"]) for r in rows}
    assert configs == {(h, lr) for h in ((16,), (32, 16)) for lr in (0.03, 0.001)}
    aucs = [r["val_auc"] for r in rows]
    assert len(set(aucs)) > 1  # the configurations really differ
    winner = next(r for r in rows if r["winner"])
    assert winner["val_auc"] == max(aucs) and meta["sweep"]["winner"] == winner["candidate"]
    assert meta["training_params"]["hidden_sizes"] == winner["hidden_sizes"]
    assert meta["training_params"]["learning_rate"] == winner["learning_rate"]

    # Independent reference: the registered winner re-scored on the validation split.
    prepared = settings.resolve(meta["data_manifest"]["path"])
    val = load_split(prepared, "val")
    model = load_model(ModelRegistry(settings.models_dir).version_path(result.candidate_version))
    y = encode_target(val["target"], "val")
    assert roc_auc_score(y, model.predict_proba(val)) == pytest.approx(winner["val_auc"], abs=1e-5)

    artifact = Artifact.get("sweep-leaderboard-demo")
    assert artifact is not None
    table = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
    assert len(table) == 4 and sum(bool(r["winner"]) for r in table) == 1
    for number in (1, 2, 3, 4):  # written by the Dask workers' task runs: the parent's API
        assert Artifact.get(f"training-curve-demo-candidate-{number}") is not None

    # The instrumented reader: training read train/val in two worker processes; the test
    # split was first read by the gate, after every candidate had finished reading.
    reads = [json.loads(x) for x in log.read_text().splitlines()]
    training = [r for r in reads if r["split"] in ("train", "val") and r["pid"] != os.getpid()]
    assert len({r["pid"] for r in training}) == 2, reads
    reading = [r for r in training if not r["sizing"]]
    assert sum(r["split"] == "train" for r in reading) == 4  # one read of the rows a candidate
    assert sum(r["split"] == "train" for r in training if r["sizing"]) == 4  # one schema each
    tests = [r for r in reads if r["split"] == "test"]
    assert tests, "the gate never read the test split"
    assert all(r["gate"] or r["leaderboard"] for r in tests), tests
    assert tests[0]["gate"] and tests[0]["pid"] == os.getpid()
    assert min(r["t"] for r in tests) > max(r["t"] for r in training)


def test_no_sweep_imports_no_dask() -> None:
    """K = 1 pays no Dask start-up: the flow modules never import distributed."""
    code = (
        "import sys, flows.retraining, flows.sweep, flows.drift_monitor;"
        "print(sorted(m for m in ('distributed', 'dask', 'prefect_dask') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_a_bad_sweep_is_one_line_before_any_work(settings: Settings) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "flows.retraining", "-p", 'sweep={"learning_rate": [0.1], "lr": 1}'],
        cwd=REPO_ROOT,
        env={**os.environ, "PREFECT_API_URL": "http://127.0.0.1:9/api"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "error: parameter sweep.lr: unknown key; known: hidden_sizes, learning_rate, dropout, "
        "weight_decay, search, max_candidates, seed, workers"
    ]


def test_sweep_workers_start_without_dask_malloc_trimming() -> None:
    """Dask's MALLOC_TRIM_THRESHOLD_=65536 made every training epoch of a worker 1.7x slower;
    the sweep's workers start without it (and keep the thread caps); outside, config is as was."""
    import dask
    import distributed  # noqa: F401  (its configuration defaults)

    from flows.sweep import PRE_SPAWN_ENVIRON, worker_environment

    before = dict(dask.config.get(PRE_SPAWN_ENVIRON))
    assert before["MALLOC_TRIM_THRESHOLD_"] == 65536  # distributed's default: what we undo
    with worker_environment():
        inside = dict(dask.config.get(PRE_SPAWN_ENVIRON))
    assert "MALLOC_TRIM_THRESHOLD_" not in inside
    assert inside == {k: v for k, v in before.items() if k != "MALLOC_TRIM_THRESHOLD_"}
    assert inside["OMP_NUM_THREADS"] == 1
    assert dict(dask.config.get(PRE_SPAWN_ENVIRON)) == before
