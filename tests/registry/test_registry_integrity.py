"""Issue 12, registry cases: symbolic links in versions/, reads that never write, history
tail repair, models that do not load, rollback targets gc deleted.

Each test reproduces a failure of the bad-input probe and fails on the code before the fix.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

import pytest
from fakes import make_model

from model.cli import main
from model.errors import ModelLoadError, RegistryError, RegistryWarning
from model.registry import ModelRegistry
from model.settings import Settings


@pytest.fixture
def models(tmp_path: Path) -> list[Path]:
    return [make_model(tmp_path / f"m{i}", seed=i, auc=0.8 + i / 100) for i in range(1, 6)]


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def snapshot(root: Path) -> dict[str, object]:
    """Every entry under ``root``: file bytes, link targets, folders."""
    out: dict[str, object] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = ("link", os.readlink(p))
            elif p.is_file():
                out[rel] = p.read_bytes()
            else:
                out[rel] = "dir"
    return out


def outside_model(tmp_path: Path, seed: int = 9) -> Path:
    """A valid model folder outside the registry, with a file that must survive."""
    folder = make_model(tmp_path / "elsewhere", seed=seed)
    (folder / "keep.txt").write_text("not the registry's")
    return folder


# --------------------------------------------------------------------------- item 2: links


def test_a_symbolic_link_among_the_temp_entries_never_blocks_a_write(
    tmp_path: Path, models: list[Path]
) -> None:
    reg = ModelRegistry(tmp_path / "models")
    v1, v2 = reg.register(models[0]), reg.register(models[1])
    reg.promote(v1, "first")
    elsewhere = outside_model(tmp_path)
    (reg.versions_dir / ".tmp-x").symlink_to(elsewhere)
    (reg.versions_dir / ".trash-v0007-abc").symlink_to(elsewhere)
    reg.promote(v2, "hotfix", force=True)  # was: "Cannot call rmtree on a symbolic link"
    assert reg.rollback() == v1
    v3 = reg.register(models[2])
    reg.set_challenger(v3, 10)
    assert not (reg.versions_dir / ".tmp-x").is_symlink()  # unlinked, not followed
    assert not (reg.versions_dir / ".trash-v0007-abc").is_symlink()
    assert (elsewhere / "keep.txt").read_text() == "not the registry's"
    assert (elsewhere / "model.pt").is_file()


def test_a_symlinked_version_is_ignored_refused_and_unlinked_by_gc(
    settings: Settings, tmp_path: Path, models: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    reg = ModelRegistry(settings.models_dir)
    v1, v2 = reg.register(models[0]), reg.register(models[1])
    reg.promote(v1, "first")
    elsewhere = outside_model(tmp_path)
    link = reg.versions_dir / "v0003"
    link.symlink_to(elsewhere)

    with pytest.warns(RegistryWarning, match=r"v0003 is a symbolic link .* ignored"):
        listed = [v.version for v in reg.versions()]
    assert listed == [v1, v2] and reg.version_names() == [v1, v2]
    with pytest.raises(RegistryError, match="v0003 is a symbolic link"):
        reg.promote("v0003", "outside the registry", force=True)
    with pytest.raises(RegistryError, match="symbolic link"):
        reg.set_challenger("v0003", 10)
    assert reg.production().version == v1  # type: ignore[union-attr]
    code, out, err = run_cli(capsys, "versions")
    assert code == 0 and "v0003" not in out and "warning: " in err and "v0003" in err
    code, out, err = run_cli(capsys, "status")
    out = " ".join(out.split())
    assert code == 2 and "v0003 is a symbolic link" in out and "retrain gc" in out
    assert "needs repair" in err

    assert reg.register(models[2]) == "v0004"  # the link's name is not reused, nor adopted
    assert not [e for e in reg.history() if e.get("version") == "v0003"]

    dry = reg.gc(keep=10, dry_run=True)
    assert dry.delete == ["v0003"] and link.is_symlink()
    code, out, _ = run_cli(capsys, "gc", "--keep", "10")
    assert code == 0 and "deleted 1 version(s)" in out
    assert not link.is_symlink() and not link.exists()
    assert not [p for p in reg.versions_dir.iterdir() if p.name.startswith(".trash-")]
    assert (elsewhere / "keep.txt").is_file() and (elsewhere / "model.pt").is_file()
    ev = reg.history()[-1]
    assert ev["event"] == "deleted" and ev["version"] == "v0003"
    assert ev["link_target"] == str(elsewhere)
    code, _, _ = run_cli(capsys, "status")
    assert code == 0


def test_a_model_folder_with_linked_files_is_refused_by_name(
    tmp_path: Path, models: list[Path]
) -> None:
    reg = ModelRegistry(tmp_path / "models")
    folder = tmp_path / "linked"
    folder.mkdir()
    (folder / "model.pt").symlink_to(models[0] / "model.pt")
    (folder / "model.json").write_bytes((models[0] / "model.json").read_bytes())
    with pytest.raises(RegistryError, match=r"linked/model.pt is a symbolic link"):
        reg.register(folder)
    assert reg.version_names() == [] and reg.history() == []


def test_a_production_that_is_a_symbolic_link_is_never_loaded(
    settings: Settings,
    tmp_path: Path,
    real_models: list[Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A registry where an older version promoted a link (production outside it)."""
    from model.serving import load_production

    reg = ModelRegistry(settings.models_dir)
    v1 = reg.register(real_models[0])
    reg.promote(v1, "first")
    elsewhere = real_models[1]  # a model that loads, outside the registry
    (reg.versions_dir / "v0002").symlink_to(elsewhere)
    pointer = json.loads(reg.pointer_path.read_text())
    sha = json.loads((elsewhere / "model.json").read_text())["sha256"]
    reg.pointer_path.write_text(json.dumps({**pointer, "version": "v0002", "sha256": sha}))
    os.unlink(reg.production_path())
    os.symlink("versions/v0002", reg.production_path())

    with pytest.raises(ModelLoadError, match="symbolic link"):
        load_production(settings)
    code, out, _ = run_cli(capsys, "status")
    out = " ".join(out.split())
    assert code == 2 and "production v0002 is a symbolic link out of the registry" in out
    code, out, _ = run_cli(capsys, "gc", "--keep", "0")
    assert code == 0 and (reg.versions_dir / "v0002").is_symlink()  # production: kept


