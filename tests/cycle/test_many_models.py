"""Many models in one working root: per-model folders, the model scope, the default model, the
per-model cycle lock, and the migration of a single-model working root."""

from __future__ import annotations

import contextvars
import fcntl
import json
import os
import stat
import threading
from pathlib import Path

import pytest
from fakes import make_model

from model.cli import main as retrain
from model.cycle.locks import MODEL_LOCK_NAME, model_lock
from model.cycle.migrate_layout import migrate_layout
from model.cycle.models_config import (
    ModelsConfig,
    default_model,
    load_models_config,
    select_model,
)
from model.errors import CycleLockError, LayoutError
from model.registry import ModelRegistry
from model.settings import Settings, get_settings, model_scope, scoped_model

KINDS = ("data", "models", "reports", "runs")


def _config(tmp_path: Path, *names: str) -> Path:
    path = tmp_path / "retraining.toml"
    path.write_text("".join(f"[models.{n}]\nnum_epochs = 3\n\n" for n in names))
    return path


def test_every_kind_of_folder_is_per_model(tmp_path: Path) -> None:
    a = Settings(home=tmp_path, model_name="a")
    b = a.for_model("b")
    for kind in KINDS:
        folder = {"data": a.data_dir, "models": a.models_dir}.get(kind)
        folder = folder or {"reports": a.reports_dir, "runs": a.runs_dir}[kind]
        assert folder == tmp_path.resolve() / kind / "a"
    assert b.models_dir == tmp_path.resolve() / "models" / "b"
    assert b.raw_data_path == tmp_path.resolve() / "data" / "b" / "raw" / "customers.parquet"
    assert b.incoming_dir == tmp_path.resolve() / "data" / "b" / "incoming"
    assert b.prepared_dir == tmp_path.resolve() / "data" / "b" / "prepared"
    assert a.prefect_home == b.prefect_home  # shared
    assert b.event_resource_id == "retraining.model.b"


def test_model_scope_sets_the_model_of_get_settings_and_reaches_copied_contexts(
    settings: Settings,
) -> None:
    assert get_settings().model_name == "demo" and scoped_model() is None
    with model_scope("churn"):
        assert get_settings().model_name == "churn"
        assert get_settings(model_name="other").model_name == "other"  # explicit wins
        with model_scope("fraud"):
            assert get_settings().models_dir == settings.root / "models" / "fraud"
        assert get_settings().model_name == "churn"
        # Prefect's thread task runner runs each task in a copy of the caller's context
        seen: list[str] = []
        ctx = contextvars.copy_context()
        worker = threading.Thread(
            target=ctx.run, args=(lambda: seen.append(get_settings().model_name),)
        )
        worker.start()
        worker.join()
        assert seen == ["churn"]
    assert get_settings().model_name == "demo"


def test_the_default_model_is_the_scope_then_the_variable_then_the_first_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_models_config(_config(tmp_path, "zeta", "alpha"))
    monkeypatch.delenv("RETRAIN_MODEL_NAME", raising=False)
    assert default_model(config) == ("zeta", f"{config.path}: its first model")  # file order
    monkeypatch.setenv("RETRAIN_MODEL_NAME", "alpha")
    assert default_model(config) == ("alpha", "RETRAIN_MODEL_NAME")
    with model_scope("zeta"):
        assert default_model(config)[0] == "zeta"
    monkeypatch.delenv("RETRAIN_MODEL_NAME")
    assert default_model(ModelsConfig(None)) == ("demo", "built-in default")  # no file


def test_an_unknown_model_and_a_single_model_root_are_refused(tmp_path: Path) -> None:
    config = load_models_config(_config(tmp_path, "a", "b"))
    settings = Settings(home=tmp_path / "home", model_name="a")
    assert select_model("b", settings, "--model", config) == "b"
    with pytest.raises(Exception, match=r"no table \[models.c\]; known models: a, b"):
        select_model("c", settings, "--model", config)
    (settings.root / "models").mkdir(parents=True)
    (settings.root / "models" / "registry.json").write_text("{}")
    with pytest.raises(LayoutError, match=r"single-model layout .*retrain migrate-layout"):
        select_model("a", settings, "--model", config)
    assert select_model("a", settings, "--model", config, layout=False) == "a"


