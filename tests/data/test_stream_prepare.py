"""The streamed preparation (model/data/stream_prepare.py) against reading whole: the same
prepared folder byte for byte (split files, manifest content hash) on varied data, the same
errors, and the exact order statistics it uses (model/data/select.py) against sorting."""

from __future__ import annotations

import filecmp
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from model.data import prepare
from model.data.manifest import Manifest
from model.data.select import float_keys, int_keys, key_floats, key_ints, order_statistics
from model.data.split import SPLITS
from model.data.stream_prepare import streamed_preparation
from model.errors import DataValidationError

TINY = 1 << 16
"""A budget that streams anything, 1,024 rows at a time."""
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


def _frame(n: int, seed: int, *, with_id: bool = False) -> pd.DataFrame:
    """Numbers with NaN, integers with nulls (beyond 2**53 too), text with nulls and empty
    values, booleans, a dictionary column, timestamps, a yes/no target."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    x[rng.random(n) < 0.1] = np.nan
    counts = pd.array(rng.integers(0, 50, n), dtype="Int64")
    counts[rng.random(n) < 0.05] = pd.NA
    counts[rng.random(n) < 0.01] = 2**60 + 3
    city = rng.choice(["oslo", "lima", "", "kyiv", None], n, p=[0.4, 0.3, 0.1, 0.15, 0.05])
    df = pd.DataFrame(
        {
            "x": x,
            "level": rng.integers(0, 5, n).astype(float),  # many ties: the median is a tie
            "counts": counts,
            "city": city,
            "flag": rng.random(n) < 0.3,
            "tier": pd.Categorical(rng.choice(["a", "b", "c"], n)),
            "when": pd.Timestamp("2026-01-01") + pd.to_timedelta(rng.integers(0, 400, n), "D"),
            "target": np.where(rng.random(n) < 0.3 + 0.2 * (x > 0), "yes", "no"),
        }
    )
    if with_id:
        df.insert(0, "id", np.arange(n) * 7 + seed)
    return df


def _both(sources: list[Path], out: Path, **kw: Any) -> tuple[Manifest, Manifest]:
    whole = prepare(sources, out / "whole", **kw)
    streamed = prepare(sources, out / "streamed", memory_budget=TINY, **kw)
    return whole, streamed


def _assert_same(whole: Manifest, streamed: Manifest) -> None:
    assert whole.preparation == {}
    assert streamed.preparation["streamed"] is True
    assert streamed.preparation["memory_budget"] == TINY
    for name in SPLITS:
        assert filecmp.cmp(whole.split_path(name), streamed.split_path(name), shallow=False), name
    a, b = whole.to_dict(), streamed.to_dict()
    for key in ("created_at", "preparation"):
        a.pop(key, None)
        b.pop(key, None)
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    assert whole.sha256 == streamed.sha256
    assert whole.path.name != streamed.path.name or whole.path != streamed.path


def _write(df: pd.DataFrame, path: Path, row_group: int = 3000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path, row_group_size=row_group)
    return path


@pytest.mark.parametrize("with_id", [False, True])
def test_one_file_gives_the_same_folder_byte_for_byte(tmp_path: Path, with_id: bool) -> None:
    src = _write(_frame(9000, 1, with_id=with_id), tmp_path / "data.parquet")
    whole, streamed = _both([src], tmp_path)
    _assert_same(whole, streamed)
    assert whole.imputation["x"] == pytest.approx(whole.imputation["x"])  # a median was needed
    assert {"x", "counts", "city"} <= set(whole.imputation)
    assert whole.split["duplicate_keys"] >= 0


def test_a_time_split_gives_the_same_folder(tmp_path: Path) -> None:
    src = _write(_frame(7000, 2), tmp_path / "data.parquet")
    whole, streamed = _both([src], tmp_path, timestamp_column="when", time_split=True)
    _assert_same(whole, streamed)
    assert whole.split["method"] == "time"


def schema_change_sources(tmp_path: Path) -> tuple[list[Path], Path]:
    """Base data and two batches: one without a feature (production's value fills it), one
    with a feature all missing (the training median), a folder of two files, integers in one
    source and floats in another, extra columns in a batch. Returns the sources and the
    incoming folder."""
    base = _frame(8000, 3)
    base["level"] = base["level"].astype("int64")
    src = _write(base, tmp_path / "base.parquet")
    incoming = tmp_path / "incoming"
    b1 = _frame(1200, 4).drop(columns=["x"])
    b1["extra"] = 1.0
    _write(b1, incoming / "date=2026-02-01" / "part-0.parquet", 500)
    b1b = _frame(900, 5).drop(columns=["x"])
    b1b["extra"] = 2  # an integer in one file, a float in the other: one type for the folder
    _write(b1b, incoming / "date=2026-02-01" / "part-1.parquet", 500)
    b2 = _frame(800, 6)
    b2["counts"] = pd.array([pd.NA] * len(b2), dtype="Int64")
    _write(b2, incoming / "date=2026-02-08" / "part-0.parquet")
    return [src, incoming / "date=2026-02-01", incoming / "date=2026-02-08"], incoming


def test_base_data_and_batches_with_schema_changes_give_the_same_folder(tmp_path: Path) -> None:
    """The sources of :func:`schema_change_sources`: the same folder, the same changes."""
    sources, incoming = schema_change_sources(tmp_path)
    whole, streamed = _both(
        sources,
        tmp_path,
        batch_root=incoming,
        learned_values={"x": 0.25},
        max_imputed_row_share=0.5,
    )
    _assert_same(whole, streamed)
    kinds = {(c["column"], c["kind"]) for c in whole.schema_changes}
    assert kinds == {("x", "missing"), ("counts", "all_missing")}
    assert whole.batches == ["date=2026-02-01", "date=2026-02-08"]


@pytest.mark.skipif(not (SHARED / "aSAH.csv").exists(), reason="needs ../shared/data/aSAH.csv")
def test_a_real_data_set_gives_the_same_folder(tmp_path: Path) -> None:
    df = pd.read_csv(SHARED / "aSAH.csv")
    df = pd.concat([df] * 20, ignore_index=True)  # ties and duplicate keys, over chunks
    src = _write(df, tmp_path / "asah.parquet", 1000)
    whole, streamed = _both([src], tmp_path, target="outcome")
    _assert_same(whole, streamed)
    assert whole.split["duplicate_keys"] > 0


def _error(call: Any) -> str:
    with pytest.raises(DataValidationError) as info:
        call()
    return str(info.value)


BREAKS = [
    pytest.param(lambda df: df.assign(target=df["target"].where(df.index != 5000)), id="null"),
    pytest.param(
        lambda df: df.assign(target=np.where(df.index == 4100, "maybe", df["target"])),
        id="three-labels",
    ),
    pytest.param(lambda df: df.assign(target="yes"), id="one-class"),
    pytest.param(
        lambda df: df.assign(city=np.where(df.index == 3333, "z" * 1200, df["city"])),
        id="long-level",
    ),
    pytest.param(lambda df: df.assign(x=np.nan), id="all-missing"),
    pytest.param(
        lambda df: df.assign(x=np.where(df.index == 2500, 1e300, df["x"])), id="beyond-float32"
    ),
    pytest.param(
        lambda df: df.assign(x=np.where(df.index == 4700, np.inf, df["x"])), id="infinite"
    ),
]
"""Bad data, each wrong in one row (a late one) or one column."""


@pytest.mark.parametrize("break_it", BREAKS)
def test_bad_data_gives_the_same_error(tmp_path: Path, break_it: Any) -> None:
    src = _write(break_it(_frame(6000, 7)), tmp_path / "bad.parquet")
    whole = _error(lambda: prepare([src], tmp_path / "w"))
    streamed = _error(lambda: prepare([src], tmp_path / "s", memory_budget=TINY))
    assert streamed == whole
    left = tmp_path / "s"
    assert not left.exists() or not list(left.iterdir())  # nothing left behind


def test_an_id_with_gaps_and_a_time_split_without_timestamps_are_the_same_errors(
    tmp_path: Path,
) -> None:
    df = _frame(5000, 8, with_id=True)
    df["id"] = df["id"].astype("Int64")
    df.loc[4321, "id"] = pd.NA
    src = _write(df, tmp_path / "ids.parquet")
    for kw in ({}, {"time_split": True}):
        whole = _error(lambda kw=kw: prepare([src], tmp_path / "w", **kw))
        streamed = _error(lambda kw=kw: prepare([src], tmp_path / "s", memory_budget=TINY, **kw))
        assert streamed == whole


def test_only_parquet_over_the_budget_streams(tmp_path: Path) -> None:
    df = _frame(3000, 9)
    src = _write(df, tmp_path / "d.parquet")
    csv = tmp_path / "d.csv"
    df.to_csv(csv, index=False)
    assert streamed_preparation([src], TINY) is not None
    assert streamed_preparation([src], 1 << 30) is None  # fits: read whole
    assert streamed_preparation([csv], TINY) is None
    assert streamed_preparation([df], TINY) is None
    manifest = prepare([csv], tmp_path / "out", memory_budget=TINY)
    assert manifest.preparation == {"streamed": False, "memory_budget": TINY}


def test_a_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = _write(_frame(3000, 10), tmp_path / "d.parquet")

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("model.data.prepared.SplitWriter.finish", boom)
    with pytest.raises(DataValidationError, match="No space left on device"):
        prepare([src], tmp_path / "out", memory_budget=TINY)
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("cap", [1, 7, 1 << 20])
def test_order_statistics_are_the_sorted_values(cap: int) -> None:
    rng = np.random.default_rng(cap)
    floats = np.concatenate(
        [
            rng.normal(size=5000),
            np.full(3000, 2.5),  # a tie over more than the cap
            [-np.inf, np.inf, -0.0, 5e-324, -1e308, 1e308],
            rng.integers(-3, 3, 2000).astype(float),
        ]
    )
    ints = rng.integers(-(2**62), 2**62, 7000)
    rng.shuffle(floats)
    ranks = {"f": [0, 1, 4999, 5000, floats.size - 1], "i": [0, 3500, ints.size - 1]}

    def passes():  # type: ignore[no-untyped-def]
        for start in range(0, 11000, 997):
            yield {
                "f": float_keys(floats[start : start + 997]),
                "i": int_keys(ints[start : start + 997]),
            }

    found = order_statistics(passes, ranks, cap)
    f_sorted, i_sorted = np.sort(floats), np.sort(ints)
    for k in ranks["f"]:
        assert key_floats(np.array([found["f"][k]], np.uint64))[0] == f_sorted[k]
    for k in ranks["i"]:
        assert key_ints(np.array([found["i"][k]], np.uint64))[0] == i_sorted[k]


def test_a_prepared_folder_streamed_again_is_reused(tmp_path: Path) -> None:
    src = _write(_frame(4000, 11), tmp_path / "d.parquet")
    first = prepare([src], tmp_path / "out")
    again = prepare([src], tmp_path / "out", memory_budget=TINY)
    assert again.path == first.path
    assert [p.name for p in (tmp_path / "out").iterdir()] == [first.path.name]
    shutil.rmtree(first.path)


@pytest.mark.parametrize("learned", [None, {"x": 100.0}])
def test_a_middle_source_without_the_median_column_keeps_its_rows(
    tmp_path: Path, learned: dict | None
) -> None:
    """The only column needing a median is missing from a source between two others: its
    rows still count (their split codes keep their places), filled or not."""
    rng = np.random.default_rng(4)

    def part(n: int, with_x: bool) -> pd.DataFrame:
        df = pd.DataFrame({"z": rng.normal(size=n), "target": rng.integers(0, 2, n)})
        if with_x:
            x = rng.normal(size=n)
            x[rng.random(n) < 0.1] = np.nan
            df.insert(0, "x", x)
        return df

    sources = [
        _write(part(3000, True), tmp_path / "a.parquet"),
        _write(part(500, False), tmp_path / "b.parquet"),
        _write(part(1500, True), tmp_path / "c.parquet"),
    ]
    whole, streamed = _both(sources, tmp_path, learned_values=learned, max_imputed_row_share=0.5)
    _assert_same(whole, streamed)


def test_a_median_of_signed_zeros_is_zero_both_ways(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 2000
    df = pd.DataFrame(
        {
            "id": np.arange(n),
            "x": rng.choice([-0.0, 0.0, np.nan, 1.0, -1.0], n),
            "target": rng.integers(0, 2, n),
        }
    )
    src = _write(df, tmp_path / "zeros.parquet")
    whole, streamed = _both([src], tmp_path)
    _assert_same(whole, streamed)
    assert str(whole.imputation["x"]) == "0.0"


def test_sources_that_cannot_be_combined_are_the_same_error(tmp_path: Path) -> None:
    a = _frame(3000, 12)
    a["big"] = np.int64(2**60 + 1)
    b = _frame(2000, 13)
    b["big"] = 1.5
    sources = [_write(a, tmp_path / "a.parquet"), _write(b, tmp_path / "b.parquet")]
    whole = _error(lambda: prepare(sources, tmp_path / "w", exclude=["big"]))
    streamed = _error(lambda: prepare(sources, tmp_path / "s", exclude=["big"], memory_budget=TINY))
    assert "cannot be combined" in whole
    assert streamed == whole


def test_an_unreadable_source_is_the_same_error(tmp_path: Path) -> None:
    good = _write(_frame(2000, 14), tmp_path / "good.parquet")
    broken = tmp_path / "broken.parquet"
    broken.symlink_to(tmp_path / "nowhere.parquet")
    whole = _error(lambda: prepare([good, broken], tmp_path / "w"))
    streamed = _error(lambda: prepare([good, broken], tmp_path / "s", memory_budget=TINY))
    assert streamed == whole
