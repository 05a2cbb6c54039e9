"""A cycle that died leaves its candidate with a recorded outcome when the next one starts
(issue 12, item 1): ``failed``, "the cycle that trained it died", once no live process holds
its cycle lock — never for a live cycle, a settled candidate or a hand-registered version."""

from __future__ import annotations

import json
from pathlib import Path

from fakes import make_model

from model.cycle.locks import CycleScratch
from model.cycle.recovery import record_dead_cycles, recover_dead_cycles, undecided_candidates
from model.registry import ModelRegistry


def _register(registry: ModelRegistry, tmp: Path, seed: int, run_id: str | None) -> str:
    folder = make_model(tmp / f"m{seed}", seed=seed)
    if run_id:  # what a cycle writes into model.json (training_reason)
        meta = json.loads((folder / "model.json").read_text())
        meta["training_reason"] = {"trigger": "force", "flow_run_id": run_id}
        (folder / "model.json").write_text(json.dumps(meta))
    return registry.register(folder, run_id=run_id)


def test_dead_cycles_candidates_are_recorded_failed_once(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "models")
    runs = tmp_path / "runs"
    dead = _register(registry, tmp_path, 1, "dead-run")
    settled = _register(registry, tmp_path, 2, "done-run")
    registry.record("rejected", version=settled, run_id="done-run")
    by_hand = _register(registry, tmp_path, 3, None)
    live = _register(registry, tmp_path, 4, "live-run")
    assert undecided_candidates(registry) == {dead: "dead-run", live: "live-run"}

    with CycleScratch(runs, "live-run"):
        (runs / "dead-run").mkdir(parents=True)  # what the dead cycle left (no lock held)
        (runs / "dead-run" / ".cycle.lock").touch()
        recovery = recover_dead_cycles(registry, runs, run_id="next-run")
        assert [ev["version"] for ev in recovery.failed] == [dead]
        assert recovery.removed_scratch == [str(runs / "dead-run")]
        assert record_dead_cycles(registry, runs, run_id="again") == []  # no duplicate

    event = registry.last_event("failed")
    assert event is not None and event["version"] == dead
    assert event["error"].startswith("the cycle that trained it died (run dead-run")
    assert event["run_id"] == "dead-run" and event["recorded_by"] == "next-run"
    statuses = {v.version: v.status for v in registry.versions()}
    assert by_hand in statuses  # a hand-registered candidate is nobody's cycle's to settle
    assert [e["version"] for e in registry.history() if e["event"] == "failed"] == [dead]

    # the live cycle has ended (its lock is free) without a decision: settled next time
    assert [ev["version"] for ev in record_dead_cycles(registry, runs)] == [live]


def test_version_without_registered_event_is_settled(tmp_path: Path) -> None:
    """Killed between the version folder's rename and the history line: model.json names
    the cycle."""
    registry = ModelRegistry(tmp_path / "models")
    version = _register(registry, tmp_path, 1, "dead-run")
    lines = registry.history_path.read_text().splitlines(keepends=True)
    registry.history_path.write_text("".join(x for x in lines if '"registered"' not in x))
    assert undecided_candidates(registry) == {version: "dead-run"}
    events = record_dead_cycles(registry, tmp_path / "runs")
    assert [e["version"] for e in events] == [version]


def test_nothing_to_settle_writes_nothing(tmp_path: Path) -> None:
    models = tmp_path / "models"
    registry = ModelRegistry(models)
    assert recover_dead_cycles(registry, tmp_path / "runs").failed == []
    assert not models.exists()  # a fresh home stays untouched
