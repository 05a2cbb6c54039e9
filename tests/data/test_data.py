"""Data preparation: reading, validation, imputation, stable splits, manifest."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import model.data as data_mod
from model.data import (
    FeatureSpec,
    encode_target,
    infer_spec,
    load_manifest,
    load_split,
    prepare,
    read_table,
    row_keys,
)
from model.data.demo import DEMO_FEATURES, make_customers
from model.errors import DataValidationError


def frame(rows: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x": rng.normal(size=rows),
            "n": rng.integers(0, 10, rows),
            "color": rng.choice(["red", "green", "blue"], rows),
            "target": rng.integers(0, 2, rows),
        }
    )


def write_parquet(df: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_parquet(path, index=False)
    return path


def split_of(manifest: data_mod.Manifest, key: str) -> dict[object, str]:
    out: dict[object, str] = {}
    for name in ("train", "val", "test"):
        for value in load_split(manifest, name)[key]:
            out[value] = name
    return out


# ---------------------------------------------------------------- reading


def test_read_parquet_csv_folder_and_hive(tmp_path: Path) -> None:
    df = frame(50)
    p = write_parquet(df, tmp_path / "a.parquet")
    csv = tmp_path / "a.csv"
    df.to_csv(csv, index=False)
    hive = tmp_path / "incoming"
    write_parquet(df.iloc[:20], hive / "date=2025-01-01" / "part-0.parquet")
    write_parquet(df.iloc[20:], hive / "date=2025-01-02" / "part-0.parquet")

    pd.testing.assert_frame_equal(read_table(p), df, check_dtype=False)
    pd.testing.assert_frame_equal(read_table(csv), df, check_dtype=False)
    h = read_table(hive)
    assert h.attrs["partition_columns"] == ["date"]
    assert sorted(h["date"].unique()) == ["2025-01-01", "2025-01-02"]
    assert len(h) == 50
    both = read_table([p, hive])
    assert len(both) == 100 and both["date"].isna().sum() == 50


def test_folder_of_plain_parquet_files(tmp_path: Path) -> None:
    df = frame(30)
    write_parquet(df.iloc[:10], tmp_path / "d" / "one.parquet")
    write_parquet(df.iloc[10:], tmp_path / "d" / "two.parquet")
    (tmp_path / "d" / "_SUCCESS").write_text("")
    got = read_table(tmp_path / "d")
    assert len(got) == 30 and got.attrs["partition_columns"] == []


# ---------------------------------------------------------------- feature spec


def test_infer_spec_kinds_and_exclusions() -> None:
    df = pd.DataFrame(
        {
            "id": [1, 2],
            "ts": pd.to_datetime(["2025-01-01", "2025-01-02"]),
            "num": [1.0, 2.0],
            "cat": pd.Series(["a", "b"], dtype="category"),
            "text": ["a", "b"],
            "obj": pd.Series(["a", "b"], dtype=object),
            "flag": [True, False],
            "date": ["x", "y"],
            "target": [0, 1],
        }
    )
    spec = infer_spec(df, id_column="id", timestamp_column="ts", exclude=["date"])
    assert spec.numeric == ["num"]
    assert spec.categorical == ["cat", "text", "obj", "flag"]
    assert spec.excluded == ["date"]
    assert FeatureSpec.from_dict(spec.to_dict()) == spec


def test_spec_check_names_missing_and_unexpected() -> None:
    spec = FeatureSpec(numeric=["a", "b"])
    df = pd.DataFrame({"a": [1], "c": [2], "target": [0]})
    with pytest.raises(DataValidationError, match=r"f\.csv.*missing.*'b'"):
        spec.check(df, source="f.csv")
    spec = FeatureSpec(numeric=["a"])
    with pytest.raises(DataValidationError, match=r"not in the feature spec.*'c'"):
        spec.check(df, source="f.csv", strict=True)
    spec.check(df, source="f.csv")  # not strict: extra columns are fine


# ---------------------------------------------------------------- target


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([0, 1, 1, 0], [0, 1, 1, 0]),
        ([True, False, True, True], [1, 0, 1, 1]),
        (["no", "yes", "yes", "no"], [0, 1, 1, 0]),
        (["Yes", "No", "No", "No"], [1, 0, 0, 0]),
        ([-1, 1, 1, -1], [0, 1, 1, 0]),
        (["churn", "stay", "stay", "churn"], [0, 1, 1, 0]),
        ([0.0, 1.0, 1.0, 0.0], [0, 1, 1, 0]),
    ],
)
def test_encode_target(values: list[object], expected: list[int]) -> None:
    got = encode_target(pd.Series(values, name="target"))
    assert got.dtype == np.int8
    assert got.tolist() == expected


def test_positive_label_recorded(tmp_path: Path) -> None:
    df = frame(200)
    df["target"] = np.where(df["target"] == 1, "yes", "no")
    m = prepare(df, tmp_path / "out")
    assert m.target_labels == {"positive": "yes", "negative": "no"}
    total = sum(s.positives for s in m.splits.values())
    assert total == int((df["target"] == "yes").sum())
    assert set(load_split(m, "train")["target"].unique()) <= {0, 1}


# ---------------------------------------------------------------- bad input


def _csv(tmp_path: Path, text: str, name: str = "bad.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


BAD_CSV = {
    "missing-target": ("x,y\n1,2\n3,4\n", r"bad\.csv.*missing target column 'target'"),
    "not-binary": ("x,target\n1,0\n2,1\n3,2\n", r"bad\.csv.*'target' is not binary.*3 distinct"),
    "single-class": ("x,target\n1,1\n2,1\n", r"bad\.csv.*'target' has a single class"),
    "null-target": ("x,target\n1,1\n2,\n3,0\n", r"bad\.csv.*'target' has 1 missing.*row 1"),
    "all-null": ("x,e,target\n1,,0\n2,,1\n", r"bad\.csv.*column 'e' has only missing values"),
    "inf": ("x,target\n1.5,0\ninf,1\n2.5,1\n", r"bad\.csv.*column 'x' has 1 infinite.*row 1"),
    "mixed": (
        "x,target\n1,0\n2,1\n3,0\nabc,1\n",
        r"bad\.csv.*column 'x' has mixed types.*'abc' at row 3",
    ),
    "duplicate": ("x,x,target\n1,2,0\n3,4,1\n", r"bad\.csv.*duplicate column names.*'x'"),
    "empty": ("", r"bad\.csv.*empty input"),
    "header-only": ("x,target\n", r"bad\.csv.*empty input \(no rows\)"),
    "corrupt": ('x,target\n1,0\n"unterminated,1,2,3\n', r"bad\.csv.*unreadable or corrupt CSV"),
}


@pytest.mark.parametrize("case", sorted(BAD_CSV))
def test_bad_csv_inputs(tmp_path: Path, case: str) -> None:
    text, pattern = BAD_CSV[case]
    path = _csv(tmp_path, text)
    out = tmp_path / "out"
    with pytest.raises(DataValidationError, match=pattern):
        prepare(path, out)
    assert not out.exists() or not any(out.iterdir()), "failed preparation left output behind"


def test_corrupt_parquet_named(tmp_path: Path) -> None:
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(DataValidationError, match=r"broken\.parquet.*unreadable or corrupt"):
        read_table(path)
    good = write_parquet(frame(20), tmp_path / "d" / "a.parquet")
    (good.parent / "b.parquet").write_bytes(good.read_bytes()[:100])
    with pytest.raises(DataValidationError, match=r"/d: unreadable, corrupt"):
        read_table(tmp_path / "d")


def test_missing_and_empty_sources(tmp_path: Path) -> None:
    with pytest.raises(DataValidationError, match=r"nope\.parquet: no such file"):
        read_table(tmp_path / "nope.parquet")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataValidationError, match=r"empty: empty input \(no Parquet or CSV files"):
        read_table(tmp_path / "empty")
    with pytest.raises(DataValidationError, match="no data sources"):
        read_table([])
    empty = write_parquet(frame(10).iloc[:0], tmp_path / "zero.parquet")
    with pytest.raises(DataValidationError, match=r"zero\.parquet: empty input"):
        prepare(empty, tmp_path / "out")


def test_dataframe_mixed_types_and_duplicates(tmp_path: Path) -> None:
    df = frame(20)
    df["x"] = df["x"].astype(object)
    df.loc[3, "x"] = "oops"
    with pytest.raises(DataValidationError, match=r"mixed types in column 'x'.*'oops'"):
        prepare(df, tmp_path / "out")
    dup = pd.DataFrame([[1, 2, 0], [3, 4, 1]], columns=["a", "a", "target"])
    with pytest.raises(DataValidationError, match="duplicate column names"):
        prepare(dup, tmp_path / "out")


def test_inf_in_parquet_names_file(tmp_path: Path) -> None:
    df = frame(20)
    df.loc[5, "x"] = -np.inf
    path = write_parquet(df, tmp_path / "inf.parquet")
    with pytest.raises(DataValidationError, match=r"inf\.parquet: column 'x' has 1 infinite.*5"):
        prepare(path, tmp_path / "out")


def test_spec_mismatch(tmp_path: Path) -> None:
    path = write_parquet(frame(100), tmp_path / "a.parquet")
    missing = FeatureSpec(numeric=["x", "n", "age"], categorical=["color"])
    with pytest.raises(DataValidationError, match=r"a\.parquet.*missing.*'age'"):
        prepare(path, tmp_path / "out", spec=missing)
    extra = FeatureSpec(numeric=["x"], categorical=["color"])
    with pytest.raises(DataValidationError, match=r"not in the feature spec.*'n'"):
        prepare(path, tmp_path / "out", spec=extra)
    wrong = FeatureSpec(numeric=["x", "n", "color"])
    with pytest.raises(DataValidationError, match=r"'color' numeric.*string"):
        prepare(path, tmp_path / "out", spec=wrong)
    ok = FeatureSpec(numeric=["x"], categorical=["n", "color"])
    m = prepare(path, tmp_path / "out", spec=ok)
    assert m.spec.categorical == ["n", "color"]
    assert all(isinstance(v, str) for v in load_split(m, "train")["n"])


def test_sources_with_conflicting_types(tmp_path: Path) -> None:
    a = write_parquet(frame(20), tmp_path / "a.parquet")
    other = frame(20)
    other["x"] = "text"
    b = write_parquet(other, tmp_path / "b.parquet")
    with pytest.raises(
        DataValidationError,
        match=r"'x' is numeric in .*a\.parquet but text in .*b\.parquet \(e\.g\. 'text'\): a "
        "numeric column turned into text",
    ):
        prepare([a, b], tmp_path / "out")


def test_id_with_nulls_and_bad_split(tmp_path: Path) -> None:
    df = frame(20)
    df["id"] = [float(i) if i != 4 else np.nan for i in range(20)]
    with pytest.raises(DataValidationError, match=r"id column 'id' has 1 missing.*row 4"):
        prepare(df, tmp_path / "out")
    with pytest.raises(DataValidationError, match="sum to 1"):
        prepare(frame(20), tmp_path / "out", split=(0.5, 0.2, 0.2))
    tiny = pd.DataFrame({"x": [1.0, 2.0, 3.0], "target": [0, 1, 0]})
    with pytest.raises(DataValidationError, match=r"split '(val|test)' is empty"):
        prepare(tiny, tmp_path / "out")


# ---------------------------------------------------------------- missing values


def test_missing_values_imputed_and_counted(tmp_path: Path) -> None:
    df = frame(1000)
    df["n"] = df["n"].astype("float64")
    df.loc[[1, 2, 3], "n"] = np.nan
    df.loc[[4, 5], "x"] = np.nan
    df.loc[[6], "color"] = None
    df["flag"] = pd.array([True, False, None, *([True] * 997)], dtype="boolean")
    df["id"] = np.arange(1000)
    m = prepare(df, tmp_path / "out")
    assert m.missing == {"x": 2, "n": 3, "color": 1, "flag": 1}
    train = load_split(m, "train")
    expected_median = float(np.nanmedian(df.loc[df["id"].isin(train["id"]), "n"]))
    assert m.imputation["n"] == pytest.approx(expected_median)
    everything = pd.concat([load_split(m, s) for s in ("train", "val", "test")]).set_index("id")
    assert everything.loc[[1, 2, 3], "n"].eq(expected_median).all()
    assert everything.loc[6, "color"] == "missing"
    assert everything.loc[2, "flag"] == "missing"
    assert everything.loc[0, "flag"] == "True"
    assert not everything[["x", "n"]].isna().any().any()


# ---------------------------------------------------------------- splits


def test_split_fractions_and_manifest(tmp_path: Path) -> None:
    df = make_customers(20_000, seed=1)
    path = write_parquet(df, tmp_path / "c.parquet")
    m = prepare(path, tmp_path / "out")
    rows = {k: v.rows for k, v in m.splits.items()}
    assert sum(rows.values()) == 20_000
    for name, frac in zip(("train", "val", "test"), (0.7, 0.15, 0.15), strict=True):
        assert abs(rows[name] / 20_000 - frac) < 0.015
    doc = json.loads((m.path / "manifest.json").read_text())
    assert doc["sha256"] == m.sha256 and m.path.name == m.sha256[:16]
    assert doc["split"]["key"] == ["id"] and doc["feature_spec"]["id_column"] == "id"
    for name, info in m.splits.items():
        assert data_mod.file_sha256(m.split_path(name)) == info.sha256
        part = load_split(m, name)
        assert list(part.columns) == ["id", *m.spec.features, "target"]
        assert info.positives == int(part["target"].sum())
        assert info.negatives == len(part) - info.positives
    loaded = load_manifest(m.path)
    assert loaded.to_dict() == m.to_dict()
    assert load_manifest(m.path / "manifest.json").sha256 == m.sha256


def test_same_input_reuses_folder(tmp_path: Path) -> None:
    path = write_parquet(frame(300), tmp_path / "a.parquet")
    first = prepare(path, tmp_path / "out")
    second = prepare(path, tmp_path / "out")
    assert first.path == second.path and second.created_at == first.created_at
    assert [p.name for p in (tmp_path / "out").iterdir()] == [first.path.name]


def test_tampered_split_detected(tmp_path: Path) -> None:
    m = prepare(frame(300), tmp_path / "out")
    pq.write_table(pa.table({"x": [1]}), m.split_path("test"))
    with pytest.raises(DataValidationError, match="checksum mismatch"):
        load_split(m.path, "test", verify=True)


def test_failed_preparation_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr("model.data.prepared._split_infos", boom)
    with pytest.raises(RuntimeError):
        prepare(frame(300), tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("with_id", [True, False])
def test_appending_rows_keeps_earlier_splits(tmp_path: Path, with_id: bool) -> None:
    base = make_customers(4000, seed=3)
    batch = make_customers(3000, seed=3, drift=0.5, batch=1)
    if not with_id:  # key = hash of the raw values; look rows up by a continuous feature
        base, batch = base.drop(columns="id"), batch.drop(columns="id")
    base_path = write_parquet(base, tmp_path / "raw" / "base.parquet")
    incoming = tmp_path / "incoming"
    write_parquet(batch.iloc[:1500], incoming / "date=2025-01-01" / "part-0.parquet")
    key = "id" if with_id else "account_age_days"
    first = prepare([base_path, incoming], tmp_path / "out")
    write_parquet(batch.iloc[1500:], incoming / "date=2025-01-02" / "part-0.parquet")
    second = prepare([base_path, incoming], tmp_path / "out")
    assert (first.rows, second.rows) == (5500, 7000)
    assert second.split["key"] == (["id"] if with_id else sorted([*DEMO_FEATURES, "target"]))
    assert "date" in second.spec.excluded and "date" not in second.spec.features
    assert any("date=2025-01-02" in f for f in second.sources)
    assert [d["files"] for d in second.source_details] == [1, 2]
    before, after = split_of(first, key), split_of(second, key)
    assert all(after[k] == v for k, v in before.items())
    earlier_test = {k for k, v in before.items() if v == "test"}
    assert earlier_test and earlier_test.isdisjoint(load_split(second, "train")[key])


def test_csv_and_parquet_copies_split_identically(tmp_path: Path) -> None:
    df = make_customers(3000, seed=5).drop(columns="id")
    df["region_name"] = np.where(df["region"] > 2, "north", "south")
    df.loc[::97, "income"] = np.nan
    pq_copy = df.copy()
    pq_copy["num_purchases"] = pq_copy["num_purchases"].astype("float64")  # 1.0 vs 1 in CSV
    pq_copy = pq_copy[list(reversed(pq_copy.columns))]  # column order must not matter
    a = write_parquet(pq_copy, tmp_path / "copy.parquet")
    b = tmp_path / "copy.csv"
    df.to_csv(b, index=False)
    ma = prepare(a, tmp_path / "out_pq")
    mb = prepare(b, tmp_path / "out_csv")
    assert ma.split["key"] == mb.split["key"] and "id" not in ma.split["key"]
    for name in ("train", "val", "test"):
        left = load_split(ma, name)[["age", "income", "target"]].reset_index(drop=True)
        right = load_split(mb, name)[["age", "income", "target"]].reset_index(drop=True)
        pd.testing.assert_frame_equal(left, right)
    assert ma.missing["income"] == mb.missing["income"] == len(df.loc[::97])


def test_row_keys_canonical_values() -> None:
    ints = pa.table({"a": pa.array([1, 2, 3], pa.int64()), "b": ["x", "y", None]})
    floats = pa.table({"b": ["x", "y", None], "a": pa.array([1.0, 2.0, 3.0])})
    assert (row_keys(ints, ["a", "b"]) == row_keys(floats, ["b", "a"])).all()
    # a column that is null in a row contributes nothing: adding one keeps old keys
    wider = ints.append_column("c", pa.array([None, None, None], pa.float64()))
    assert (row_keys(ints, ["a", "b"]) == row_keys(wider, ["a", "b", "c"])).all()
    # different values, different keys; a different salt moves rows
    assert len(set(row_keys(ints, ["a", "b"]).tolist())) == 3
    assert (row_keys(ints, ["a"], salt="x") != row_keys(ints, ["a"], salt="y")).all()
    neg = pa.table({"a": pa.array([-0.0, 0.0])})
    assert row_keys(neg, ["a"])[0] == row_keys(neg, ["a"])[1]


def test_split_independent_of_row_order(tmp_path: Path) -> None:
    df = make_customers(2000, seed=9)
    m1 = prepare(df, tmp_path / "a")
    m2 = prepare(df.sample(frac=1.0, random_state=0), tmp_path / "b")
    assert split_of(m1, "id") == split_of(m2, "id")


def test_time_split_puts_newest_rows_in_test(tmp_path: Path) -> None:
    df = frame(1000)
    df["ts"] = pd.date_range("2025-01-01", periods=1000, freq="h").astype(str)
    path = _csv(tmp_path, df.to_csv(index=False), "timed.csv")
    m = prepare(path, tmp_path / "out", timestamp_column="ts", time_split=True)
    train, val, test = (load_split(m, s) for s in ("train", "val", "test"))
    assert m.split["method"] == "time" and "ts" not in m.spec.features
    assert train["ts"].max() < val["ts"].min() and val["ts"].max() < test["ts"].min()
    assert [len(train), len(val), len(test)] == [700, 150, 150]
    with pytest.raises(DataValidationError, match="needs a declared timestamp"):
        prepare(path, tmp_path / "out", time_split=True)


# ---------------------------------------------------------------- review fixes


def test_csv_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    values = tmp_path / "latin1.csv"
    values.write_bytes(b"x,c,target\n1,caf\xe9,0\n2,b,1\n")
    with pytest.raises(DataValidationError, match=r"latin1\.csv: column 'c' is not UTF-8"):
        prepare(values, tmp_path / "out")
    header = tmp_path / "header.csv"
    header.write_bytes(b"\xff\xfex,target\n1,0\n")
    with pytest.raises(DataValidationError, match=r"header\.csv: the header is not UTF-8"):
        prepare(header, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_nested_column_is_refused_as_feature_and_hashable_when_excluded(tmp_path: Path) -> None:
    df = frame(200)
    df["tags"] = [[i % 3, 1] for i in range(200)]
    path = write_parquet(df, tmp_path / "nested.parquet")
    with pytest.raises(DataValidationError, match=r"nested\.parquet: column 'tags' has type list"):
        prepare(path, tmp_path / "out")
    m = prepare(path, tmp_path / "out", exclude=["tags"])  # row key hashes the list values
    assert "tags" in m.spec.excluded and m.split["key"] == sorted(
        ["color", "n", "tags", "target", "x"]
    )
    assert sum(s.rows for s in m.splits.values()) == 200


def test_unknown_excluded_column_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataValidationError, match=r"excluded column\(s\) \['colour'\]"):
        prepare(frame(100), tmp_path / "out", exclude=["colour"])


def test_empty_split_from_duplicate_ids_says_why(tmp_path: Path) -> None:
    df = frame(100).assign(id="same")
    path = write_parquet(df, tmp_path / "dup.parquet")
    with pytest.raises(DataValidationError, match=r"dup\.parquet: split '\w+' is empty: 99 of 100"):
        prepare(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_out_root_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(DataValidationError, match="not a folder"):
        prepare(frame(100), tmp_path / "file")


@pytest.mark.parametrize(
    ("doc", "pattern"),
    [
        ([1, 2], "must be a JSON object"),
        ({"numeric": "x"}, r"'numeric' must be a list"),
        ({"numeric": ["x"], "id_column": 5}, r"'id_column' must be a column name"),
    ],
)
def test_feature_spec_from_dict_checks_types(doc: object, pattern: str) -> None:
    with pytest.raises(DataValidationError, match=pattern):
        FeatureSpec.from_dict(doc)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("spec", "pattern"),
    [
        (FeatureSpec(numeric=["x", "n", "target"], categorical=["color"]), r"'target' \(target\)"),
        (FeatureSpec(numeric=["x", "n", "x"], categorical=["color"]), r"more than once.*'x'"),
        (
            FeatureSpec(numeric=["x", "n"], categorical=["color"], excluded=["n"]),
            r"'n' \(excluded\)",
        ),
    ],
)
def test_spec_giving_a_column_two_roles_is_refused(
    tmp_path: Path, spec: FeatureSpec, pattern: str
) -> None:
    path = write_parquet(frame(100), tmp_path / "a.parquet")
    with pytest.raises(DataValidationError, match=pattern):
        prepare(path, tmp_path / "out", spec=spec)
    with pytest.raises(DataValidationError, match="as id or timestamp"):
        prepare(path, tmp_path / "out", id_column="target")


def test_empty_strings_are_missing_so_csv_and_parquet_agree(tmp_path: Path) -> None:
    df = frame(400)
    df["color"] = df["color"].where(np.arange(400) % 5 != 0, "")  # "" in Parquet, empty in CSV
    a = write_parquet(df, tmp_path / "e.parquet")
    b = tmp_path / "e.csv"
    df.to_csv(b, index=False)
    ma, mb = prepare(a, tmp_path / "o1"), prepare(b, tmp_path / "o2")
    assert ma.missing["color"] == mb.missing["color"] == 80
    for name in ("train", "val", "test"):
        pd.testing.assert_frame_equal(load_split(ma, name), load_split(mb, name))
    assert "" not in set(load_split(ma, "train")["color"])


def test_time_split_with_too_few_timestamps_says_why(tmp_path: Path) -> None:
    df = frame(200).assign(day=["2025-01-01"] * 150 + ["2025-01-02"] * 50)
    with pytest.raises(
        DataValidationError, match=r"split '\w+' is empty: the timestamps \['day'\]"
    ):
        prepare(df, tmp_path / "out", timestamp_column="day", time_split=True)
