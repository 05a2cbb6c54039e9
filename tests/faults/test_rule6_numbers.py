"""Issue 25, rule 6: numbers a model cannot read are errors. A datetime column where the model
has a number, a value beyond the range a model reads after decoding, and a one-class holdout in
every report format.

The probe's cases: ``compare`` with a one-class holdout (rc 1, a TypeError in the text
report); ``compare`` on a holdout whose numeric column is datetime64 (REJECT at AUC 0.5000, no
error); a Parquet file without page checksums and with corrupt bytes in the middle prepared
with values of +-2.7e304."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from probe import holdout, one_error_line, real_model, run_cli

from model.data import prepare
from model.data.contract import BatchContract
from model.errors import DataValidationError
from model.settings import Settings


def _compare(tmp_path: Path, data: Path, *extra: str) -> list[str]:
    baseline = real_model(tmp_path / "baseline", seed=1)
    candidate = real_model(tmp_path / "candidate", seed=2)
    argv = ["compare", "--baseline", str(baseline), "--new", str(candidate)]
    return [*argv, "--test-data", str(data), "--n-bootstrap", "200", *extra]


def test_a_one_class_holdout_is_inconclusive_in_every_report_format(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "one-class.csv"
    holdout().assign(target=0).to_csv(data, index=False)
    out = {k: tmp_path / f"report.{k}" for k in ("json", "md", "html")}
    argv = _compare(tmp_path, data, "--output", str(out["json"]), "--markdown", str(out["md"]))
    rc, text, err = run_cli([*argv, "--html", str(out["html"])], capsys)
    assert rc == 4, err  # INCONCLUSIVE, not an unexpected error
    reason = "0 positives and 400 negatives"
    assert reason in text and "PROMOTION DECISION: INCONCLUSIVE" in text
    doc = json.loads(out["json"].read_text())
    assert doc["decision"] == "INCONCLUSIVE" and any(reason in r for r in doc["reasons"])
    assert doc["metrics"]["auc"]["candidate"] is None  # undefined, not a number
    assert reason in out["md"].read_text() and reason in out["html"].read_text()


def test_a_datetime_where_the_model_has_a_number_is_an_error(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = holdout()
    frame["x"] = pd.to_datetime(frame["x"] * 1e9 + 1.7e18)
    data = tmp_path / "dates.parquet"
    frame.to_parquet(data, index=False)
    rc, _, err = run_cli(_compare(tmp_path, data), capsys)
    assert rc == 2  # was REJECT at AUC 0.5000
    one_error_line(err, "'x'", "dates or times")


def _corrupt_looking(path: Path) -> Path:
    """What a Parquet file without page checksums decodes to after bytes changed in the
    middle: finite numbers far beyond anything a model reads."""
    frame = holdout(200)
    frame.loc[17, "x"] = 2.7e304
    frame.loc[18, "x"] = -2.7e304
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)  # no checksums
    return path


def test_prepare_refuses_numbers_beyond_what_a_model_reads(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _corrupt_looking(tmp_path / "corrupt.parquet")
    rc, _, err = run_cli(["prepare", "--data", str(data)], capsys)
    assert rc == 2
    one_error_line(err, str(data), "'x'", "row 17", "corrupt")
    assert not (settings.root / "data" / "demo" / "prepared").exists() or not any(
        (settings.root / "data" / "demo" / "prepared").iterdir()
    )


def test_the_door_check_refuses_them_too(tmp_path: Path) -> None:
    base = holdout(300)
    base.to_parquet(tmp_path / "base.parquet", index=False)
    m = prepare(tmp_path / "base.parquet", tmp_path / "prepared")
    contract = BatchContract.from_manifest(m)
    batch = pq.read_table(_corrupt_looking(tmp_path / "batch.parquet"))
    problem = contract.problem(batch, "incoming/date=2026-01-01")
    assert problem is not None and "'x'" in problem and "row 17" in problem
    with pytest.raises(DataValidationError, match="beyond the range"):
        prepare([tmp_path / "base.parquet", tmp_path / "batch.parquet"], tmp_path / "p2")
