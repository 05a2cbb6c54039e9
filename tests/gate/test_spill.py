"""The streaming gate: counter-based bootstrap weights, chunk-size independence, and the
spilled holdout's statistics equal to the in-memory gate's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from model.external import sort_to_file
from model.gate import kernels
from model.gate.bootstrap import POISSON_TABLE, paired_bootstrap
from model.gate.comparator import ModelComparator
from model.gate.measure import measure, measure_spilled_rows
from model.gate.metrics import METRICS
from model.gate.resample import ArrayRows, poisson_deltas, resample_keys
from model.gate.result import ModelInfo
from model.gate.spill import RECORD, SpilledRows, SpillWriter
from model.gate.spilled_compare import compare_spilled, spill_holdout


def scored(n: int, seed: int = 0, ties: bool = True) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(np.int8)
    sb = 1 / (1 + np.exp(-(rng.normal(size=n) + y)))
    sc = 1 / (1 + np.exp(-(rng.normal(size=n) + 1.2 * y)))
    if ties:
        sb = np.round(sb, 3)  # many ties, across classes too
    return y, sb, sc


def spill(folder: Path, y: np.ndarray, sb: np.ndarray, sc: np.ndarray, budget: int) -> SpilledRows:
    writer = SpillWriter(folder)
    for a in range(0, y.size, 7001):  # chunks that match nothing else
        writer.write(y[a : a + 7001], sb[a : a + 7001], sc[a : a + 7001])
    return writer.close(budget)


def close(a: Any, b: Any, path: str = "") -> None:
    """Equal structures: floats to 1e-12 (relative), everything else exactly."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), path
        for i, (u, v) in enumerate(zip(a, b, strict=True)):
            close(u, v, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-12, abs=1e-12, nan_ok=True), path
    else:
        assert a == b, path


def test_the_counter_weights_are_poisson_and_equal_the_numpy_reference() -> None:
    keys = resample_keys(7, 8)
    rows = np.arange(200_000, dtype=np.int64)
    w = kernels.reference_weights(keys, rows, POISSON_TABLE)
    # the compiled row pass with one-hot columns gives each row's weight back
    cols = np.eye(4)[rows[:4000] % 4]
    y = np.zeros(4000, dtype=np.int8)
    out = np.zeros((2, 4, keys.size))
    kernels.row_sums(keys, POISSON_TABLE, 0, y, cols, out)
    expect = np.stack([w[:, :4000][:, rows[:4000] % 4 == q].sum(axis=1) for q in range(4)])
    np.testing.assert_array_equal(out[0], expect)
    # Poisson(1): mean 1, variance 1, P(0) = e^-1 (binomial margins at 1.6M draws: 5 sd)
    assert w.mean() == pytest.approx(1.0, abs=5 * 1 / np.sqrt(w.size))
    assert w.var() == pytest.approx(1.0, abs=0.01)
    p0 = np.exp(-1)
    assert np.mean(w == 0) == pytest.approx(p0, abs=5 * np.sqrt(p0 * (1 - p0) / w.size))
    # resamples are uncorrelated with one another
    assert abs(np.corrcoef(w[0], w[1])[0, 1]) < 5 / np.sqrt(rows.size)


def test_the_bootstrap_equals_weighted_sklearn_metrics_per_resample() -> None:
    y, sb, sc = scored(6000, seed=1)
    keys = resample_keys(3, 12)
    deltas = poisson_deltas(ArrayRows(y, sb, sc, chunk=913), keys, POISSON_TABLE, 0.5, 0.4)
    w = kernels.reference_weights(keys, np.arange(y.size), POISSON_TABLE)
    j = {name: i for i, name in enumerate(METRICS)}
    for r in range(keys.size):
        auc = skm.roc_auc_score(y, sc, sample_weight=w[r]) - skm.roc_auc_score(
            y, sb, sample_weight=w[r]
        )
        ap = skm.average_precision_score(y, sc, sample_weight=w[r]) - (
            skm.average_precision_score(y, sb, sample_weight=w[r])
        )
        acc = skm.accuracy_score(y, sc >= 0.4, sample_weight=w[r]) - skm.accuracy_score(
            y, sb >= 0.5, sample_weight=w[r]
        )
        brier = skm.brier_score_loss(y, sb, sample_weight=w[r]) - skm.brier_score_loss(
            y, sc, sample_weight=w[r]
        )
        assert deltas[r, j["auc"]] == pytest.approx(auc, abs=1e-12)
        assert deltas[r, j["average_precision"]] == pytest.approx(ap, abs=1e-12)
        assert deltas[r, j["accuracy"]] == pytest.approx(acc, abs=1e-12)
        assert deltas[r, j["brier"]] == pytest.approx(brier, abs=1e-12)


@pytest.mark.parametrize("chunk", [1, 977, 4096, 50_000])
def test_the_bootstrap_does_not_depend_on_the_chunk_size(chunk: int) -> None:
    """Bit for bit: the weights are a function of (resample, row), sums run in one order."""
    y, sb, sc = scored(20_000, seed=2)
    keys = resample_keys(5, 40)
    whole = poisson_deltas(ArrayRows(y, sb, sc, chunk=y.size), keys, POISSON_TABLE, 0.5, 0.5)
    if chunk == 1:  # one row at a time over the first rows only (slow otherwise)
        y, sb, sc = y[:3000], sb[:3000], sc[:3000]
        whole = poisson_deltas(ArrayRows(y, sb, sc, chunk=y.size), keys, POISSON_TABLE, 0.5, 0.5)
    got = poisson_deltas(ArrayRows(y, sb, sc, chunk=chunk), keys, POISSON_TABLE, 0.5, 0.5, 1)
    np.testing.assert_array_equal(got, whole)