def test_one_cycle_per_model_at_once_and_models_do_not_wait_for_each_other(
    tmp_path: Path,
) -> None:
    a, b = tmp_path / "models" / "a", tmp_path / "models" / "b"
    waited: list[Path] = []
    with model_lock(a) as held:
        assert held == a / MODEL_LOCK_NAME
        with model_lock(b, timeout=0.0):  # another model: no wait
            pass
        busy = pytest.raises(CycleLockError, match=r"\.model\.lock: another retraining cycle")
        with busy, model_lock(a, timeout=0.3, on_wait=waited.append):
            pass
    assert waited == [a / MODEL_LOCK_NAME]
    with model_lock(a, timeout=0.0):  # released with its holder
        pass


# ------------------------------------------------------------------------------- migration


def _legacy_root(root: Path) -> dict[str, str]:
    """A single-model working root as earlier releases left it: a registry directly under
    ``models/`` whose version records ``data/prepared/<hash>``, base data, a report, a run."""
    registry = ModelRegistry(root / "models")
    folder = make_model(root / "staging" / "m1", seed=1)
    meta = json.loads((folder / "model.json").read_text())
    meta["data_manifest"] = {"sha256": "ab" * 32, "path": "data/prepared/abc123"}
    (folder / "model.json").write_text(json.dumps(meta))
    version = registry.register(folder, reason={"trigger": "test"})
    registry.promote(version, reason="first")
    (root / "data" / "raw").mkdir(parents=True)
    (root / "data" / "raw" / "customers.parquet").write_bytes(b"PAR1")
    (root / "data" / "prepared" / "abc123").mkdir(parents=True)
    (root / "reports" / "drift").mkdir(parents=True)
    (root / "reports" / "drift" / "r.json").write_text("{}")
    (root / "runs" / "old-run").mkdir(parents=True)
    return {"version": version, "sha256": registry.production().sha256}  # type: ignore[union-attr]


def test_migrate_layout_moves_every_folder_and_rewrites_the_data_path(tmp_path: Path) -> None:
    root = tmp_path / "home"
    before = _legacy_root(root)
    settings = Settings(home=root, model_name="churn")
    assert settings.legacy_layout

    result = migrate_layout(settings, "churn")

    assert sorted(result.moved) == sorted(KINDS)
    assert not settings.legacy_layout
    assert sorted(p.name for p in root.iterdir()) == [
        "data",
        "models",
        "reports",
        "runs",
        "staging",
    ]
    for kind in KINDS:
        assert [p.name for p in (root / kind).iterdir()] == ["churn"]
    assert (root / "data/churn/raw/customers.parquet").read_bytes() == b"PAR1"
    assert (root / "reports/churn/drift/r.json").exists()
    registry = ModelRegistry(settings.models_dir)
    prod = registry.production()
    assert prod is not None and (prod.version, prod.sha256) == (before["version"], before["sha256"])
    registry.verify(before["version"])  # checksum still good
    meta_path = settings.models_dir / "versions" / before["version"] / "model.json"
    meta = json.loads(meta_path.read_text())
    assert meta["data_manifest"]["path"] == "data/churn/prepared/abc123"
    assert (settings.root / meta["data_manifest"]["path"]).is_dir()
    assert stat.S_IMODE(meta_path.stat().st_mode) == 0o444  # still read-only
    events = [e["event"] for e in registry.history()]
    assert events[-1] == "migrated" and events[:2] == ["registered", "promoted"]

    with pytest.raises(LayoutError, match="nothing to migrate"):
        migrate_layout(settings, "churn")


def test_an_interrupted_migration_is_finished_by_running_it_again(tmp_path: Path) -> None:
    root = tmp_path / "home"
    _legacy_root(root)
    os.rename(root / "reports", root / ".reports.migrating")  # stopped after the first rename
    settings = Settings(home=root, model_name="a")
    migrate_layout(settings, "a")
    assert (root / "reports" / "a" / "drift" / "r.json").exists()
    assert not (root / ".reports.migrating").exists()


