"""``--model NAME`` on the command line (issue 13): one line and exit 2 for a bad name, an
unknown model or a bad configuration file, before any work; the table's settings otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.retraining import main as retraining_main
from model.cli import main as retrain
from model.cycle.models_config import CONFIG_ENV
from model.data.demo import write_demo
from model.settings import Settings


def _config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> Path:
    path = tmp_path / "models.toml"
    path.write_text(text, encoding="utf-8")
    monkeypatch.setenv(CONFIG_ENV, str(path))
    return path


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--model", "Demo"], "error: --model: model name 'Demo' is not accepted; use 1 to 63"),
        (["--model", "fraud"], "error: {path}: no table [models.fraud]; known models: churn, demo"),
        (["--model", "churn"], "error: RETRAIN_HOME={root}: has the single-model layout"),
    ],
)
@pytest.mark.parametrize("command", ["retraining", "drift"])
def test_bad_model_is_one_line_exit_2(
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    expected: str,
    command: str,
) -> None:
    path = _config(tmp_path, monkeypatch, "[models.demo]\n[models.churn]\n")
    if argv[-1] == "churn":  # a known model in a working root of the single-model layout
        (settings.root / "models").mkdir(parents=True)
        (settings.root / "models" / "registry.json").write_text("{}")
    code = retraining_main(argv) if command == "retraining" else retrain(["drift", *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(expected.format(path=path, root=settings.root)), err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not settings.models_dir.exists() and not settings.reports_dir.exists()


def test_bad_configuration_file_is_one_line_exit_2(
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = _config(tmp_path, monkeypatch, "[models.demo]\nlearning_rate = -1.0\n")
    assert retraining_main(["--force"]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"error: {path}: [models.demo] learning_rate: -1.0 is not accepted; "
        "accepted: a number > 0 and <= 10\n"
    )
    assert not settings.models_dir.exists()


def test_retrain_drift_reads_the_incoming_path_of_the_model(
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With a reference given (no production needed): the batches come from the table's
    incoming_path, a relative one read under RETRAIN_HOME."""
    write_demo(settings, rows=600, seed=2, drift=0.9, batches=1, batch_rows=400)
    (settings.root / "elsewhere").parent.mkdir(parents=True, exist_ok=True)
    settings.incoming_dir.rename(settings.root / "elsewhere")
    _config(tmp_path, monkeypatch, '[models.demo]\nincoming_path = "elsewhere"\n')
    code = retrain(["drift", "--reference", str(settings.raw_data_path), "--no-model", "--json"])
    out = capsys.readouterr().out
    assert code == 0
    assert str(settings.root / "elsewhere" / "date=2025-01-01") in out
    assert '"dataset_drift": true' in out
