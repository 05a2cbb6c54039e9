"""Batches as users deliver them (issue 24, item 4): any ``key=value`` folder and plain
Parquet/CSV files directly in ``incoming/`` are batches, in the documented order; what is not
read is listed (one warning each); a batch's id is its name in ``incoming/`` everywhere (the
manifest, the ``__batch__`` column, the cycle's sources, the drift monitor)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from model.cycle.config import RetrainingConfig, select_sources
from model.cycle.evaluation import manifest_batches
from model.cycle.models_config import BUILTIN_DEFAULTS
from model.cycle.monitor import batch_name
from model.data import BATCH_COLUMN, load_manifest, prepare
from model.data.batches import batch_sort_key, scan_incoming
from model.data.demo import make_customers
from model.drift import newest_batches
from model.settings import Settings


def _write(path: Path, df: pd.DataFrame) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".csv":
        df.to_csv(path, index=False)
    else:
        df.to_parquet(path, index=False)
    return path


@pytest.fixture
def incoming(tmp_path: Path) -> Path:
    root = tmp_path / "incoming"
    rows = make_customers(400, seed=5)
    _write(root / "year=2016" / "part-0.parquet", rows.iloc[:100])
    _write(root / "dt=2015-12-31" / "a.csv", rows.iloc[100:200])
    _write(root / "2017.parquet", rows.iloc[200:300])
    _write(root / "2014.csv", rows.iloc[300:400])
    (root / "notes.txt").write_text("delivered by hand\n")
    (root / ".quarantine" / "date=2015-01-01").mkdir(parents=True)  # set aside: never read
    (root / "_SUCCESS").write_text("")  # a writer's marker: never data
    return root


def test_key_value_folders_and_plain_files_are_batches_in_natural_order(incoming: Path) -> None:
    listing = scan_incoming(incoming)
    assert [b.id for b in listing.batches] == [
        "2014.csv",
        "dt=2015-12-31",
        "year=2016",
        "2017.parquet",
    ]
    assert [i.path.name for i in listing.ignored] == ["notes.txt"]  # one warning, naming it
    assert "notes.txt" in listing.warnings()[0] and "not read" in listing.warnings()[0]


def test_the_order_compares_numbers_as_numbers_and_never_looks_at_mtimes(tmp_path: Path) -> None:
    names = ["part=10", "part=9", "date=2026-01-31", "date=2026-02-01", "2026-01-05.parquet"]
    assert sorted(names, key=batch_sort_key) == [
        "part=9",
        "part=10",
        "2026-01-05.parquet",
        "date=2026-01-31",
        "date=2026-02-01",
    ]
    root = tmp_path / "incoming"
    df = make_customers(20, seed=1)
    old = _write(root / "date=2026-02-01" / "p.parquet", df)
    _write(root / "date=2026-01-31" / "p.parquet", df)
    os.utime(old.parent, (0, 0))  # the newer batch by name is the older by mtime
    assert [p.name for p in newest_batches(root, 1)] == ["date=2026-02-01"]


def test_what_is_not_read_is_listed_with_why(tmp_path: Path) -> None:
    root = tmp_path / "incoming"
    _write(root / "date=2026-01-01" / "p.parquet", make_customers(10, seed=1))
    (root / "date=2026-01-01" / "README.md").write_text("x")
    (root / "misc").mkdir()
    (root / "date=2026-01-02").mkdir()
    os.mkfifo(root / "pipe.parquet")
    reasons = {i.path.name: i.reason for i in scan_incoming(root).ignored}
    assert reasons["README.md"] == "not a Parquet or CSV file"
    assert "key=value" in reasons["misc"]
    assert "without a Parquet or CSV file" in reasons["date=2026-01-02"]
    assert reasons["pipe.parquet"] == "a FIFO"
    assert [b.id for b in scan_incoming(root).batches] == ["date=2026-01-01"]


def test_prepare_names_each_rows_batch_by_its_name_in_incoming(incoming: Path) -> None:
    base = _write(incoming.parent / "raw" / "base.parquet", make_customers(600, seed=2))
    batches = scan_incoming(incoming).paths
    m = prepare([base, *batches], incoming.parent / "prepared", batch_root=incoming)
    assert m.batches == ["2014.csv", "dt=2015-12-31", "year=2016", "2017.parquet"]
    assert manifest_batches(m.path) == m.batches
    rows = pd.concat(pq.read_table(m.split_path(s)).to_pandas() for s in ("train", "val", "test"))
    counts = rows[BATCH_COLUMN].value_counts(dropna=False).to_dict()
    assert {k: v for k, v in counts.items() if isinstance(k, str)} == {
        "2014.csv": 100,
        "dt=2015-12-31": 100,
        "year=2016": 100,
        "2017.parquet": 100,
    }
    assert rows[BATCH_COLUMN].isna().sum() == 600  # the base data's rows
    assert "year" not in m.spec.features and "dt" not in m.spec.features


def test_a_manifest_without_batches_still_names_its_date_folders(tmp_path: Path) -> None:
    base = _write(tmp_path / "base.parquet", make_customers(300, seed=2))
    batch = _write(tmp_path / "incoming" / "date=2026-01-01" / "p.parquet", make_customers(50))
    m = prepare([base, batch.parent], tmp_path / "prepared")  # no batch_root: key=value paths
    assert m.batches == ["date=2026-01-01"]
    doc = json.loads((m.path / "manifest.json").read_text())
    assert doc["batches"] == ["date=2026-01-01"]
    m.batches = []  # as written before batches were recorded
    assert m.batch_ids() == ["date=2026-01-01"]
    assert load_manifest(m.path).batch_ids() == ["date=2026-01-01"]


def test_the_cycle_reads_every_batch_and_warns_once_about_the_rest(
    incoming: Path, tmp_path: Path
) -> None:
    settings = Settings(home=tmp_path / "home", model_name="demo")
    base = _write(tmp_path / "raw" / "base.parquet", make_customers(300, seed=2))
    params = {**BUILTIN_DEFAULTS, "model_name": "demo"}
    params.update(data_path=str(base), incoming_path=str(incoming))
    sources = select_sources(settings, RetrainingConfig(**params))
    assert [p.name for p in sources.batches] == [
        "2014.csv",
        "dt=2015-12-31",
        "year=2016",
        "2017.parquet",
    ]
    assert len(sources.ignored) == 1 and "notes.txt" in sources.ignored[0]
    assert sources.describe()["incoming"] == str(incoming)


def test_batch_names_agree_between_the_monitor_and_the_manifest(incoming: Path) -> None:
    assert batch_name(incoming / "year=2016") == "year=2016"
    assert batch_name(incoming / "year=2016" / "part-0.parquet") == "year=2016"
    assert batch_name(incoming / "2017.parquet") == "2017.parquet"
