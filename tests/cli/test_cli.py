"""The `retrain` entry point itself: command groups, exit codes, pipes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from fakes import REPO_ROOT

from model.cli import COMMAND_MODULES, build_parser, main
from model.errors import RegistryError
from model.registry import ModelRegistry
from model.settings import Settings


def test_every_command_group_registers_its_commands() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    names = set(sub.choices)  # type: ignore[arg-type]
    expected = {"demo-data", "prepare", "train", "compare", "drift", "status", "history", "gate"}
    expected |= {"watch", "challenger", "serve", "labels", "batches", "backtest"}
    assert expected <= names
    assert len(COMMAND_MODULES) == 11


def test_gate_status_accounts_by_rows_and_reset_explains_it_is_gone(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = ModelRegistry(settings.models_dir)
    rows = {"batches": ["date=2026-01-01"], "uses": 1}
    record = registry.record
    record("compared", decision="PROMOTE", baseline=None, alpha_spent=0.0, evidence=rows)
    record("compared", decision="REJECT", baseline="v0001", alpha_spent=0.05, evidence=rows)
    registry.record("compared", decision="REJECT", baseline="v0001")  # written before evidence
    for day in ("2026-01-01", "2026-01-02"):  # a batch is a key=value folder with data in it
        (settings.incoming_dir / f"date={day}").mkdir(parents=True)
        (settings.incoming_dir / f"date={day}" / "part-0.csv").write_text("x,target\n1,0\n")
    assert main(["gate", "status"]) == 0
    out = capsys.readouterr().out
    assert "Decisions that tested something: 1 (alpha = 0.05)" in out
    assert "Decisions that tested nothing (spent nothing): 1" in out
    assert "Older decisions recorded without their rows (not counted): 1" in out
    # a decision reusing that batch: j = 2
    assert "date=2026-01-01: in 1 decision(s); a decision reusing it tests at 0.007599" in out
    assert "Batches no decision used yet: 1 (date=2026-01-02)" in out
    before = registry.history()
    assert main(["gate", "reset", "--reason", "new holdout"]) == 2
    err = capsys.readouterr().err
    assert "no longer needed" in err and "renews itself as batches arrive" in err
    assert registry.history() == before  # nothing recorded


def test_bad_input_exits_2_with_a_message(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["prepare", "--data", str(settings.root / "nowhere.parquet")])
    assert code == 2
    assert "nowhere.parquet" in capsys.readouterr().err


def test_output_into_a_closed_pipe_is_not_an_error(settings: Settings) -> None:
    registry = ModelRegistry(settings.models_dir)
    for i in range(3000):
        registry.record("skipped", reasons=[f"nothing fired ({i})"])
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "model.cli",
            "history",
            "-n",
            "3000",
            "--registry",
            str(settings.models_dir),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.read(100)  # like `| head -1`: read a little, then go away
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, err
    assert "Traceback" not in err


@pytest.mark.parametrize("n", ["-1", "0"])
def test_history_refuses_a_count_below_one(
    settings: Settings, capsys: pytest.CaptureFixture[str], n: str
) -> None:
    """Was: ``history -n -1`` printed "history is empty" and exited 0."""
    ModelRegistry(settings.models_dir).record("skipped", reasons=["nothing fired"])
    with pytest.raises(SystemExit) as exited:
        main(["history", "-n", n])
    out, err = capsys.readouterr()
    assert exited.value.code == 2 and out == ""
    assert "argument -n: must be a whole number of events >= 1" in err and repr(n) in err
    with pytest.raises(RegistryError, match="integer >= 0"):
        ModelRegistry(settings.models_dir).history(-1)


def test_an_unreadable_registry_is_one_line_not_a_traceback(
    settings: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ModelRegistry(settings.models_dir).record("skipped", reasons=["nothing fired"])

    def refuse(self: ModelRegistry, *args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(settings.models_dir / "history.jsonl"))

    monkeypatch.setattr(ModelRegistry, "history", refuse)
    assert main(["history"]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {settings.models_dir / 'history.jsonl'}: Permission denied\n"
