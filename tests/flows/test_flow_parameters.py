"""Bad flow parameters (issue 12): one line naming the parameter and the accepted values, exit
2 from ``python -m flows.retraining``, before any work — the gate's options included."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fakes import REPO_ROOT

from flows.retraining import main, retraining
from model.data.demo import write_demo
from model.errors import ParameterError
from model.settings import Settings


def _nothing_done(settings: Settings) -> None:
    assert not settings.models_dir.exists(), "the registry was touched"
    assert not settings.prepared_dir.exists(), "data was prepared"
    assert not settings.runs_dir.exists() or not any(settings.runs_dir.iterdir())


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["-p", "num_epochs=-1"],
            "error: parameter num_epochs: -1 is not accepted; accepted: an integer from 1 to 10000",
        ),
        (
            ["-p", "bogus_param=3"],
            "error: unknown parameter 'bogus_param'; known: model_name, force_retrain",
        ),
        (
            ["--force", "-p", 'guardrails={"nope": 1}'],
            "error: parameter guardrails: unknown metric 'nope' for guardrail; known: accuracy",
        ),
        (
            ["-p", "significance_level=0.9"],
            "error: parameter significance_level: 0.9 is not accepted; accepted: a number > 0 "
            "and < 0.5",
        ),
        (
            ["-p", 'primary_metric="speed"'],
            "error: parameter primary_metric: 'speed' is not accepted; accepted: one of 'auc'",
        ),
        (["-p", "num_epochs"], "error: -p 'num_epochs': expected KEY=VALUE"),
    ],
)
def test_bad_parameter_is_one_line_exit_2_before_any_work(
    settings: Settings, capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    write_demo(settings, rows=500, seed=1)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(expected), err
    assert err.count("\n") == 1 and "Traceback" not in err
    _nothing_done(settings)


def test_bad_parameter_from_the_command_line(tmp_path: Path) -> None:
    """The real command: no traceback, exit 2, no Prefect server started."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "RETRAIN_HOME": str(tmp_path / "home")}
    env["PREFECT_HOME"] = str(tmp_path / "prefect")
    proc = subprocess.run(
        [sys.executable, "-m", "flows.retraining", "-p", "num_epochs=-1"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        "error: parameter num_epochs: -1 is not accepted; accepted: an integer from 1 to 10000"
    ]
    assert not (tmp_path / "home").exists()


def test_gate_options_are_checked_before_training(
    prefect_harness: None, settings: Settings
) -> None:
    """Through the flow (a deployment run takes the same path): a Failed run whose message
    names the parameter, with nothing prepared, trained or registered."""
    write_demo(settings, rows=500, seed=1)
    state = retraining(
        force_retrain=True, guardrails={"nope": 1.0}, num_epochs=1, return_state=True
    )
    assert state.is_failed()
    assert "ParameterError: parameter guardrails: unknown metric 'nope'" in str(state.message)
    with pytest.raises(ParameterError, match="guardrails"):
        state.result()
    _nothing_done(settings)


def test_error_during_the_run_exits_2(
    prefect_harness: None, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--force"]) == 2  # no data at all
    err = capsys.readouterr().err
    assert err.startswith("error: no training data:") and err.count("\n") == 1
