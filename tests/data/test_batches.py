"""Batches as users deliver them: CSV and Parquet mixed under ``incoming/date=…/``, a saved
pandas index, a batch that lacks a feature or has it all-missing (the schema-change rule, both
ways), an extra column, and declared column roles."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from model.data import load_split, prepare, read_table
from model.data.demo import make_customers
from model.data.read import source_rows
from model.errors import DataValidationError

CODED = ["region", "category_preference", "is_premium"]


def _batches(tmp_path: Path) -> tuple[Path, Path, pd.DataFrame, pd.DataFrame]:
    base = make_customers(4000, seed=1)
    batch = make_customers(2000, seed=1, drift=0.3, batch=1)
    base_path = tmp_path / "base.parquet"
    base.to_parquet(base_path, index=False)
    incoming = tmp_path / "incoming"
    (incoming / "date=2026-11-01").mkdir(parents=True)
    (incoming / "date=2026-11-02").mkdir(parents=True)
    batch.iloc[:1000].to_parquet(incoming / "date=2026-11-01" / "part-0.parquet", index=False)
    batch.iloc[1000:].to_csv(incoming / "date=2026-11-02" / "part-0.csv")  # with its index
    return base_path, incoming, base, batch


def test_csv_and_parquet_batches_mixed_across_dates(tmp_path: Path) -> None:
    base_path, incoming, base, batch = _batches(tmp_path)
    one = read_table(incoming / "date=2026-11-02")
    assert len(one) == 1000 and "" not in one.columns and "Unnamed: 0" not in one.columns
    both = read_table(incoming)  # the folder of all batches: hive keys become a column
    assert len(both) == 2000 and set(both["date"]) == {"2026-11-01", "2026-11-02"}
    assert source_rows(incoming / "date=2026-11-02") == 1000
    assert source_rows(incoming) == 2000
    m = prepare([base_path, incoming / "date=2026-11-01", incoming / "date=2026-11-02"], tmp_path)
    assert m.rows == 6000
    assert any(f.endswith("part-0.csv") for f in m.sources)
    assert any(f.endswith("part-0.parquet") for f in m.sources)
    assert sorted(m.spec.features) == sorted(c for c in base.columns if c not in ("id", "target"))
    # the CSV rows arrive with the same values as the frame that was written
    train = pd.concat([load_split(m, s) for s in ("train", "val", "test")])
    got = train.set_index("id").loc[batch["id"].iloc[1000:], "income"].to_numpy()
    np.testing.assert_allclose(got, batch["income"].iloc[1000:].to_numpy(), rtol=1e-12)


def test_a_folder_with_both_formats_reads_every_file(tmp_path: Path) -> None:
    df = make_customers(300, seed=4)
    folder = tmp_path / "date=2026-01-01"
    folder.mkdir()
    df.iloc[:100].to_parquet(folder / "a.parquet", index=False)
    df.iloc[100:].to_csv(folder / "b.csv", index=False)
    assert len(read_table(folder)) == 300


def test_pandas_index_column_is_never_a_feature(tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    df = make_customers(800, seed=2).drop(columns="id")
    df.to_csv(tmp_path / "with_index.csv")  # pandas writes its unnamed index first
    pd.read_csv(tmp_path / "with_index.csv").to_csv(tmp_path / "twice.csv")  # 'Unnamed: 0' too
    # a non-range index is stored as a column named '__index_level_0__' (a RangeIndex is not)
    df.set_axis(pd.Index(np.arange(800) * 3)).to_parquet(tmp_path / "idx.parquet")
    assert "__index_level_0__" in pq.read_schema(tmp_path / "idx.parquet").names
    with caplog.at_level(logging.WARNING, logger="model.data.read"):
        for name in ("with_index.csv", "twice.csv", "idx.parquet"):
            m = prepare(tmp_path / name, tmp_path / "out", detect_id=False)
            assert sorted(m.spec.features) == sorted(c for c in df.columns if c != "target")
            assert not {"", "Unnamed: 0", "__index_level_0__"} & set(m.spec.excluded)
    assert "dropped index column" in caplog.text and "twice.csv" in caplog.text


def _with_gaps(tmp_path: Path, rows: int) -> list[Path]:
    base = make_customers(4000, seed=3)
    base_path = tmp_path / "base.parquet"
    base.to_parquet(base_path, index=False)
    lacking = make_customers(rows, seed=3, batch=1).drop(columns="age")
    all_missing = make_customers(rows, seed=3, batch=2).assign(income=np.nan)
    paths = [tmp_path / "incoming" / "date=2026-11-01", tmp_path / "incoming" / "date=2026-11-02"]
    for p in paths:
        p.mkdir(parents=True)
    lacking.to_parquet(paths[0] / "part-0.parquet", index=False)
    all_missing.to_csv(paths[1] / "part-0.csv", index=False)
    return [base_path, *paths]


def test_schema_change_under_the_limit_is_imputed_and_recorded(tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    sources = _with_gaps(tmp_path, 500)  # 500 of 5,000 rows per feature: 10 % <= 20 %
    with caplog.at_level(logging.WARNING, logger="model.data.schema"):
        m = prepare(sources, tmp_path / "out", learned_values={"age": 41.5})
    changes = {c["column"]: c for c in m.schema_changes}
    assert changes["age"]["kind"] == "missing" and changes["age"]["rows"] == 500
    assert changes["age"]["value"] == 41.5 and changes["age"]["value_from"] == "production"
    assert changes["income"]["kind"] == "all_missing" and changes["income"]["rows"] == 500
    assert changes["income"]["value_from"] == "training median"
    assert changes["income"]["value"] == pytest.approx(m.imputation["income"])
    assert "'age' missing" in caplog.text and "(500 rows)" in caplog.text
    data = pd.concat([load_split(m, s) for s in ("train", "val", "test")])
    batch_rows = data["__batch__"] == "date=2026-11-01"
    assert (data.loc[batch_rows, "age"] == 41.5).all()
    assert not (data.loc[~batch_rows, "age"] == 41.5).all()
    # the manifest on disk says the same
    from model.data import load_manifest

    assert load_manifest(m.path).schema_changes == m.schema_changes


def test_schema_change_over_the_limit_fails_naming_column_and_batch(tmp_path: Path) -> None:
    sources = _with_gaps(tmp_path, 2000)  # 2,000 of 8,000 rows: 25 % > 20 %
    with pytest.raises(
        DataValidationError,
        match=r"column 'age' is missing or all-missing in .*date=2026-11-01 \(missing\).*2,000 "
        r"of 8,000 rows \(25%\).*max_imputed_row_share 20%",
    ):
        prepare(sources, tmp_path / "out")
    m = prepare(sources, tmp_path / "out", max_imputed_row_share=0.3)  # the limit is a setting
    assert {c["column"] for c in m.schema_changes} == {"age", "income"}


def test_extra_column_in_a_batch_is_ignored_with_a_warning(tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    base = make_customers(2000, seed=6)
    base.to_parquet(tmp_path / "base.parquet", index=False)
    extra = make_customers(500, seed=6, batch=1).assign(surprise=1.0)
    extra.to_parquet(tmp_path / "batch.parquet", index=False)
    with caplog.at_level(logging.WARNING, logger="model.data.schema"):
        m = prepare([tmp_path / "base.parquet", tmp_path / "batch.parquet"], tmp_path / "out")
    assert "surprise" not in m.spec.features and "surprise" not in m.spec.excluded
    assert "extra column 'surprise'" in caplog.text


def test_declared_roles_override_dtypes(tmp_path: Path) -> None:
    df = make_customers(1500, seed=7)
    m = prepare(df, tmp_path / "out", categorical_columns=CODED)
    assert sorted(m.spec.categorical) == sorted(CODED)
    assert not set(CODED) & set(m.spec.numeric)
    assert set(load_split(m, "train")["region"]) <= {"0", "1", "2", "3", "4"}
    with pytest.raises(DataValidationError, match=r"declared categorical column\(s\) \['nope'\]"):
        prepare(df, tmp_path / "out", categorical_columns=["nope"])
    with pytest.raises(DataValidationError, match=r"'region'\] declared both"):
        prepare(df, tmp_path / "out", categorical_columns=["region"], numeric_columns=["region"])
    text = df.assign(label=np.where(df["age"] > 40, "old", "young"))
    with pytest.raises(DataValidationError, match=r"'label' is declared numeric"):
        prepare(text, tmp_path / "out", numeric_columns=["label"])


def test_an_index_column_is_reported_once_per_file(tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    """A cycle reads a file several times (trigger state, preparation, drift): one warning."""
    make_customers(300, seed=4).to_csv(tmp_path / "once.csv")  # an unnamed index column
    with caplog.at_level(logging.WARNING, logger="model.data.read"):
        for _ in range(4):
            assert "" not in read_table(tmp_path / "once.csv").columns
    assert caplog.text.count("dropped index column") == 1
