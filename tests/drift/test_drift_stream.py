"""Drift of columns larger than memory: the external sort, the statistics over sorted files,
the chunked level counts, and the Parquet streaming path, each against the in-memory path
(an independent reference: ``np.sort`` and the whole-column functions)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from drift_compare import assert_same_report

from model.data import FeatureSpec
from model.data.demo import make_customers
from model.drift import categorical_drift, numeric_drift
from model.drift.categorical import LevelCounts
from model.drift.numeric import sorted_drift
from model.drift.stream import stream_column_drift
from model.errors import DataValidationError, DriftInputError
from model.external import MIN_BUDGET, sort_to_file

EXACT = ("statistic", "p_value", "psi", "reference_missing", "current_missing")
SUMMED = ("distance",)  # W1 / sd: a sum of products, equal up to rounding


def assert_same_drift(a, b) -> None:
    """Same numbers: the exact ones bit for bit, the summed ones to 1e-12 relative."""
    for key in EXACT:
        assert getattr(a, key) == getattr(b, key), key
    for key in SUMMED:
        assert getattr(b, key) == pytest.approx(getattr(a, key), rel=1e-12, abs=1e-15), key
    assert a.summary.keys() == b.summary.keys()
    for key, value in a.summary.items():
        assert b.summary[key] == pytest.approx(value, rel=1e-12, abs=1e-15), key
    assert a.histogram == b.histogram
    assert (a.unseen_levels, a.unseen_share, a.unseen_examples) == (
        b.unseen_levels,
        b.unseen_share,
        b.unseen_examples,
    )


def chunks(values: np.ndarray, size: int) -> list[np.ndarray]:
    return [values[i : i + size] for i in range(0, values.size, size)]


def tied(rng: np.random.Generator, n: int, shift: float = 0.0, inf: bool = False) -> np.ndarray:
    """Rounded normals (many ties across runs and blocks), some missing; an infinity too."""
    x = np.round(rng.normal(shift, 1.0, n), 1)
    x[rng.random(n) < 0.05] = np.nan
    if inf and n > 10:
        x[3] = np.inf
    return x


@pytest.mark.parametrize(
    "n, budget, chunk",
    [
        (0, MIN_BUDGET, 10),
        (1, MIN_BUDGET, 1),
        (5_000, MIN_BUDGET, 7),
        (300_000, MIN_BUDGET, 4_099),
        (300_000, 1 << 20, 50_000),
    ],
)
def test_external_sort_equals_numpy_sort(tmp_path: Path, n: int, budget: int, chunk: int) -> None:
    x = tied(np.random.default_rng(n), n, inf=True)
    col = sort_to_file(chunks(x, chunk), tmp_path / "sorted", budget)
    expected = np.sort(x[~np.isnan(x)])
    assert (col.size, col.total) == (expected.size, n)
    assert np.array_equal(col.values(), expected)
    assert np.array_equal(np.concatenate([np.empty(0), *col.blocks()]), expected)
    if expected.size:
        positions = np.array([0, expected.size // 2, expected.size - 1])
        assert np.array_equal(col.at(positions), expected[positions])
    assert not (tmp_path / "sorted.runs").exists()  # the runs' scratch file is gone


def test_external_sort_refuses_a_tiny_budget(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="below"):
        sort_to_file([np.arange(3.0)], tmp_path / "s", MIN_BUDGET - 1)


@pytest.mark.parametrize("n, m", [(40, 60), (2_000, 3_000), (120_000, 90_000)])
def test_drift_from_sorted_files_equals_the_in_memory_path(tmp_path: Path, n: int, m: int) -> None:
    """Many runs and many merge steps (the smallest budget), tie runs split between steps."""
    rng = np.random.default_rng(n)
    ref, cur = tied(rng, n), tied(rng, m, shift=0.05)
    expected = numeric_drift("x", ref, cur, 10)
    r = sort_to_file(chunks(ref, 1_001), tmp_path / "r", MIN_BUDGET)
    c = sort_to_file(chunks(cur, 999), tmp_path / "c", MIN_BUDGET)
    assert_same_drift(expected, sorted_drift("x", r, c, 10))


def test_drift_of_continuous_values_from_sorted_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    ref, cur = rng.lognormal(size=200_000), rng.lognormal(0.01, 1.0, size=150_000)
    r = sort_to_file(chunks(ref, 30_000), tmp_path / "r", 1 << 18)
    c = sort_to_file(chunks(cur, 30_000), tmp_path / "c", 1 << 18)
    assert_same_drift(numeric_drift("x", ref, cur, 10), sorted_drift("x", r, c, 10))


@pytest.mark.parametrize("kind", ["text", "integer", "integer_missing", "category", "boolean"])
def test_level_counts_by_chunks_equal_the_whole_column(kind: str) -> None:
    rng = np.random.default_rng(3)
    n = 5_000
    if kind == "text":
        ref = pd.Series(rng.choice(["a", "b", "c", None], n, p=[0.5, 0.3, 0.15, 0.05]))
        cur = pd.Series(rng.choice(["b", "a", "d", None], n, p=[0.4, 0.3, 0.2, 0.1]))
    elif kind.startswith("integer"):
        ref = pd.Series(rng.integers(0, 5, n))
        cur = pd.Series(rng.integers(1, 7, n))
        if kind == "integer_missing":
            ref = ref.astype(float).mask(rng.random(n) < 0.1)
    elif kind == "category":
        ref = pd.Series(rng.choice(list("pqrs"), n)).astype("category")
        cur = pd.Series(rng.choice(list("qrst"), n)).astype("category")
    else:
        ref = pd.Series(rng.random(n) < 0.3)
        cur = pd.Series(rng.random(n) < 0.4)
    whole = categorical_drift("c", ref, cur)
    parts = []
    for series in (ref, cur):
        counts = LevelCounts()
        for start in range(0, n, 777):
            counts.add(series.iloc[start : start + 777])
        parts.append(counts)
    from model.drift.categorical import counts_drift

    assert_same_drift(whole, counts_drift("c", *parts))


def write_parquet(frame: pd.DataFrame, folder: Path, files: int, row_group: int) -> Path:
    """``frame`` as ``files`` Parquet files in ``folder``, each in row groups of ``row_group``."""
    folder.mkdir(parents=True)
    for i, part in enumerate(np.array_split(np.arange(len(frame)), files)):
        table = pa.Table.from_pandas(frame.iloc[part], preserve_index=False)
        pq.write_table(table, folder / f"part-{i:03d}.parquet", row_group_size=row_group)
    return folder


def test_stream_column_drift_equals_detect_drift_on_customers(tmp_path: Path) -> None:
    """Every feature of the demo customers (numeric with ties, integer and text levels),
    current data shifted, read from several Parquet files in small batches."""
    from model.data import read_table
    from model.drift import detect_drift, spec_for_reference

    frames = []
    for rows, seed, drift in ((40_000, 1, 0.0), (30_000, 2, 0.3)):
        frame = make_customers(rows, seed=seed, drift=drift)
        rng = np.random.default_rng(seed)
        frame["region"] = ("r" + frame["region"].astype(str)).mask(rng.random(rows) < 0.02)
        frame["tier"] = pd.Series(rng.integers(0, 4 + seed, rows)).astype(float)
        frame["tier"] = frame["tier"].mask(rng.random(rows) < 0.03 * seed)  # integers, missing
        frames.append(frame)
    ref_frame, cur_frame = frames
    ref = write_parquet(ref_frame, tmp_path / "ref", files=3, row_group=5_000)
    cur = write_parquet(cur_frame, tmp_path / "cur", files=2, row_group=4_000)
    reference, current = read_table(ref), read_table(cur)
    inferred = spec_for_reference(reference)
    categorical = [*inferred.categorical, "is_premium", "tier"]
    spec = FeatureSpec(
        numeric=[c for c in inferred.numeric if c not in categorical],
        categorical=categorical,
        target=inferred.target,
        id_column=inferred.id_column,
    )
    report = detect_drift(reference, current, spec)
    assert len(spec.numeric) >= 5 and "region" in spec.categorical
    for name in spec.features:
        kind = "numeric" if name in spec.numeric else "categorical"
        streamed = stream_column_drift(
            name, kind, ref, cur, memory_budget=MIN_BUDGET * 2, scratch_dir=tmp_path
        )
        assert_same_drift(report.features[name], streamed)
    assert {p.name for p in tmp_path.iterdir()} == {"ref", "cur"}  # no scratch files left


def test_stream_column_drift_names_bad_input(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "t": ["a", "b", "c"], "e": [None, None, None]})
    src = write_parquet(frame, tmp_path / "src", files=1, row_group=2)
    with pytest.raises(DriftInputError, match="column 'y' missing"):
        stream_column_drift("y", "numeric", src, src)
    with pytest.raises(DriftInputError, match="not numeric"):
        stream_column_drift("t", "numeric", src, src)
    with pytest.raises(DriftInputError, match="only missing values"):
        stream_column_drift("e", "numeric", src, src)
    with pytest.raises(DataValidationError, match="no such file"):
        stream_column_drift("x", "numeric", tmp_path / "nothing", src)
    with pytest.raises(DriftInputError, match="below"):
        stream_column_drift("x", "numeric", src, src, memory_budget=1000)


_RSS_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from model.drift.numeric import numeric_drift
    from model.drift.stream import stream_column_drift
    from model.data import read_table

    path, mode, budget = sys.argv[1], sys.argv[2], int(sys.argv[3])
    def status(key):  # kB
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(key + ":"))

    numeric_drift("warm", np.arange(50.0), np.arange(60.0), 10)  # imports and first calls
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # the peak (VmHWM) starts again from the current RSS
    before = status("VmRSS")
    if mode == "stream":
        fd = stream_column_drift("x", "numeric", path + "/ref", path + "/cur",
                                 memory_budget=budget, scratch_dir=path)
    else:
        ref, cur = read_table(path + "/ref"), read_table(path + "/cur")
        fd = numeric_drift("x", ref["x"].to_numpy(), cur["x"].to_numpy(), 10)
    after = status("VmHWM")
    print(json.dumps({"growth_mib": (after - before) / 1024, "statistic": fd.statistic,
                      "p_value": fd.p_value, "psi": fd.psi}))
    """
)


