"""Issue 25, item 7: property tests of the new surfaces besides the service's bodies (in
``tests/serving/test_predict_properties.py``): label files to ``labels add`` and journals to
``migrate-layout``. Each example runs under a time limit; the only failure allowed is a
one-line RetrainError; a labels file that is accepted makes a batch the next cycle can use, and
a journal that is accepted finishes the migration with one ``migrated`` event."""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from fakes import make_model, time_limit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from labelled_home import make_home

from model.cycle.migrate_layout import migrate_layout
from model.data import read_sources
from model.errors import RetrainError
from model.registry import ModelRegistry
from model.serving.labels import add_labels, production_contract
from model.settings import Settings

label_values = st.one_of(
    st.sampled_from([0, 1, "0", "1", True, False, "true", "False", 1.0, 0.0]),
    st.integers(-3, 3),
    st.floats(allow_nan=True, allow_infinity=False, width=32),
    st.text(max_size=6),
    st.none(),
)
id_values = st.one_of(
    st.integers(-5, 60),
    st.integers(0, 60).map(str),
    st.text(max_size=5),
    st.none(),
    st.floats(0, 60),
)


@st.composite
def label_files(draw: st.DrawFn) -> tuple[pd.DataFrame, str]:
    n = draw(st.integers(0, 12))
    uniform = draw(st.booleans())  # one type per column, as a real file has
    ids = st.integers(0, 60) if uniform else id_values
    labels = st.sampled_from([0, 1]) if uniform else label_values
    frame = pd.DataFrame(
        {
            "id": draw(st.lists(ids, min_size=n, max_size=n)),
            "rain": draw(st.lists(labels, min_size=n, max_size=n)),
        },
        dtype=object if not uniform else None,
    )
    return frame, draw(st.sampled_from(["csv", "parquet"]))


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_home(tmp_path_factory.mktemp("door") / "home", served=60)


def _one_line(exc: RetrainError) -> None:
    text = str(exc)
    assert text and "\n" not in text and len(text) < 2000, text[:2000]


@settings(
    max_examples=120,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(label_files())
def test_labels_add_writes_a_usable_batch_or_refuses_in_one_line(
    home: Path, case: tuple[pd.DataFrame, str]
) -> None:
    frame, kind = case
    contract = production_contract(home / "models" / "demo", home)
    assert contract is not None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"labels.{kind}"
        try:
            if kind == "csv":
                frame.to_csv(path, index=False)
            else:
                frame.astype({c: str for c in frame if frame[c].dtype == object}).to_parquet(path)
        except (ValueError, TypeError):
            return  # pandas cannot write this frame: nothing to send
        incoming = Path(tmp) / "incoming"
        try:
            with time_limit(30, "labels add"):
                result = add_labels(
                    path,
                    log_folder=home / "predictions" / "demo",
                    incoming_dir=incoming,
                    id_column="id",
                    label_column="rain",
                    day=dt.date(2026, 1, 1),
                    contract=contract,
                )
        except RetrainError as exc:
            _one_line(exc)
            assert not incoming.exists()  # refused: nothing written
            return
        assert result.accounted() == result.rows
        if result.batch is None:
            return
        batch = pq.read_table(result.batch)
        assert contract.problem(batch, result.batch) is None  # the next cycle can use it
        raw = home / "data" / "demo" / "raw" / "weather.parquet"
        table, _ = read_sources([raw, Path(result.batch)])  # reads with the base data
        assert table.num_rows == 400 + result.added


journals = st.one_of(
    st.binary(max_size=40),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=6),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
        max_leaves=8,
    ).map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {
            "model": st.sampled_from(["demo", "other", ""]) | st.integers(),
            "moved": st.lists(st.sampled_from(["data", "reports", "runs", "models", "x"]))
            | st.none(),
            "rewritten": st.none() | st.lists(st.text(max_size=5)) | st.integers(),
        },
        optional={"id": st.text(max_size=8) | st.integers()},
    ).map(lambda v: json.dumps(v).encode()),
)


@settings(max_examples=150, deadline=None, database=None)
@given(journals)
def test_migrate_layout_finishes_or_refuses_any_journal_in_one_line(journal: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "home"
        ModelRegistry(root / "models").register(make_model(Path(tmp) / "m"))
        (root / ".migrate-layout.json").write_bytes(journal)
        settings_ = Settings(home=root, model_name="demo")
        try:
            with time_limit(30, "migrate-layout"):
                migrate_layout(settings_, "demo")
        except RetrainError as exc:
            _one_line(exc)
            return
        assert not (root / ".migrate-layout.json").exists()
        events = ModelRegistry(root / "models" / "demo").history()
        assert [e["event"] for e in events].count("migrated") == 1
