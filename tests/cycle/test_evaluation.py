"""What the flow's comparison gets from the registry and the data: the recent rows, the batch of
every row and the earlier decisions' batches (the evidence its level comes from)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fakes import make_model

from model.cycle.evaluation import (
    base_fingerprint,
    comparison_inputs,
    recent_rows,
    spilled_comparison,
    trained_batches,
)
from model.data import BATCH_COLUMN, load_split, prepare
from model.data.demo import write_demo
from model.gate.comparator import ModelComparator
from model.registry import ModelRegistry
from model.settings import Settings


def production_trained_on(settings: Settings, manifest_path: Path) -> ModelRegistry:
    folder = make_model(settings.root / "staging" / "m1")
    meta = json.loads((folder / "model.json").read_text())
    meta["data_manifest"] = {"path": settings.relative(manifest_path), "sha256": None}
    (folder / "model.json").write_text(json.dumps(meta))
    registry = ModelRegistry(settings.models_dir)
    version = registry.register(folder)
    registry.promote(version, "first model")
    return registry


def test_the_flow_compares_on_the_rows_of_batches_production_has_not_seen(
    settings: Settings,
) -> None:
    paths = write_demo(settings, rows=3000, batches=2, batch_rows=1500)
    batch1, batch2 = paths["batch-1"].parent, paths["batch-2"].parent
    # production was trained on the base data and batch 1, the way the flow lists sources
    first = prepare([paths["base"], batch1], settings.prepared_dir)
    registry = production_trained_on(settings, first.path)
    assert trained_batches(settings, registry.metadata("v0001")) == {batch1.name}
    # the candidate's data: base + both batches, each batch folder a source of its own
    second = prepare([paths["base"], batch1, batch2], settings.prepared_dir)
    test = load_split(second, "test")
    assert set(test[BATCH_COLUMN].dropna()) == {batch1.name, batch2.name}
    earlier = {"batches": [batch1.name], "uses": 1}
    registry.record(
        "compared", decision="REJECT", baseline="v0001", alpha_spent=0.05, evidence=earlier
    )
    registry.record(
        "compared",
        decision="INCONCLUSIVE",
        baseline="v0001",
        alpha_spent=0.0,
        evidence={"batches": [batch2.name]},
    )  # tested nothing: does not count
    inputs = comparison_inputs(settings, registry, test, second)
    assert inputs.earlier == [frozenset({batch1.name})]
    recent = inputs.recent
    assert recent is not None
    np.testing.assert_array_equal(recent, (test[BATCH_COLUMN] == batch2.name).to_numpy())
    assert 100 < recent.sum() < len(test)
    base = f"base:{base_fingerprint(test[test[BATCH_COLUMN].isna()], second)}"
    expected = test[BATCH_COLUMN].fillna(base).astype(str).tolist()
    assert inputs.batches == expected
    # the base rows are named by their content: the same rows in another preparation (a new
    # batch moved the imputation values) keep their name; other base rows get another
    first_test = load_split(first, "test")
    again = base_fingerprint(first_test[first_test[BATCH_COLUMN].isna()], first)
    assert again == base.removeprefix("base:")
    other = prepare([paths["batch-1"]], settings.root / "other")  # a different base data set
    other_test = load_split(other, "test")
    assert base_fingerprint(other_test, other) != again


def test_no_recent_rows_without_batches_or_without_production(settings: Settings) -> None:
    paths = write_demo(settings, rows=2000)
    only_base = prepare([paths["base"]], settings.prepared_dir)
    test = load_split(only_base, "test")
    assert BATCH_COLUMN not in test.columns
    assert recent_rows(test, set()) is None
    registry = ModelRegistry(settings.models_dir)
    inputs = comparison_inputs(settings, registry, test)
    (name,) = set(inputs.batches)  # every row of the base data: one batch, named by content
    assert inputs.recent is None and inputs.earlier == [] and name.startswith("base:")


class Sigmoid:
    """A model scoring a frame by a logistic function of one numeric column."""

    def __init__(self, column: str, scale: float) -> None:
        self.column, self.scale = column, scale
        self.decision_threshold = 0.5

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        x = df[self.column].to_numpy(dtype=np.float64)
        return 1 / (1 + np.exp(-self.scale * (x - np.nanmean(x)) / np.nanstd(x)))


def test_the_spilled_comparison_decides_as_the_in_memory_one(settings: Settings) -> None:
    """The compare task's spilled path (past the memory budget) on a real prepared folder:
    the same batches, base fingerprint, evidence, decision and DeLong test as in memory."""
    paths = write_demo(settings, rows=3000, batches=2, batch_rows=1500)
    batch1, batch2 = paths["batch-1"].parent, paths["batch-2"].parent
    first = prepare([paths["base"], batch1], settings.prepared_dir)
    registry = production_trained_on(settings, first.path)
    second = prepare([paths["base"], batch1, batch2], settings.prepared_dir)
    registry.record(
        "compared",
        decision="REJECT",
        baseline="v0001",
        alpha_spent=0.05,
        evidence={"batches": [batch1.name], "uses": 1},
    )
    test = load_split(second, "test")
    numeric = [c for c in second.spec.features if pd.api.types.is_float_dtype(test[c])]
    baseline, candidate = Sigmoid(numeric[0], 0.5), Sigmoid(numeric[1], 1.0)
    gate = ModelComparator(n_bootstrap=100, random_state=1, target_column=second.spec.target)
    memory = gate.compare(
        baseline, candidate, test, **comparison_inputs(settings, registry, test, second).kwargs()
    )
    small = settings.model_copy(update={"memory_budget": 16 << 20})
    spilled = spilled_comparison(small, registry, second, gate, baseline, candidate)
    assert spilled.decision == memory.decision and spilled.decided_on == memory.decided_on
    assert spilled.evidence == memory.evidence and spilled.level == memory.level
    assert spilled.reasons == memory.reasons
    for name, pop in memory.populations.items():
        got = spilled.populations[name]
        assert (got.n, got.n_positive) == (pop.n, pop.n_positive)
        want = pop.delong.to_dict()
        assert got.delong.to_dict().pop("alternative") == want.pop("alternative")
        assert got.delong.to_dict() | {"alternative": 0} == pytest.approx(
            want | {"alternative": 0}, rel=1e-12, abs=1e-15
        )
        for metric in ("auc", "log_loss", "brier", "accuracy", "average_precision"):
            assert got.metrics[metric].baseline == pytest.approx(pop.metrics[metric].baseline)
            assert got.metrics[metric].candidate == pytest.approx(pop.metrics[metric].candidate)
    assert not list(settings.reports_dir.glob(".gate-*"))  # the scratch folder is gone