# --------------------------------------------------------------------------- item 4: reads


def test_a_read_never_rewrites_the_pointer_and_status_reports_the_damage(
    settings: Settings, models: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    reg = ModelRegistry(settings.models_dir)
    v1, v2 = reg.register(models[0]), reg.register(models[1])
    reg.promote(v1, "first")
    reg.promote(v2, "second", force=True)
    good_pointer = reg.pointer_path.read_bytes()
    os.unlink(reg.production_path())
    os.symlink("versions/v0009", reg.production_path())  # ln -sfn versions/v0009 production
    before = snapshot(reg.root)

    prod = reg.production()  # production.json records the last completed switch
    assert prod is not None and prod.version == v2
    assert prod.sha256 == reg.metadata(v2)["sha256"]
    code, out, err = run_cli(capsys, "status")
    assert code == 2
    assert "Production  v0002" in out
    out = " ".join(out.split())
    assert "the production link names v0009 (missing)" in out and "retrain recover" in out
    assert "needs repair" in err
    code, out, err = run_cli(capsys, "versions")
    assert code == 0 and "v0002    production" in out
    assert err.startswith("warning: the production link names v0009 (missing)")
    for argv in (["history"], ["challenger", "show"], ["gc", "--dry-run"]):
        run_cli(capsys, *argv)
    assert snapshot(reg.root) == before  # nothing read wrote anything
    assert reg.pointer_path.read_bytes() == good_pointer

    code, out, _ = run_cli(capsys, "recover")
    assert code == 0 and "Recorded recovered v0002" in out
    assert os.readlink(reg.production_path()) == "versions/v0002"
    assert reg.pointer_path.read_bytes() == good_pointer
    ev = reg.history()[-1]
    assert ev["event"] == "recovered" and ev["version"] == v2 and ev["previous"] == "v0009"
    assert "link was repaired" in ev["reason"] and "v0009 (missing)" in ev["reason"]
    assert reg.rollback() == v1  # production_stack unharmed by the recovered event
    code, out, _ = run_cli(capsys, "status")
    assert code == 0 and "Problems" not in out
    code, out, _ = run_cli(capsys, "recover")
    assert code == 0 and out.strip() == "Nothing to repair"


def test_any_write_repairs_the_link_from_the_pointer_under_the_lock(
    tmp_path: Path, models: list[Path]
) -> None:
    reg = ModelRegistry(tmp_path / "models")
    v1, v2 = reg.register(models[0]), reg.register(models[1])
    reg.promote(v1, "first")
    os.unlink(reg.production_path())
    os.symlink(f"versions/{v2}", reg.production_path())  # a valid version, but not production
    assert reg.production().version == v1  # type: ignore[union-attr]
    with pytest.raises(RegistryError, match="no recorded comparison"):
        reg.promote(v2, "gated")  # the write recovered first: v2 is not production
    assert os.readlink(reg.production_path()) == f"versions/{v1}"
    assert [e["event"] for e in reg.history()][-1] == "recovered"


def test_with_a_pending_switch_the_link_decides(tmp_path: Path, models: list[Path]) -> None:
    reg = ModelRegistry(tmp_path / "models")
    v1, v2 = reg.register(models[0]), reg.register(models[1])
    reg.promote(v1, "first")
    ev = {"event": "forced", "time": "2026-11-27T10:00:00.000Z", "id": "e1", "version": v2}
    reg._pending_path.write_text(json.dumps({"format_version": 1, "event": ev}))
    assert reg.production().version == v1  # type: ignore[union-attr]  # not committed
    assert reg._pending_path.exists()  # the read discarded nothing
    assert any("before its commit point" in p for p in reg.problems())
    os.unlink(reg.production_path())
    os.symlink(f"versions/{v2}", reg.production_path())  # the link moved: committed
    prod = reg.production()
    assert prod is not None and prod.version == v2 and prod.event == "forced"
    assert any("after its commit point" in p for p in reg.problems())
    assert reg._pending_path.exists() and json.loads(reg.pointer_path.read_text())["version"] == v1
    reg.recover()
    assert json.loads(reg.pointer_path.read_text())["version"] == v2
    assert [e["event"] for e in reg.history()][-1] == "forced" and reg.problems() == []


# --------------------------------------------------------------------------- item 5: history


def test_a_last_event_without_its_newline_is_kept_and_completed(
    tmp_path: Path, models: list[Path]
) -> None:
    reg = ModelRegistry(tmp_path / "models")
    v1 = reg.register(models[0])
    reg.promote(v1, "first")
    with open(reg.history_path, "rb+") as f:  # truncate -s -1 history.jsonl
        f.truncate(os.path.getsize(reg.history_path) - 1)
    assert [e["event"] for e in reg.history()] == ["registered", "promoted"]
    reg.record("skipped", reasons=["nothing fired"])
    lines = reg.history_path.read_text().splitlines()
    assert [json.loads(ln)["event"] for ln in lines] == ["registered", "promoted", "skipped"]
    assert reg.history_path.read_bytes().endswith(b"}\n")


# --------------------------------------------------------------------------- item 7: loads


def pickle_payload(folder: Path, marker: Path) -> Path:
    """Replace model.pt with a pickle that would create ``marker`` if unpickled, and update
    model.json's checksum so that only loading can tell."""
    torch = pytest.importorskip("torch")

    class Payload:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (os.mkdir, (str(marker),))

    pt = folder / "model.pt"
    os.chmod(pt, 0o644)
    torch.save({"weight": torch.zeros(2), "payload": Payload()}, pt)
    meta = json.loads((folder / "model.json").read_text())
    meta["sha256"] = hashlib.sha256(pt.read_bytes()).hexdigest()
    (folder / "model.json").write_text(json.dumps(meta))
    return folder


def test_register_and_force_promote_refuse_a_model_that_does_not_load(
    settings: Settings,
    tmp_path: Path,
    real_models: list[Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    marker = tmp_path / "payload-ran"
    bad = pickle_payload(real_models[1], marker)
    code, out, err = run_cli(capsys, "register", str(real_models[0]))
    assert code == 0 and out.startswith("Registered v0001")
    code, _, err = run_cli(capsys, "promote", "v0001")
    assert code == 0

    code, out, err = run_cli(capsys, "register", str(bad))
    assert code == 2 and str(bad) in err and "does not load as a model" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    reg = ModelRegistry(settings.models_dir)
    assert reg.version_names() == ["v0001"]
    assert [p.name for p in reg.versions_dir.iterdir()] == ["v0001"]  # no temp left

    # A registry built without a verifier checks checksums only (as before): it takes it.
    v2 = ModelRegistry(settings.models_dir).register(bad)
    code, _, err = run_cli(capsys, "promote", v2, "--force", "--reason", "hotfix")
    assert code == 2 and "version v0002 does not load as a model" in err
    code, _, err = run_cli(capsys, "challenger", "set", v2, "--traffic", "10")
    assert code == 2 and "does not load" in err
    assert reg.production().version == "v0001"  # type: ignore[union-attr]
    assert reg.challenger() is None and not marker.exists()  # the payload never ran


def test_the_register_task_refuses_a_model_that_does_not_load(
    settings: Settings, tmp_path: Path, real_models: list[Path]
) -> None:
    pytest.importorskip("prefect")
    from prefect.logging import disable_run_logger

    from tasks.registry import register_model

    bad = pickle_payload(real_models[0], tmp_path / "payload-ran")
    with disable_run_logger(), pytest.raises(RegistryError, match="does not load as a model"):
        register_model.fn(str(bad))
    assert ModelRegistry(settings.models_dir).version_names() == []


# --------------------------------------------------------------------------- rollback target


def test_status_offers_only_a_rollback_target_that_still_exists(
    settings: Settings, models: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    reg = ModelRegistry(settings.models_dir)
    v1, v2, v3 = (reg.register(m) for m in models[:3])
    reg.promote(v1, "first")
    reg.promote(v2, "second", force=True)
    reg.promote(v3, "third", force=True)
    assert reg.gc(keep=0, keep_production=False).delete == [v1]  # v3, v2 (predecessor) kept
    assert reg.rollback() == v2  # now the one before v2 would be v1: deleted
    code, out, _ = run_cli(capsys, "status")
    out = " ".join(out.split())
    assert code == 0 and "Rollback to -" in out and "v0001" in out and "deleted by gc" in out
    assert reg.previous_production() is None
    with pytest.raises(RegistryError, match="no production version before v0002"):
        reg.rollback()

    reg.promote(v3, "again", force=True)  # rollback target: v2 again; corrupt it
    pt = reg.version_path(v2) / "model.pt"
    os.chmod(pt, 0o644)
    pt.write_bytes(b"bit rot")
    code, out, _ = run_cli(capsys, "status")
    assert "Rollback to -" in out and "v0002 does not verify" in out
    assert reg.production().version == v3  # type: ignore[union-attr]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning on a registry without links
        reg.versions()