def test_streamed_column_stays_within_its_memory_budget(tmp_path: Path) -> None:
    """3M + 3M rows (48 MB of floats; the in-memory path peaks several times that) streamed
    with a 16 MiB budget: the process's peak RSS grows by at most 48 MiB, same numbers."""
    rng = np.random.default_rng(11)
    for name, shift in (("ref", 0.0), ("cur", 0.02)):
        folder = tmp_path / name
        folder.mkdir()
        with pq.ParquetWriter(folder / "data.parquet", pa.schema([("x", pa.float64())])) as w:
            for _ in range(6):
                w.write_table(pa.table({"x": np.round(rng.normal(shift, 1, 500_000), 3)}))
    runs = {}
    for mode in ("stream", "memory"):
        out = subprocess.run(
            [sys.executable, "-c", _RSS_SCRIPT, str(tmp_path), mode, str(16 << 20)],
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        )
        runs[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    stream, memory = runs["stream"], runs["memory"]
    assert {k: stream[k] for k in ("statistic", "p_value", "psi")} == {
        k: memory[k] for k in ("statistic", "p_value", "psi")
    }
    assert stream["growth_mib"] <= 48, stream
    assert memory["growth_mib"] > 2 * stream["growth_mib"], runs  # the check can tell them apart
    assert math.isfinite(stream["p_value"])


def test_external_sort_leaves_nothing_when_its_input_fails(tmp_path: Path) -> None:
    def failing():
        yield np.arange(100_000.0)
        raise DriftInputError("batch 2 unreadable")

    with pytest.raises(DriftInputError, match="batch 2"):
        sort_to_file(failing(), tmp_path / "s", MIN_BUDGET)
    assert list(tmp_path.iterdir()) == []


class _Scorer:
    """A model stand-in: a fixed function of two features (missing values as 0); it
    records the frames it scored."""

    def __init__(self) -> None:
        self.frames: list[pd.DataFrame] = []

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        self.frames.append(df)
        x = df["income"].fillna(0).to_numpy(float) / 1e5 + df["age"].fillna(0).to_numpy(float) / 50
        return 1 / (1 + np.exp(-x))


def monitor_scenario(tmp_path: Path) -> tuple[Path, dict[str, Path], FeatureSpec]:
    """A reference and two batches in Parquet files of several row groups: text and
    integer-coded categoricals with missing values, an integer column with missing values in
    one batch only, a feature all missing in one batch (a schema change), an extra column,
    the target. Returns the reference, the batches (label -> folder) and the spec."""
    from model.data import read_table
    from model.drift import spec_for_reference

    def customers(rows: int, seed: int, drift: float) -> pd.DataFrame:
        frame = make_customers(rows, seed=seed, drift=drift)
        rng = np.random.default_rng(seed)
        frame["region"] = ("r" + frame["region"].astype(str)).mask(rng.random(rows) < 0.02)
        frame["tier"] = pd.Series(rng.integers(0, 7 if seed == 2 else 5, rows))  # codes, ...
        if seed != 2:  # ... with missing values but in the first batch
            frame["tier"] = frame["tier"].astype(float).mask(rng.random(rows) < 0.05)
        flag = pd.Series(rng.random(rows) < 0.3 + 0.1 * seed)
        plan = pd.Series(rng.integers(1, 4, rows)).astype(float)
        if seed == 1:  # the reference: flags with missing values (objects), plans as numbers
            frame["flag"] = flag.astype(object).mask(rng.random(rows) < 0.05)
            frame["plan"] = plan.mask(rng.random(rows) < 0.05)
            frame.loc[rows - 3 :, "plan"] = 1.5  # late rows, not integral: the whole column
            # is then text of floats ("1.0"), decided over every batch
        else:  # the batches: plain flags, plans as the text prepared data holds
            frame["flag"] = flag
            frame["plan"] = plan.astype(int).astype(str)
        return frame

    ref_frame = customers(30_000, 1, 0.0)
    batch_1 = customers(12_000, 2, 0.2)
    batch_2 = customers(9_000, 3, 0.4)
    batch_2["num_purchases"] = (
        batch_2["num_purchases"].astype(float).mask(np.arange(len(batch_2)) % 7 == 0)
    )  # integers with missing values in this batch only
    batch_2["is_premium"] = np.nan  # all missing: a schema change
    batch_1["campaign"] = "spring"  # not in the reference: ignored, listed
    ref = write_parquet(ref_frame, tmp_path / "ref", files=2, row_group=6_000)
    parts = {
        "date=2026-01-01": write_parquet(batch_1, tmp_path / "b1", files=2, row_group=2_500),
        "date=2026-01-08": write_parquet(batch_2, tmp_path / "b2", files=1, row_group=2_000),
    }
    inferred = spec_for_reference(read_table(ref))
    categorical = [*inferred.categorical, "tier", "flag", "plan"]
    spec = FeatureSpec(
        numeric=[c for c in inferred.numeric if c not in categorical],
        categorical=list(dict.fromkeys(categorical)),
        target=inferred.target,
        id_column=inferred.id_column,
    )
    return ref, parts, spec


def test_stream_drift_report_equals_the_monitors_in_memory_report(tmp_path: Path) -> None:
    """Two batches as the monitor reads them (whole, then concatenated), against the same
    files streamed (:func:`monitor_scenario`), the model's sampled scores too."""
    from model.cycle.monitor import read_batches
    from model.data import read_table
    from model.drift import DriftSettings, detect_drift
    from model.drift.stream import stream_drift

    ref, parts, spec = monitor_scenario(tmp_path)
    reference = read_table(ref)
    current, frames = read_batches(list(parts.values()))
    frames = dict(zip(parts, frames.values(), strict=True))
    settings = DriftSettings(max_model_rows=5_000, seed=3)
    scorers = _Scorer(), _Scorer()
    names = {"reference_path": "ref", "current_path": ["b1", "b2"]}
    expected = detect_drift(
        reference, current, spec, settings, model=scorers[0], current_parts=frames, **names
    )
    streamed = stream_drift(
        ref,
        parts,
        spec,
        settings,
        memory_budget=MIN_BUDGET * 4,
        model=scorers[1],
        scratch_dir=tmp_path,
        **names,
    )
    assert expected.schema_changes == {"is_premium": "all_missing"}
    assert expected.current["extra_columns"] == ["campaign"]
    assert expected.prediction is not None and expected.target is not None
    assert_same_report(expected.to_dict(), streamed.to_dict())
    assert {"1.0", "1.5", "1"} <= set(expected.features["plan"].histogram["levels"])
    assert set(expected.features["flag"].histogram["levels"]) == {"True", "False", "<missing>"}
    for seen, streamed_seen in zip(scorers[0].frames, scorers[1].frames, strict=True):
        assert list(seen.index) == list(streamed_seen.index)  # the same rows were scored
        pd.testing.assert_frame_equal(
            seen[spec.features].reset_index(drop=True),
            streamed_seen[spec.features].reset_index(drop=True),
            check_dtype=False,
        )


def test_stream_drift_rejects_what_detect_drift_rejects(tmp_path: Path) -> None:
    from model.drift.stream import stream_drift

    ref = write_parquet(pd.DataFrame({"x": [1.0, 2.0, 3.0], "t": [0, 1, 0]}), tmp_path / "r", 1, 2)
    text = write_parquet(pd.DataFrame({"x": ["a", "b", "c"]}), tmp_path / "c", 1, 2)
    spec = FeatureSpec(numeric=["x"], categorical=[], target="t")
    with pytest.raises(DriftInputError, match=r"column 'x' has different types: .*e\.g\. 'a'"):
        stream_drift(ref, text, spec, memory_budget=MIN_BUDGET)
    csv = tmp_path / "c.csv"
    csv.write_text("x\n1\n")
    with pytest.raises(DriftInputError, match="CSV or partitioned data is read whole"):
        stream_drift(ref, csv, spec, memory_budget=MIN_BUDGET)


@pytest.mark.parametrize(
    "values",
    [
        [1.0, 2.0, 3.0, 4.0, float("inf"), 6.0],  # an infinite number, in the second file
        ["1", "2", "3", "4", "x", "5"],  # mostly numbers: mixed types
    ],
)
def test_streamed_sources_are_checked_as_read_table_checks_them(
    tmp_path: Path, values: list
) -> None:
    """The same one-line error, naming the source, the column and the row counted over the
    source's files and batches, as reading the source whole."""
    from model.data import read_table
    from model.drift.stream import stream_drift

    ref = write_parquet(pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0]}), tmp_path / "r", 1, 2)
    bad = write_parquet(pd.DataFrame({"x": values}), tmp_path / "c", files=2, row_group=2)
    with pytest.raises(DataValidationError) as whole:
        read_table(bad)
    with pytest.raises(DataValidationError) as streamed:
        stream_drift(ref, bad, FeatureSpec(numeric=["x"], categorical=[]), memory_budget=MIN_BUDGET)
    assert str(streamed.value) == str(whole.value)
    assert "row 4" in str(whole.value)


