"""The retraining flow on tiny demo data, through one session-scoped Prefect harness."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from prefect.artifacts import Artifact
from prefect.concurrency.sync import concurrency

from flows.promotion import promotion_limit
from flows.retraining import ensure_promotion_limit, retraining
from model.data import load_manifest
from model.data.demo import write_demo
from model.registry import ModelRegistry
from model.settings import Settings

FAST: dict[str, Any] = {
    "num_epochs": 4,
    "batch_size": 256,
    "patience": None,
    "n_bootstrap": 200,
    "id_column": "id",
    "min_hours_between_trainings": 0.0,
}


@pytest.fixture
def demo(settings: Settings) -> Settings:
    write_demo(settings, rows=2_500, seed=7)
    return settings


def _history(settings: Settings) -> list[dict[str, Any]]:
    path = settings.models_dir / "history.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def _production_state(settings: Settings) -> tuple[str, bytes, str]:
    """The production pointer, the bytes users load, and where the link points."""
    models = settings.models_dir
    return (
        (models / "production.json").read_text(),
        (models / "production" / "model.pt").read_bytes(),
        str((models / "production").readlink()),
    )


def test_first_run_promotes_then_skips(prefect_harness: None, demo: Settings) -> None:
    first = retraining(**FAST)
    assert first.status == "promoted"
    assert first.trigger == "no-production"
    assert first.reasons[0].startswith("no production model")
    registry = ModelRegistry(demo.models_dir)
    prod = registry.production()
    assert prod is not None and prod.version == first.candidate_version == "v0001"
    loaded = (demo.models_dir / "production" / "model.pt").read_bytes()
    assert hashlib.sha256(loaded).hexdigest() == prod.sha256
    events = [e["event"] for e in _history(demo)]
    assert events == ["registered", "compared", "promoted"]
    run_ids = {e.get("run_id") for e in _history(demo)}
    assert len(run_ids) == 1 and None not in run_ids  # one cycle, one (top-level) run id
    for path in first.reports.values():
        assert Path(path).is_file()
    meta = registry.metadata("v0001")
    assert meta["training_reason"]["trigger"] == "no-production"

    # Nothing new: production is fresh, no drift report, no batches -> skipped, recorded.
    second = retraining(**FAST)
    assert second.status == "skipped"
    assert second.production_version == "v0001"
    skipped = _history(demo)[-1]
    assert skipped["event"] == "skipped"
    assert any(c["name"] == "drift" and not c["checked"] for c in skipped["checks"])
    assert ModelRegistry(demo.models_dir).production().version == "v0001"  # type: ignore[union-attr]

    board = Artifact.get("model-leaderboard-demo")
    assert board is not None and "v0001" in str(board.data)
    comparison = Artifact.get("model-comparison-demo")
    assert comparison is not None and "PROMOTE" in str(comparison.data)
    assert "comparison.html" in str(comparison.data)
    trigger = Artifact.get("trigger-decision-demo")
    assert trigger is not None and "no-production" in str(trigger.data)
    progress = Artifact.get("training-progress-demo")
    assert progress is not None and float(progress.data) == 100.0  # type: ignore[arg-type]


def test_force_retrains_and_gate_rejects(prefect_harness: None, demo: Settings) -> None:
    retraining(**FAST)
    before = _production_state(demo)
    # Same data, a demanding threshold: trained anyway (force), but not promoted.
    result = retraining(force_retrain=True, improvement_threshold=0.2, **FAST)
    assert result.trigger == "force"
    assert result.status == "rejected"
    assert result.candidate_version == "v0002"
    assert result.production_version == "v0001"
    assert _production_state(demo) == before
    events = [e["event"] for e in _history(demo)]
    assert events[-3:] == ["registered", "compared", "rejected"]
    statuses = {v.version: v.status for v in ModelRegistry(demo.models_dir).versions()}
    assert statuses == {"v0001": "production", "v0002": "candidate"}


def test_drift_report_triggers_retraining(
    prefect_harness: None, demo: Settings, tmp_path: Path
) -> None:
    retraining(**FAST)
    write_demo(demo, rows=2_500, seed=7, drift=0.8, batches=1, batch_rows=2_000)
    report = tmp_path / "external-drift.json"
    report.write_text(json.dumps({"dataset_drift": True, "drift_share": 0.8}))
    result = retraining(drift_report_path=str(report), **FAST)
    assert result.trigger == "drift"
    assert result.status in {"promoted", "rejected", "inconclusive"}
    meta = ModelRegistry(demo.models_dir).metadata(result.candidate_version or "")
    assert meta["training_reason"]["drift_report_path"] == str(report)
    assert len(meta["training_reason"]["sources"]["batches"]) == 1


def test_newest_batches_selects_what_is_trained_on(prefect_harness: None, demo: Settings) -> None:
    write_demo(demo, rows=2_500, seed=7, batches=2, batch_rows=500)
    result = retraining(newest_batches=1, **FAST)
    meta = ModelRegistry(demo.models_dir).metadata(result.candidate_version or "")
    manifest = load_manifest(demo.resolve(meta["data_manifest"]["path"]))
    assert manifest.selection == "base data + newest 1 batch(es)"
    batches = sorted({Path(s).parent.name for s in manifest.sources if "date=" in s})
    all_batches = sorted(p.name for p in demo.incoming_dir.iterdir())
    assert len(all_batches) == 2 and batches == all_batches[-1:]
    assert meta["training_reason"]["sources"]["selection"] == manifest.selection


WEAK = {**FAST, "num_epochs": 1, "learning_rate": 1e-4}


@pytest.mark.parametrize("where", ["compare", "promote"])
def test_late_failure_leaves_production_untouched(
    prefect_harness: None, demo: Settings, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """A failure after training (in the comparison) or inside the promotion changes nothing
    but a ``failed`` history line; the next run works."""
    assert retraining(**WEAK).status == "promoted"  # a weak production model to beat
    before = _production_state(demo)
    history_before = (demo.models_dir / "history.jsonl").read_text()

    def broken(*args: Any, **kwargs: Any) -> None:
        raise OSError(f"disk full (injected in {where})")

    with monkeypatch.context() as patch, pytest.raises(OSError, match="injected"):
        if where == "compare":
            patch.setattr("model.gate.comparator.ModelComparator.compare", broken)
        else:
            patch.setattr(ModelRegistry, "promote", broken)
        retraining(force_retrain=True, improvement_threshold=0.0, **FAST)
    assert _production_state(demo) == before
    history = (demo.models_dir / "history.jsonl").read_text()
    assert history.startswith(history_before)
    added = [json.loads(line) for line in history[len(history_before) :].splitlines()]
    assert [e["event"] for e in added][-1] == "failed"
    assert added[-1]["version"] == "v0002"
    assert "injected" in added[-1]["error"]
    assert "promoted" not in [e["event"] for e in added]

    again = retraining(force_retrain=True, improvement_threshold=0.0, **FAST)
    assert again.status == "promoted"
    assert again.candidate_version == "v0003"


def test_failure_before_training_records_failed(prefect_harness: None, settings: Settings) -> None:
    with pytest.raises(Exception, match="no training data"):
        retraining(**FAST)
    events = _history(settings)
    assert [e["event"] for e in events] == ["failed"]
    assert "no training data" in events[0]["error"]


def test_bad_parameters_are_refused_before_any_work(prefect_harness: None, demo: Settings) -> None:
    with pytest.raises(Exception, match="significance_level"):
        retraining(significance_level=0.9, **FAST)
    assert not (demo.models_dir / "history.jsonl").exists()


def test_promotions_serialize(prefect_harness: None) -> None:
    ensure_promotion_limit()
    spans: list[tuple[float, float]] = []

    def hold() -> None:
        with concurrency(promotion_limit("demo"), occupy=1, strict=True):
            start = time.monotonic()
            time.sleep(1.0)
            spans.append((start, time.monotonic()))

    threads = [threading.Thread(target=hold) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(spans) == 2
    first, second = sorted(spans)
    assert second[0] >= first[1], f"promotions overlapped: {spans}"
