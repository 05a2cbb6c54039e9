"""A batch is checked at the door of every cycle (issue 25, rule 1): a batch the cycle cannot
use is quarantined (``incoming/.quarantine/<batch>/`` with ``reason.json``, ``quarantined`` in
the history) and the others go on; ``retrain batches list | quarantine | restore``."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from labelled_home import base_frame, use_home

from model.cli import main
from model.cycle.config import RetrainingConfig
from model.cycle.models_config import BUILTIN_DEFAULTS
from model.cycle.quarantine import (
    cycle_contract,
    quarantined_batches,
    restore,
    screen_cycle,
    set_aside_hint,
)
from model.data.batches import scan_incoming
from model.errors import DataValidationError
from model.registry import ModelRegistry
from model.settings import Settings


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    home = use_home(tmp_path / "home", tmp_path, monkeypatch)
    return Settings(home=home, model_name="demo")


def _config() -> RetrainingConfig:
    return RetrainingConfig(
        **{**BUILTIN_DEFAULTS, "model_name": "demo", "target_column": "rain", "id_column": "id"}
    )


def _batch(settings: Settings, name: str, frame: pd.DataFrame) -> Path:
    folder = settings.incoming_dir / name
    folder.mkdir(parents=True)
    frame.to_parquet(folder / "part-0.parquet", index=False)
    return folder


def _poisoned(settings: Settings) -> dict[str, Path]:
    """Batches as the probe left them: labels yes/maybe, string ids, a corrupt file; and one
    good batch."""
    good = base_frame(50, seed=1)
    yes = good.assign(rain=["yes", "maybe"] * 25)
    text_ids = good.assign(id=[f"c{i}" for i in range(50)])
    out = {
        "good": _batch(settings, "date=2026-03-01", good),
        "labels": _batch(settings, "date=2026-03-02", yes),
        "ids": _batch(settings, "date=2026-03-03", text_ids),
    }
    corrupt = settings.incoming_dir / "date=2026-03-04"
    corrupt.mkdir()
    (corrupt / "part-0.parquet").write_bytes(b"PAR1 not really parquet PAR1")
    out["corrupt"] = corrupt
    return out


def test_bad_batches_are_quarantined_with_their_reason_and_the_good_one_stays(
    settings: Settings,
) -> None:
    _poisoned(settings)
    screening = screen_cycle(settings, _config(), run_id="run-1")
    assert screening.checked == [
        "date=2026-03-01",
        "date=2026-03-02",
        "date=2026-03-03",
        "date=2026-03-04",
    ]
    assert [q.batch for q in screening.quarantined] == [
        "date=2026-03-02",
        "date=2026-03-03",
        "date=2026-03-04",
    ]
    reasons = {q.batch: q.reason for q in screening.quarantined}
    assert "'rain'" in reasons["date=2026-03-02"] and "'yes'" in reasons["date=2026-03-02"]
    assert "'id'" in reasons["date=2026-03-03"] and "int64" in reasons["date=2026-03-03"]
    assert "part-0.parquet" in reasons["date=2026-03-04"]
    assert [b.id for b in scan_incoming(settings.incoming_dir).batches] == ["date=2026-03-01"]
    held = settings.incoming_dir / ".quarantine" / "date=2026-03-02"
    doc = json.loads((held / "reason.json").read_text())
    assert doc["batch"] == "date=2026-03-02" and "'yes'" in doc["reason"]
    assert (held / "part-0.parquet").is_file()  # moved whole, nothing lost
    history = ModelRegistry(settings.models_dir).history()
    events = [e for e in history if e["event"] == "quarantined"]
    assert [e["batch"] for e in events] == [q.batch for q in screening.quarantined]
    assert all(e["run_id"] == "run-1" for e in events)
    again = screen_cycle(settings, _config())  # the next cycle: nothing more to do
    assert again.quarantined == [] and again.checked == ["date=2026-03-01"]


def test_a_plain_file_batch_is_quarantined_in_a_folder_and_restored_as_a_file(
    settings: Settings,
) -> None:
    settings.incoming_dir.mkdir(parents=True)
    bad = settings.incoming_dir / "2016.parquet"
    base_frame(30, seed=3).assign(rain=2).to_parquet(bad, index=False)
    assert [q.batch for q in screen_cycle(settings, _config()).quarantined] == ["2016.parquet"]
    held = settings.incoming_dir / ".quarantine" / "2016.parquet"
    assert (held / "2016.parquet").is_file() and (held / "reason.json").is_file()
    contract = cycle_contract(settings, None, "rain", "id")
    with pytest.raises(DataValidationError, match=r"still not usable.*label 2"):
        restore(settings, settings.incoming_dir, "2016.parquet", contract)
    assert (held / "2016.parquet").is_file()  # left where it was
    base_frame(30, seed=3).to_parquet(held / "2016.parquet", index=False)  # fixed in place
    path, batch = restore(settings, settings.incoming_dir, "2016.parquet", contract)
    assert path == bad and bad.is_file() and not held.exists() and batch == "2016.parquet"
    history = ModelRegistry(settings.models_dir).history()
    assert [e["event"] for e in history[-2:]] == ["quarantined", "restored"]


def test_batches_commands_list_quarantine_and_restore(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    _batch(settings, "date=2026-03-01", base_frame(20, seed=1))
    _batch(settings, "year=2016", base_frame(20, seed=2))
    (settings.incoming_dir / "notes.txt").write_text("x")
    assert main(["batches", "list"]) == 0
    out, err = capsys.readouterr()
    assert out.index("year=2016") < out.index("date=2026-03-01")  # 2016 < 2026
    assert "20 rows" in out and "new" in out
    assert err.count("warning:") == 1 and "notes.txt" in err
    assert main(["batches", "quarantine", "year=2016", "--reason", "wrong units"]) == 0
    assert [q.reason for q in quarantined_batches(settings.incoming_dir)] == ["wrong units"]
    assert main(["batches", "list"]) == 0
    assert "Quarantined 1" in capsys.readouterr().out
    assert main(["batches", "restore", "year=2016"]) == 0
    assert (settings.incoming_dir / "year=2016" / "part-0.parquet").is_file()
    assert not (settings.incoming_dir / "year=2016" / "reason.json").exists()
    assert main(["batches", "restore", "nope"]) == 2
    assert main(["batches", "quarantine", "nope"]) == 2
    assert capsys.readouterr().err.count("\n") == 2  # one line each


def test_a_failure_no_batch_check_explains_names_the_command_that_sets_it_aside(
    tmp_path: Path,
) -> None:
    incoming = tmp_path / "incoming"
    error = DataValidationError(f"{incoming}/date=2026-01-02/part-0.csv: mixed types in a column")
    text = set_aside_hint(error, incoming, "churn")
    assert text.startswith(str(error))
    assert "`retrain --model churn batches quarantine date=2026-01-02`" in text
    other = DataValidationError("/elsewhere/base.parquet: empty input")
    assert set_aside_hint(other, incoming, "churn") == str(other)
