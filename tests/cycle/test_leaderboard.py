"""The leaderboard re-scores every retained version on one current holdout: checked against an
independent scikit-learn AUC on the same rows, with statuses, rounding and the numbers as
registered labelled with their holdout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from model.cycle.leaderboard import leaderboard, retained_versions
from model.data import load_manifest, load_split, prepare
from model.data.demo import make_customers
from model.registry import ModelRegistry
from model.training import TrainParams, train
from model.training.artifact import load_model, save_model


@pytest.fixture
def world(tmp_path: Path) -> tuple[ModelRegistry, Path]:
    manifest = prepare(make_customers(4_000, seed=31), tmp_path / "prepared", id_column="id")
    tr, va = load_split(manifest, "train"), load_split(manifest, "val")
    registry = ModelRegistry(tmp_path / "models")
    versions = []
    for epochs, seed in ((6, 1), (1, 2), (3, 3)):
        result = train(
            tr, va, TrainParams(num_epochs=epochs, batch_size=128, seed=seed), spec=manifest.spec
        )
        folder = save_model(
            result,
            tmp_path / f"m{seed}",
            extra_metadata={"training_reason": {"trigger": "force", "flow_run_id": f"run-{seed}"}},
        )
        versions.append(registry.register(folder, reason="test"))
    registry.promote(versions[0], reason="first", force=True)
    registry.record("rejected", version=versions[1], reasons=["worse"])
    registry.set_challenger(versions[2], traffic=10)
    return registry, manifest.path


def test_rescored_on_the_current_holdout_against_sklearn(world: tuple[ModelRegistry, Path]) -> None:
    registry, holdout = world
    rows = leaderboard(registry, holdout, ui_url="http://127.0.0.1:4200")
    by_version = {r["version"]: r for r in rows}
    assert [r["version"] for r in rows] == ["v0003", "v0002", "v0001"]  # newest first
    assert by_version["v0001"]["status"] == "production"
    assert by_version["v0002"]["status"] == "rejected"
    assert by_version["v0003"]["status"] == "challenger"
    manifest = load_manifest(holdout)
    test = load_split(manifest, "test")
    y = test["target"].to_numpy()
    aucs = {
        v: roc_auc_score(y, load_model(registry.version_path(v)).predict_proba(test))
        for v in by_version
    }
    for v, row in by_version.items():
        assert row["auc"] == pytest.approx(aucs[v], abs=1e-4)  # rounded to 4 digits
        assert row["auc"] == round(row["auc"], 4)
        assert row["holdout"] == manifest.sha256[:16]
        assert row["trigger"] == "force" and row["created"]
    assert by_version["v0001"]["delta_vs_production"] == 0.0
    delta = by_version["v0002"]["delta_vs_production"]
    assert delta == pytest.approx(aucs["v0002"] - aucs["v0001"], abs=2e-4)
    low, high = (float(x) for x in by_version["v0002"]["delta_interval"].strip("[]").split(","))
    assert low < delta < high and 0 <= by_version["v0002"]["p"] <= 1
    assert by_version["v0002"]["flow_run"] == "http://127.0.0.1:4200/runs/flow-run/run-2"


def test_without_a_holdout_only_registered_numbers(world: tuple[ModelRegistry, Path]) -> None:
    registry, _ = world
    rows = leaderboard(registry, None)
    assert all(r["auc"] is None and r["delta_vs_production"] is None for r in rows)
    assert all(isinstance(r["val_auc_as_registered"], float) for r in rows)


def test_only_the_newest_candidates_are_retained(world: tuple[ModelRegistry, Path]) -> None:
    registry, _ = world
    kept = retained_versions(registry, max_candidates=0)
    assert kept == ["v0003", "v0001"]  # challenger and production, whatever the limit
    assert np.all(np.array(kept) != "v0002")