def test_streamed_sources_drop_index_columns_and_leave_partitions_whole(tmp_path: Path) -> None:
    from model.data import parquet_layout
    from model.drift.sources import ParquetSource, in_memory_size

    frame = pd.DataFrame({"Unnamed: 0": [0, 1, 2], "x": [1.0, 2.0, 3.0], "t": ["a", "b", None]})
    src = ParquetSource.open(write_parquet(frame, tmp_path / "s", files=1, row_group=2))
    assert list(src.profile.columns) == ["x", "t"]  # as read_table drops the saved index
    assert in_memory_size([tmp_path / "s"]) == 3 * (8 + 8 + 64)
    part = tmp_path / "p" / "region=north"
    part.mkdir(parents=True)
    frame.to_parquet(part / "a.parquet", index=False)
    assert parquet_layout(tmp_path / "p") is None  # the folder names a column: read whole
    assert in_memory_size([tmp_path / "p"]) is None


def test_a_corrupt_page_is_named_as_read_table_names_it(tmp_path: Path) -> None:
    from model.data import read_table
    from model.drift.stream import stream_drift

    ref = write_parquet(pd.DataFrame({"x": [1.0, 2.0, 3.0]}), tmp_path / "r", 1, 2)
    path = tmp_path / "c.parquet"
    values = np.arange(10_000, dtype=float)
    pq.write_table(pa.table({"x": values}), path, write_page_checksum=True, compression="none")
    raw = bytearray(path.read_bytes())
    spot = raw.find(values[5_000].tobytes())
    raw[spot] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(DataValidationError, match="checksum") as whole:
        read_table(path)
    with pytest.raises(DataValidationError, match="checksum") as streamed:
        stream_drift(
            ref, path, FeatureSpec(numeric=["x"], categorical=[]), memory_budget=MIN_BUDGET
        )
    assert str(streamed.value) == str(whole.value)


def test_text_checked_as_a_dictionary_counts_as_the_plain_text() -> None:
    """The opening pass reads text as dictionaries and matches each distinct value once: the
    same counts, the same first row and value of the mixed-types error, piece by piece."""
    import pyarrow as pa

    from model.data.checks import ColumnCheck

    rng = np.random.default_rng(4)
    pool = np.array(["1", " 2.5 ", "-3e4", "", "  ", "x", "7", ".5", "a b"], dtype=object)
    for trial in range(30):
        pieces = []
        for _ in range(rng.integers(1, 5)):
            values = list(rng.choice(pool, size=int(rng.integers(0, 40))))
            values = [None if rng.random() < 0.15 else v for v in values]
            pieces.append(pa.array(values, pa.string()))
        plain, coded = ColumnCheck(offset=trial), ColumnCheck(offset=trial)
        whole = pa.concat_arrays(pieces).dictionary_encode()  # slices keep unused values
        start = 0
        for piece in pieces:
            plain.add(piece)
            coded.add(whole.slice(start, len(piece)))
            start += len(piece)
        assert vars(coded) == vars(plain)
    assert plain.first_text is not None  # the error's row and value were compared