@pytest.mark.parametrize("fail_at", range(1, 9))
def test_a_migration_stopped_at_any_rename_is_refused_then_finished(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_at: int
) -> None:
    """Each kind takes two renames (park, then into <kind>/<name>): stop at each in turn, as a
    crash or a refused rename would; the root is refused until a rerun finishes the migration
    with every file in place and the data path rewritten."""
    import model.cycle.migrate_layout as migration

    root = tmp_path / "home"
    before = _legacy_root(root)
    settings = Settings(home=root, model_name="a")
    config = load_models_config(_config(tmp_path, "a"))
    calls = {"n": 0}
    real_rename = os.rename

    def rename(src: object, dst: object) -> None:
        calls["n"] += 1
        if calls["n"] == fail_at:
            raise OSError(18, "Invalid cross-device link")
        real_rename(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(migration.os, "rename", rename)
    with pytest.raises(OSError):
        migrate_layout(settings, "a")
    with pytest.raises(LayoutError, match=r"stopped before it finished.*migrate-layout --model a"):
        select_model("a", settings, "--model", config)
    with pytest.raises(LayoutError, match=r"stopped half-way; finish it with .*--model a"):
        migrate_layout(settings, "b")
    monkeypatch.setattr(migration.os, "rename", real_rename)

    migrate_layout(settings, "a")

    assert select_model("a", settings, "--model", config) == "a"
    assert sorted(p.name for p in root.iterdir()) == [*sorted(KINDS), "staging"]
    for kind in KINDS:
        assert [p.name for p in (root / kind).iterdir()] == ["a"]
    assert (root / "data/a/raw/customers.parquet").read_bytes() == b"PAR1"
    meta = ModelRegistry(settings.models_dir).metadata(before["version"])
    assert meta["data_manifest"]["path"] == "data/a/prepared/abc123"
    assert [e["event"] for e in ModelRegistry(settings.models_dir).history()][-1] == "migrated"


def test_a_model_name_that_collides_with_a_single_model_folder_is_refused(
    tmp_path: Path,
) -> None:
    root = tmp_path / "home"
    _legacy_root(root)
    for name, folder in (("prepared", "data/prepared"), ("drift", "reports/drift")):
        with pytest.raises(LayoutError, match="another model name"):
            migrate_layout(Settings(home=root, model_name=name), name)
        assert (root / folder).is_dir() and (root / "models" / "registry.json").is_file()


def test_migrate_layout_refuses_while_a_cycle_runs(tmp_path: Path) -> None:
    root = tmp_path / "home"
    _legacy_root(root)
    lock = root / "runs" / "old-run" / ".cycle.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        with pytest.raises(CycleLockError, match="a retraining cycle is running"):
            migrate_layout(Settings(home=root, model_name="a"), "a")
    finally:
        os.close(fd)
    assert (root / "models" / "registry.json").exists()  # nothing moved


def test_the_cli_names_the_model_before_or_after_the_command_and_migrates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "home"
    monkeypatch.setenv("RETRAIN_HOME", str(root))
    monkeypatch.setenv("RETRAIN_CONFIG", str(_config(tmp_path, "a", "b")))
    monkeypatch.delenv("RETRAIN_MODEL_NAME", raising=False)
    before = _legacy_root(root)

    assert retrain(["history"]) == 2
    assert "single-model layout" in capsys.readouterr().err
    config = Path(os.environ["RETRAIN_CONFIG"])
    config.write_text(config.read_text() + 'incoming_path = "data/incoming"\n')  # in [models.b]
    assert retrain(["migrate-layout", "--model", "b"]) == 0
    out = capsys.readouterr().out
    assert "moved models/ -> models/b/" in out
    assert "incoming_path = 'data/incoming' names the old folder; change it to " in out
    assert "'data/b/incoming'" in out
    config.write_text(config.read_text().replace('incoming_path = "data/incoming"\n', ""))

    assert retrain(["--model", "b", "history"]) == 0
    assert before["version"] in capsys.readouterr().out
    assert retrain(["history", "--model", "b"]) == 0
    assert before["version"] in capsys.readouterr().out
    assert retrain(["history"]) == 0  # the default model (the file's first, a): empty
    assert before["version"] not in capsys.readouterr().out
    assert retrain(["challenger", "--model", "b", "show"]) == 0  # between a group and its action
    capsys.readouterr()
    assert retrain(["challenger", "--model", "c", "show"]) == 2  # ... and read there
    assert "no table [models.c]" in capsys.readouterr().err
    assert retrain(["history", "--model", "c"]) == 2
    assert "no table [models.c]" in capsys.readouterr().err
