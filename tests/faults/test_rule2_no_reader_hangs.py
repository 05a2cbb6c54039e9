"""Issue 25, rule 2: no reader ever hangs. Every path a user or a crash can leave behind is
checked as a regular file (``model/files.py``) before it is read: a FIFO in its place is one
line naming it (exit 2), never a hang. A bad port, or a bind that fails, is one line too.

The probe's cases: ``compare --baseline`` with model.pt or model.json a FIFO; ``prepare --spec
FIFO``; ``train --data`` on a folder whose manifest.json is a FIFO; ``history``, ``status`` and
``versions`` with history.jsonl, production.json, registry.json or versions/*/model.json a
FIFO; ``migrate-layout`` with its journal a FIFO; ``serve --port 70000``; ``RETRAIN_CONFIG``
naming a folder or a FIFO."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest
from probe import fifo_at, holdout, one_error_line, real_model, registry_with_production, run_cli

from model.errors import RetrainError
from model.files import read_json
from model.settings import Settings


@pytest.mark.parametrize("name", ["model.pt", "model.json"])
def test_compare_with_a_fifo_in_the_baseline_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    candidate = real_model(tmp_path / "candidate", seed=1)
    baseline = real_model(tmp_path / "baseline", seed=2)
    fifo_at(baseline / name)
    data = tmp_path / "holdout.csv"
    holdout().to_csv(data, index=False)
    argv = ["compare", "--baseline", str(baseline), "--new", str(candidate)]
    rc, _, err = run_cli([*argv, "--test-data", str(data), "--n-bootstrap", "200"], capsys)
    assert rc == 2
    one_error_line(err, str(baseline / name), "FIFO")


def test_prepare_with_a_fifo_as_its_spec(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data.csv"
    holdout().to_csv(data, index=False)
    spec = fifo_at(tmp_path / "spec.json")
    rc, _, err = run_cli(["prepare", "--data", str(data), "--spec", str(spec)], capsys)
    assert rc == 2
    one_error_line(err, str(spec), "FIFO")


def test_train_on_a_folder_whose_manifest_is_a_fifo(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "bare"
    folder.mkdir()
    fifo_at(folder / "manifest.json")
    argv = ["train", "--data", str(folder), "--out", str(tmp_path / "m"), "--epochs", "1"]
    rc, _, err = run_cli(argv, capsys)
    assert rc == 2
    one_error_line(err, str(folder / "manifest.json"), "FIFO")
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    "where",
    ["history.jsonl", "production.json", "registry.json", "versions/v0002/model.json"],
)
@pytest.mark.parametrize("command", ["history", "status", "versions"])
def test_registry_readers_with_a_fifo(
    settings: Settings,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    command: str,
    where: str,
) -> None:
    registry_with_production(settings.models_dir, tmp_path)
    path = settings.models_dir / where
    os.chmod(path.parent, 0o755)  # version folders are read-only
    fifo_at(path)
    rc, out, err = run_cli([command], capsys)  # returns: no hang
    if command == "history" and where in ("production.json", "versions/v0002/model.json"):
        assert rc == 0  # the history reads neither
        return
    if command == "status" or where in ("production.json", "versions/v0002/model.json"):
        # damage the command reports among the registry's problems: named, with what it is
        assert str(path) in out + err and "FIFO" in out + err
        assert rc == (2 if command == "status" else 0)  # status: damage is a failure
        return
    assert rc == 2
    one_error_line(err, str(path), "FIFO")


def test_migrate_layout_with_a_fifo_as_its_journal(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    (settings.root / "models").mkdir(parents=True)
    (settings.root / "models" / "registry.json").write_text('{"format_version": 1}')
    journal = fifo_at(settings.root / ".migrate-layout.json")
    rc, _, err = run_cli(["migrate-layout", "--model", "demo"], capsys)
    assert rc == 2
    one_error_line(err, str(journal), "FIFO")


def test_serve_on_port_70000_is_one_line(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, _, err = run_cli(["serve", "--port", "70000", "--no-events"], capsys)
    assert rc == 2
    one_error_line(err, "--port 70000", "1 to 65535")


def test_serve_on_a_port_in_use_is_one_line_before_any_model_loads(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        rc, _, err = run_cli(["serve", "--port", str(port), "--no-events"], capsys)
    assert rc == 2  # no production model either: the address is checked first
    one_error_line(err, f"--port {port}", "cannot listen")


@pytest.mark.parametrize("kind", ["folder", "FIFO"])
def test_retrain_config_naming_a_folder_or_a_fifo(
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    kind: str,
) -> None:
    path = tmp_path / "retraining.toml"
    if kind == "folder":
        path.mkdir()
    else:
        fifo_at(path)
    monkeypatch.setenv("RETRAIN_CONFIG", str(path))
    rc, _, err = run_cli(["history"], capsys)
    assert rc == 2
    line = one_error_line(err, str(path), kind)
    assert "no such file" not in line


def test_the_shared_check_refuses_every_kind_of_non_file(tmp_path: Path) -> None:
    fifo = fifo_at(tmp_path / "fifo.json")
    folder = tmp_path / "folder.json"
    folder.mkdir()
    for path, kind in ((fifo, "FIFO"), (folder, "a folder"), (Path("/dev/zero"), "device")):
        with pytest.raises(RetrainError, match=kind):
            read_json(path, "a test file", RetrainError)
    big = tmp_path / "big.json"
    big.write_text("[" + "0," * 100 + "0]")
    with pytest.raises(RetrainError, match="too large"):
        read_json(big, "a test file", RetrainError, limit=50)
    with pytest.raises(FileNotFoundError):
        read_json(tmp_path / "missing.json", "a test file", RetrainError)
    shutil.rmtree(folder)