def test_records_sort_on_disk_in_score_order(tmp_path: Path) -> None:
    y, sb, _ = scored(30_000, seed=3)
    rec = np.empty(y.size, dtype=RECORD)
    rec["score"], rec["row"], rec["y"] = sb, np.arange(y.size), y
    chunks = [rec[a : a + 5000] for a in range(0, y.size, 5000)]
    out = sort_to_file(chunks, tmp_path / "sorted.bin", 1 << 16, RECORD)  # many runs
    back = out.values()
    assert out.size == y.size
    np.testing.assert_array_equal(back["score"], np.sort(sb))
    assert sorted(back["row"].tolist()) == list(range(y.size))
    np.testing.assert_array_equal(back["y"], y[back["row"]])  # records stay whole
    np.testing.assert_array_equal(back["score"], sb[back["row"]])


@pytest.mark.parametrize("budget", [1 << 18, 1 << 24])
def test_the_spilled_measure_equals_the_in_memory_one(tmp_path: Path, budget: int) -> None:
    """Every field of the population: tests, bootstrap (bit for bit), curves, counts."""
    y, sb, sc = scored(40_000, seed=4)
    kwargs: dict[str, Any] = dict(
        primary="auc", threshold=0.005, level=0.01, n_bootstrap=200, seed=11
    )
    memory = measure("holdout", y, sb, sc, 0.5, 0.4, **kwargs)
    rows = spill(tmp_path / "s", y, sb, sc, budget)
    spilled = measure_spilled_rows("holdout", rows, 0.5, 0.4, **kwargs)
    close(spilled.to_dict(), memory.to_dict())
    assert spilled.bootstrap_deltas == memory.bootstrap_deltas  # the same resamples
    boot = paired_bootstrap(
        y, sb, sc, baseline_threshold=0.5, candidate_threshold=0.4, n_bootstrap=200, random_state=11
    )
    assert spilled.bootstrap["sd"] == pytest.approx({m: boot.sd(m) for m in METRICS}, rel=0)


def frames(y: np.ndarray, sb: np.ndarray, sc: np.ndarray, recent: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {"sb": sb, "sc": sc, "target": y, "__batch__": np.where(recent, "b2", "b1")}
    )


class Column:
    """A model that scores a frame by reading one of its columns."""

    def __init__(self, column: str, threshold: float = 0.5) -> None:
        self.column = column
        self.decision_threshold = threshold

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        return df[self.column].to_numpy()


def spilled_case(tmp_path: Path) -> tuple[Any, ...]:
    """A holdout with recent rows and two batches, in memory and spilled to ``tmp_path``:
    (y, sb, sc, recent, batches, the spilled holdout)."""
    y, sb, sc = scored(30_000, seed=5)
    recent = np.arange(y.size) >= 18_000
    df = frames(y, sb, sc, recent)
    batches = df["__batch__"].tolist()
    chunks = (
        (df.iloc[a : a + 4000], recent[a : a + 4000], batches[a : a + 4000])
        for a in range(0, y.size, 4000)
    )
    holdout = spill_holdout(chunks, Column("sb"), Column("sc"), "target", tmp_path, 1 << 20)
    return y, sb, sc, recent, batches, holdout


@pytest.mark.parametrize("threshold_type", ["absolute", "relative"])
def test_a_spilled_comparison_decides_as_the_in_memory_one(
    tmp_path: Path, threshold_type: str
) -> None:
    y, sb, sc, recent, batches, holdout = spilled_case(tmp_path)
    gate = ModelComparator(n_bootstrap=200, random_state=3, threshold_type=threshold_type)
    earlier = [frozenset({"b1"})]
    memory = gate.compare_scores(y, sb, sc, recent=recent, batches=batches, earlier=earlier)
    batch = np.asarray(batches)
    assert holdout.counts == {
        b: (int(y[batch == b].sum()), int((y[batch == b] == 0).sum())) for b in ("b1", "b2")
    }
    spilled = compare_spilled(
        gate,
        holdout,
        baseline_info=ModelInfo(decision_threshold=0.5),
        candidate_info=ModelInfo(decision_threshold=0.5),
        earlier=earlier,
    )
    assert spilled.decision == memory.decision and spilled.decided_on == "recent"
    assert spilled.reasons == memory.reasons
    got, want = spilled.to_dict(), memory.to_dict()
    assert got.pop("created_at") and want.pop("created_at")  # when each was made
    close(got, want)


def test_a_spilled_holdout_with_a_model_that_fails_keeps_nothing(tmp_path: Path) -> None:
    y, sb, sc = scored(5000, seed=6)
    df = frames(y, sb, sc, np.zeros(y.size, bool))
    df.loc[3000, "sc"] = np.nan
    chunks = (
        (df.iloc[a : a + 1000], None, ["b1"] * len(df.iloc[a : a + 1000]))
        for a in range(0, 5000, 1000)
    )
    with pytest.raises(Exception, match="candidate model returned 1 NaN"):
        spill_holdout(chunks, Column("sb"), Column("sc"), "target", tmp_path / "h", 1 << 20)
    assert not (tmp_path / "h" / "all").exists()
