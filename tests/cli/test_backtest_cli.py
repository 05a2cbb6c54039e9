"""`retrain backtest`: bad input is one line and exit 2, before Prefect starts."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from model.cli import main
from model.settings import Settings


@pytest.fixture
def history(tmp_path: Path) -> Path:
    path = tmp_path / "history.parquet"
    pd.DataFrame(
        {"when": ["2024-01-01", "2024-02-01"], "x": [1.0, 2.0], "target": [0, 1]}
    ).to_parquet(path)
    return path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", "nowhere.parquet", "--start", "2024-01-01"], "--data nowhere.parquet: no such"),
        (["--data", "{history}"], "--start: give the end of the start window"),
        (["--data", "{history}", "--start", "soon"], "--start 'soon' is not a date"),
        (["--data", "{history}", "--start", "2024-01-15", "--end", "later"], "--end 'later'"),
        (["--data", "{history}", "--start", "2024-01-15", "--policies", "sometimes"], "sometimes"),
        (
            ["--data", "{history}", "--start", "2024-01-15", "--set", "data_path=x"],
            "--set data_path: set by the backtest itself",
        ),
        (["--data", "{history}", "--start", "2024-01-15", "--workers", "0"], "--workers"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    settings: Settings,
    history: Path,
    args: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["backtest", *[a.replace("{history}", str(history)) for a in args]])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1, err
    assert not settings.backtests_dir.exists()  # nothing was started
