"""Labels at the door (issue 24 item 3, issue 25 rule 1): ``retrain labels add`` takes the
target and id column from the model's table, writes only what a later cycle can use (the
production model's two classes in its training encoding, ids of its id column's type), and
``retrain labels undo`` removes a labelled batch no version was trained on."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fakes import make_model
from labelled_home import make_home

from model.cli import main
from model.data import prepare
from model.data.batches import scan_incoming
from model.errors import DataValidationError
from model.registry import ModelRegistry
from model.serving.labels import add_labels, production_contract, undo_labels

DAY = dt.date(2026, 3, 5)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A working root whose model ``demo`` was trained on integer ids, a number ``x``, a
    text category ``c`` and 0/1 labels in ``rain``; ids 0..39 were served."""
    return make_home(tmp_path / "home")


def _labels(path: Path, ids: list[object], labels: list[object], name: str = "rain") -> Path:
    pd.DataFrame({"id": ids, name: labels}).to_csv(path, index=False)
    return path


def _add(home: Path, labels: Path, **kw: object) -> dict[str, object]:
    options: dict[str, object] = {
        "log_folder": home / "predictions" / "demo",
        "incoming_dir": home / "data" / "demo" / "incoming",
        "id_column": "id",
        "label_column": "rain",
        "day": DAY,
        "contract": production_contract(home / "models" / "demo", home),
    }
    options.update(kw)
    return add_labels(labels, **options).to_dict()  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bad, shown",
    [
        (["yes", "maybe"], "'yes'"),  # text labels for a 0/1 model
        ([2, 3], "2"),  # two classes, but not the model's
        ([0, 0.5], "0.5"),  # a probability, not a class
    ],
)
def test_labels_that_are_not_the_models_classes_are_refused_and_nothing_is_written(
    home: Path, tmp_path: Path, bad: list[object], shown: str
) -> None:
    labels = _labels(tmp_path / "bad.csv", [1, 2], bad)
    with pytest.raises(DataValidationError) as err:
        _add(home, labels)
    message = str(err.value)
    assert "bad.csv" in message and "'rain'" in message and shown in message
    assert "'0' or '1'" in message
    assert not (home / "data" / "demo" / "incoming").exists()
    assert not (home / "predictions" / "demo" / "labels").exists()


def test_true_false_and_0_1_files_on_one_day_agree_and_prepare_with_the_base(
    home: Path, tmp_path: Path
) -> None:
    first = _add(home, _labels(tmp_path / "a.csv", [1, 2, 3], ["True", "False", "true"]))
    second = _add(home, _labels(tmp_path / "b.csv", [4, 5, 6], [0, 1, 1]))
    assert first["added"] == 3 and second["added"] == 3
    folder = Path(str(first["batch"])).parent
    assert Path(str(second["batch"])).parent == folder
    for path in folder.iterdir():  # the training encoding, whatever the file said
        schema = pq.read_schema(path)
        assert schema.field("rain").type == pa.int64() and schema.field("id").type == pa.int64()
    rain = pq.read_table(first["batch"]).column("rain").to_pylist()
    assert rain == [1, 0, 1]
    raw = home / "data" / "demo" / "raw" / "weather.parquet"
    incoming = home / "data" / "demo" / "incoming"
    m = prepare(
        [raw, *scan_incoming(incoming).paths],
        tmp_path / "prepared",
        target="rain",
        id_column="id",
        batch_root=incoming,
    )
    assert m.rows == 406 and m.batches == ["date=2026-03-05"]


def test_an_id_of_another_type_than_the_models_is_refused(home: Path, tmp_path: Path) -> None:
    with pytest.raises(DataValidationError, match=r"ids\.csv.*'id'.*'abc'.*integer"):
        _add(home, _labels(tmp_path / "ids.csv", ["abc", "x1"], [0, 1]))
    added = _add(home, _labels(tmp_path / "ok.csv", ["1", "2"], [0, 1]))  # digit text: integers
    assert pq.read_schema(added["batch"]).field("id").type == pa.int64()


def test_labels_add_takes_target_and_id_from_the_models_table(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "retraining.toml"
    config.write_text('[models.demo]\ntarget_column = "rain"\nid_column = "id"\n')
    monkeypatch.setenv("RETRAIN_HOME", str(home))
    monkeypatch.setenv("RETRAIN_CONFIG", str(config))
    labels = _labels(tmp_path / "weather-labels.csv", [7, 8, 9], [1, 0, 1])
    assert main(["labels", "add", str(labels), "--date", "2026-03-06"]) == 0
    written = list((home / "data" / "demo" / "incoming" / "date=2026-03-06").iterdir())
    assert len(written) == 1
    assert pq.read_table(written[0]).column_names[:1] == ["id"]
    assert pq.read_table(written[0]).column("rain").to_pylist() == [1, 0, 1]
    bad = _labels(tmp_path / "yes-no.csv", [10], ["yes"])
    assert main(["labels", "add", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "yes-no.csv" in err and "'rain'" in err


def test_a_bad_labels_file_undone_and_the_right_one_added(home: Path, tmp_path: Path) -> None:
    ids = list(range(10))
    truth = [i % 2 for i in ids]
    wrong = _add(home, _labels(tmp_path / "wrong.csv", ids, [1 - t for t in truth]))
    assert wrong["added"] == 10
    again = _add(home, _labels(tmp_path / "right.csv", ids, truth))
    assert again["added"] == 0 and again["already_added"] == 10  # why undo is needed
    removed = undo_labels(
        Path(str(wrong["batch"])).name,
        incoming_dir=home / "data" / "demo" / "incoming",
        log_folder=home / "predictions" / "demo",
        models_dir=home / "models" / "demo",
        home=home,
    )
    assert Path(str(wrong["batch"])) in removed and not Path(str(wrong["batch"])).exists()
    assert not any((home / "predictions" / "demo" / "labels").iterdir())
    right = _add(home, _labels(tmp_path / "right.csv", ids, truth))
    assert right["added"] == 10
    assert pq.read_table(right["batch"]).column("rain").to_pylist() == truth


def test_undo_is_refused_once_a_version_was_trained_on_the_batch(
    home: Path, tmp_path: Path
) -> None:
    added = _add(home, _labels(tmp_path / "l.csv", [1, 2, 3], [0, 1, 0]))
    incoming = home / "data" / "demo" / "incoming"
    raw = home / "data" / "demo" / "raw" / "weather.parquet"
    m = prepare(
        [raw, *scan_incoming(incoming).paths],
        home / "data" / "demo" / "prepared",
        target="rain",
        id_column="id",
        batch_root=incoming,
    )
    model = make_model(tmp_path / "m2", seed=2)
    meta = json.loads((model / "model.json").read_text())
    meta["data_manifest"] = {"path": str(m.path.relative_to(home))}
    (model / "model.json").write_text(json.dumps(meta))
    ModelRegistry(home / "models" / "demo").register(model)
    with pytest.raises(DataValidationError, match="v0002 were trained on it"):
        undo_labels(
            str(added["batch"]),
            incoming_dir=incoming,
            log_folder=home / "predictions" / "demo",
            models_dir=home / "models" / "demo",
            home=home,
        )
    assert Path(str(added["batch"])).exists()
