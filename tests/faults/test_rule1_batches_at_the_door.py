"""Issue 25, rule 1: a batch is checked at the door, and a bad batch cannot block the loop.

The probe's poisoning cases, and where each is tested:

- ``labels add`` accepted labels ``yes``/``maybe``, ``2``/``3`` and ``0.5``:
  ``tests/serving/test_labels_door.py::test_labels_that_are_not_the_models_classes_are_refused_and_nothing_is_written``
  and below through the command;
- two valid label files on one day, 0/1 and True/False, blocked ``prepare``:
  ``tests/serving/test_labels_door.py::test_true_false_and_0_1_files_on_one_day_agree_and_prepare_with_the_base``;
- the service accepted a string id where training had integers, and the labelled batch failed
  every cycle:
  ``tests/serving/test_rule3_service_4xx.py::test_a_text_id_for_a_model_trained_on_integer_ids_is_422``
  and ``tests/serving/test_labels_door.py::test_an_id_of_another_type_than_the_models_is_refused``;
- a batch that still fails is quarantined and the cycle goes on:
  ``tests/cycle/test_quarantine.py`` and
  ``tests/flows/test_batches_at_the_door.py::test_a_poisoned_labels_batch_is_quarantined_and_restored_once_fixed``.

Here: the same refusals through ``retrain labels add`` (one line, exit 2, nothing written), and
``labels add`` over a truncated or 0-byte prediction-log file (was a traceback, ArrowInvalid)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from labelled_home import use_home
from probe import one_error_line, run_cli


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return use_home(tmp_path / "home", tmp_path, monkeypatch)


@pytest.mark.parametrize("labels", [["yes", "maybe"], [2, 3], [0, 0.5]])
def test_labels_add_refuses_what_a_cycle_cannot_use(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], labels: list[object]
) -> None:
    path = tmp_path / "labels.csv"
    pd.DataFrame({"id": [1, 2], "rain": labels}).to_csv(path, index=False)
    rc, _, err = run_cli(["labels", "add", str(path)], capsys)
    assert rc == 2
    one_error_line(err, str(path), "'rain'", "two classes")
    assert not (home / "data" / "demo" / "incoming").exists()


@pytest.mark.parametrize("damage", ["truncated", "empty"])
def test_labels_add_over_a_damaged_log_file_is_one_line(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    part = next((home / "predictions" / "demo").glob("date=*/part-*.parquet"))
    data = part.read_bytes()
    part.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"")
    path = tmp_path / "labels.csv"
    pd.DataFrame({"id": [1, 2], "rain": [0, 1]}).to_csv(path, index=False)
    rc, _, err = run_cli(["labels", "add", str(path)], capsys)
    assert rc == 2
    one_error_line(err, str(part), "unreadable prediction-log file")
    assert not (home / "data" / "demo" / "incoming").exists()
