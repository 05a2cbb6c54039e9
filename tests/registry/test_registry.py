"""The model registry: versions, promotion gate, rollback, history, challenger, gc, CLI."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from fakes import REPO_ROOT, make_model

from model.cli import main
from model.errors import RegistryError
from model.registry import (
    AlreadyProductionError,
    ModelRegistry,
    check_model_folder,
    production_stack,
)
from model.settings import Settings


@pytest.fixture
def reg(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(tmp_path / "models")


@pytest.fixture
def models(tmp_path: Path) -> list[Path]:
    return [make_model(tmp_path / f"m{i}", seed=i, auc=0.8 + i / 100) for i in range(1, 6)]


def events(reg: ModelRegistry) -> list[str]:
    return [e["event"] for e in reg.history()]


# --------------------------------------------------------------------------- register


def test_register_copies_into_immutable_numbered_versions(
    reg: ModelRegistry, models: list[Path]
) -> None:
    assert reg.register(models[0], reason="first", run_id="run-1") == "v0001"
    assert reg.register(models[1]) == "v0002"
    v1 = reg.version_path("v0001")
    assert (v1 / "model.pt").read_bytes() == (models[0] / "model.pt").read_bytes()
    assert not os.stat(v1 / "model.pt").st_mode & stat.S_IWUSR  # read-only
    assert sorted(p.name for p in reg.versions_dir.iterdir()) == ["v0001", "v0002"]
    ev = reg.history()[0]
    assert ev["event"] == "registered" and ev["version"] == "v0001"
    assert ev["sha256"] == reg.metadata("v0001")["sha256"]
    assert ev["run_id"] == "run-1" and ev["reason"] == "first"
    assert ev["metrics"]["auc"] == pytest.approx(0.81)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", ev["time"])
    assert json.loads((reg.root / "registry.json").read_text())["format_version"] == 1
    assert [v.status for v in reg.versions()] == ["candidate", "candidate"]


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda f: (f / "model.pt").write_bytes(b"tampered"), "checksum mismatch"),
        (lambda f: (f / "model.json").unlink(), "missing model.json"),
        (lambda f: (f / "model.json").write_text("{not json"), "cannot read"),
        (
            lambda f: (f / "model.json").write_text(
                json.dumps({**json.loads((f / "model.json").read_text()), "format_version": 9})
            ),
            "format_version 9",
        ),
    ],
)
def test_register_refuses_a_broken_model_folder(
    reg: ModelRegistry, models: list[Path], damage, message: str
) -> None:
    damage(models[0])
    with pytest.raises(RegistryError, match=message):
        reg.register(models[0])
    assert reg.version_names() == []
    assert reg.history() == []


def test_version_numbers_are_never_reused_after_deletion(
    reg: ModelRegistry, models: list[Path]
) -> None:
    for m in models[:3]:
        reg.register(m)
    reg.gc(keep=1)
    assert reg.version_names() == ["v0003"]
    assert reg.register(models[3]) == "v0004"


@pytest.mark.parametrize("name", ["../v0001", "/etc/passwd", "v1", "v001", "v0001/..", "", "V0001"])
def test_version_names_are_validated(reg: ModelRegistry, name: str) -> None:
    for call in (
        lambda: reg.version_path(name),
        lambda: reg.metadata(name),
        lambda: reg.promote(name, "x", force=True),
        lambda: reg.rollback(name),
        lambda: reg.set_challenger(name, 10),
    ):
        with pytest.raises(RegistryError, match="invalid version name"):
            call()


# --------------------------------------------------------------------------- promote


def test_first_promotion_needs_no_comparison_and_links_production(
    reg: ModelRegistry, models: list[Path]
) -> None:
    v = reg.register(models[0])
    reg.promote(v, "first model", run_id="run-7")
    link = reg.production_path()
    assert link.is_symlink() and os.readlink(link) == "versions/v0001"  # relative target
    assert (link / "model.pt").read_bytes() == (models[0] / "model.pt").read_bytes()
    pointer = json.loads(reg.pointer_path.read_text())
    assert pointer["version"] == "v0001" and pointer["format_version"] == 1
    assert pointer["sha256"] == reg.metadata(v)["sha256"]
    prod = reg.production()
    assert prod is not None and prod.version == v and prod.promoted_at == pointer["promoted_at"]
    assert prod.path == reg.version_path(v) and prod.reason == "first model"
    ev = reg.last_event("promoted")
    assert ev is not None and ev["run_id"] == "run-7" and ev["version"] == v


def test_promotion_is_gated_by_a_recorded_promote_comparison(
    reg: ModelRegistry, models: list[Path]
) -> None:
    v1, v2 = reg.register(models[0]), reg.register(models[1])
    reg.promote(v1, "first")
    with pytest.raises(RegistryError, match="no recorded comparison"):
        reg.promote(v2, "better?")
    reg.record("compared", version=v2, baseline=v1, decision="REJECT", reasons=["worse"])
    with pytest.raises(RegistryError, match="decided 'REJECT'"):
        reg.promote(v2, "better?")
    reg.record("compared", version=v2, baseline=v1, decision="PROMOTE", reasons=["AUC +0.02"])
    reg.promote(v2, None)
    assert reg.production().version == v2  # type: ignore[union-attr]
    reasons = [e["reason"] for e in reg.history() if e["event"] == "promoted"]
    assert reasons == [
        "first",
        "last recorded comparison decided PROMOTE",
    ]
    # The old production version is untouched: it is the backup.
    check_model_folder(reg.version_path(v1))


def test_promotion_refuses_a_stale_or_mismatched_comparison(
    reg: ModelRegistry, models: list[Path]
) -> None:
    v1, v2, v3 = (reg.register(m) for m in models[:3])
    reg.promote(v1, "first")
    reg.record("compared", version=v3, baseline=v1, decision="PROMOTE")
    reg.promote(v2, "x", force=True)
    with pytest.raises(RegistryError, match="compared with v0001, but production is now v0002"):
        reg.promote(v3, "x")
    summary = {"decision": "PROMOTE", "baseline_version": v2, "candidate_version": v2}
    with pytest.raises(RegistryError, match="comparison is about v0002"):
        reg.promote(v3, "x", comparison=summary)
    # The flow's call: the comparison summary passed in.
    summary = {"decision": "PROMOTE", "baseline_version": v2, "candidate_version": v3}
    reg.promote(v3, "AUC better", comparison=summary, run_id="r1")
    ev = reg.last_event("promoted", version=v3)
    assert ev is not None and ev["comparison"]["decision"] == "PROMOTE" and ev["previous"] == v2
    with pytest.raises(RegistryError, match="decided 'REJECT'"):
        reg.promote(v1, "x", comparison={"decision": "REJECT"})


def test_a_recorded_comparison_with_no_production_goes_stale_once_one_is_promoted(
    reg: ModelRegistry, models: list[Path]
) -> None:
    """Two candidates both compared while there was no production model (what the flow
    records, ``baseline=None``): after the first is promoted, the second's comparison is
    stale and `retrain promote` (no summary passed in) must refuse it."""
    v1, v2 = (reg.register(m) for m in models[:2])
    for v in (v1, v2):
        reg.record("compared", version=v, baseline=None, decision="PROMOTE")
    ev = reg.last_event("compared", version=v2)
    assert ev is not None and "baseline" in ev and ev["baseline"] is None
    reg.promote(v1, None)
    with pytest.raises(RegistryError, match="compared with no production model"):
        reg.promote(v2, None)
    assert reg.production().version == v1  # type: ignore[union-attr]


def test_force_promotion_needs_a_reason_and_is_recorded_as_forced(
    reg: ModelRegistry, models: list[Path]
) -> None:
    v1, v2 = reg.register(models[0]), reg.register(models[1])
    reg.promote(v1, "first")
    with pytest.raises(RegistryError, match="needs a reason"):
        reg.promote(v2, "  ", force=True)
    reg.promote(v2, "hotfix for incident 42", force=True)
    ev = reg.history()[-1]
    assert ev["event"] == "forced" and ev["reason"] == "hotfix for incident 42"
    assert ev["previous"] == v1 and ev["previous_sha256"] == reg.metadata(v1)["sha256"]
    with pytest.raises(AlreadyProductionError):
        reg.promote(v2, "again", force=True)


def test_a_corrupt_version_is_never_promoted_and_is_reported(
    reg: ModelRegistry, models: list[Path]
) -> None:
    v1, v2 = reg.register(models[0]), reg.register(models[1])
    reg.promote(v1, "first")
    pt = reg.version_path(v2) / "model.pt"
    os.chmod(pt, 0o644)
    pt.write_bytes(b"bit rot")
    with pytest.raises(RegistryError, match="checksum mismatch"):
        reg.promote(v2, "x", force=True)
    assert reg.production().version == v1  # type: ignore[union-attr]
    bad = {v.version: v for v in reg.versions()}[v2]
    assert not bad.valid and "checksum mismatch" in (bad.problem or "")


def test_a_plain_production_folder_is_refused(reg: ModelRegistry, models: list[Path]) -> None:
    v1 = reg.register(models[0])
    (reg.root / "production").mkdir()
    with pytest.raises(RegistryError, match="plain folder"):
        reg.promote(v1, "x", force=True)


def test_a_registry_of_a_newer_format_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "models"
    root.mkdir()
    (root / "registry.json").write_text(json.dumps({"format_version": 2}))
    with pytest.raises(RegistryError, match="registry format 2 was written by a newer version"):
        ModelRegistry(root)


# --------------------------------------------------------------------------- rollback


def test_rollback_restores_a_byte_identical_model(reg: ModelRegistry, models: list[Path]) -> None:
    v1, v2, v3 = (reg.register(m) for m in models[:3])
    reg.promote(v1, "first")
    reg.promote(v2, "second", force=True)
    reg.promote(v3, "third", force=True)
    assert reg.rollback(reason="v3 misbehaves", run_id="r9") == v2
    prod_pt = reg.production_path() / "model.pt"
    assert prod_pt.read_bytes() == (models[1] / "model.pt").read_bytes()
    assert reg.rollback() == v1  # rolling back again goes further back
    assert prod_pt.read_bytes() == (models[0] / "model.pt").read_bytes()
    with pytest.raises(RegistryError, match="no production version before v0001"):
        reg.rollback()
    ev = [e for e in reg.history() if e["event"] == "rolled_back"]
    assert [(e["previous"], e["version"]) for e in ev] == [(v3, v2), (v2, v1)]
    assert ev[0]["reason"] == "v3 misbehaves" and ev[0]["run_id"] == "r9"
    statuses = {v.version: v.status for v in reg.versions()}
    assert statuses == {v1: "production", v2: "retired", v3: "retired"}


def test_rollback_to_a_named_production_version(reg: ModelRegistry, models: list[Path]) -> None:
    v1, v2, v3, v4 = (reg.register(m) for m in models[:4])
    reg.promote(v1, "first")
    reg.promote(v2, "x", force=True)
    reg.promote(v3, "x", force=True)
    assert reg.rollback(to=v1) == v1
    assert reg.previous_production() is None  # v2 and v3 popped off the stack
    with pytest.raises(RegistryError, match="never been in production"):
        reg.rollback(to=v4)
    with pytest.raises(AlreadyProductionError):
        reg.rollback(to=v1)
    assert reg.rollback(to=v3) == v3


def test_rollback_without_production_is_refused(reg: ModelRegistry) -> None:
    with pytest.raises(RegistryError, match="no production model"):
        reg.rollback()


def test_production_stack_replays_promotions_and_rollbacks() -> None:
    evs = [
        {"event": "promoted", "version": "v0001"},
        {"event": "compared", "version": "v0002"},
        {"event": "promoted", "version": "v0002"},
        {"event": "forced", "version": "v0003"},
        {"event": "rolled_back", "version": "v0002"},
        {"event": "promoted", "version": "v0004"},
    ]
    assert production_stack(evs) == ["v0001", "v0002", "v0004"]


# --------------------------------------------------------------------------- history


def test_record_appends_flow_events_and_refuses_others(
    reg: ModelRegistry, models: list[Path]
) -> None:
    v1 = reg.register(models[0])
    ev = reg.record(
        "compared",
        version=v1,
        baseline=None,
        decision="PROMOTE",
        reasons=["no production model"],
        metrics={"auc": {"baseline": None, "candidate": 0.9}, "nan": float("nan")},
        reports={"json": Path("reports/c.json")},
        run_id="abc",
    )
    assert ev["reports"] == {"json": "reports/c.json"} and ev["metrics"]["nan"] is None
    reg.record("skipped", reasons=["no trigger fired"])
    reg.record("failed", version=None, error="boom")
    for bad in ("promoted", "rolled_back", "registered", "bogus"):
        with pytest.raises(RegistryError, match="cannot record"):
            reg.record(bad, version=v1)
    with pytest.raises(RegistryError, match="reserved"):
        reg.record("skipped", time="yesterday")
    with pytest.raises(RegistryError, match="invalid version"):
        reg.record("compared", version="../x")
    assert events(reg) == ["registered", "compared", "skipped", "failed"]
    assert [e["event"] for e in reg.history(2)] == ["skipped", "failed"]
    assert reg.last_event("compared", version=v1)["run_id"] == "abc"  # type: ignore[index]
    assert reg.last_event("compared", version="v0009") is None
    lines = reg.history_path.read_text().splitlines()
    assert len(lines) == 4 and all(json.loads(ln) for ln in lines)


def test_a_torn_last_history_line_is_ignored_then_repaired(
    reg: ModelRegistry, models: list[Path]
) -> None:
    reg.register(models[0])
    with open(reg.history_path, "ab") as f:
        f.write(b'{"event": "comp')  # a write cut short by a crash
    assert events(reg) == ["registered"]
    reg.record("skipped", reasons=["x"])
    lines = reg.history_path.read_text().splitlines()
    assert [json.loads(ln)["event"] for ln in lines] == ["registered", "skipped"]


# --------------------------------------------------------------------------- recovery


def test_an_invalid_pointer_is_repaired_from_a_valid_link(
    reg: ModelRegistry, models: list[Path]
) -> None:
    v1, v2 = reg.register(models[0]), reg.register(models[1])
    reg.promote(v1, "first")
    reg.promote(v2, "x", force=True)
    pointer = json.loads(reg.pointer_path.read_text())
    # Names v1 with v2's checksum: not a record of any switch; the link (v2) is valid.
    reg.pointer_path.write_text(json.dumps({**pointer, "version": v1}))
    before = reg.pointer_path.read_bytes()
    prod = reg.production()
    assert prod is not None and prod.version == v2
    assert reg.pointer_path.read_bytes() == before  # reading never writes
    assert any("while the production link names v0002, a valid" in p for p in reg.problems())
    reg.recover()
    assert json.loads(reg.pointer_path.read_text())["version"] == v2
    ev = reg.history()[-1]
    assert ev["event"] == "recovered" and ev["version"] == v2 and ev["previous"] == v1
    assert "production.json was rewritten" in ev["reason"] and reg.problems() == []


def test_an_interrupted_switch_is_finished_or_discarded(
    reg: ModelRegistry, models: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import model.registry.files as registry_module

    v1, v2 = reg.register(models[0]), reg.register(models[1])
    reg.promote(v1, "first")

    class Crash(Exception):
        pass

    def crash_at(step: str):
        def hook(name: str) -> None:
            if name == step:
                raise Crash(step)

        return hook

    n = len(reg.history())
    monkeypatch.setattr(registry_module, "_checkpoint", crash_at("pending"))
    with pytest.raises(Crash):
        reg.promote(v2, "x", force=True)
    monkeypatch.setattr(registry_module, "_checkpoint", None)
    assert reg.production().version == v1  # type: ignore[union-attr]  # not committed
    assert (reg.root / ".pending.json").exists()  # reading leaves it
    reg.recover()  # discarded
    assert len(reg.history()) == n and not (reg.root / ".pending.json").exists()

    monkeypatch.setattr(registry_module, "_checkpoint", crash_at("link"))
    with pytest.raises(Crash):
        reg.promote(v2, "x", force=True)
    monkeypatch.setattr(registry_module, "_checkpoint", None)
    prod = reg.production()  # committed: production already, though not yet recorded
    assert prod is not None and prod.version == v2 and prod.event == "forced"
    assert events(reg)[n:] == []
    reg.recover()  # finished: pointer written, event appended once
    assert events(reg)[n:] == ["forced"]
    assert json.loads(reg.pointer_path.read_text())["version"] == v2
    reg.recover()
    assert events(reg)[n:] == ["forced"]


def test_a_dangling_temp_folder_from_a_crashed_registration_is_removed(
    reg: ModelRegistry, models: list[Path]
) -> None:
    reg.register(models[0])
    junk = reg.versions_dir / ".tmp-deadbeef"
    junk.mkdir()
    (junk / "model.pt").write_bytes(b"half")
    assert reg.register(models[1]) == "v0002"
    assert not junk.exists()


def test_a_registration_interrupted_after_the_rename_is_recorded_later(
    reg: ModelRegistry, models: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import model.registry.files as registry_module

    class Crash(Exception):
        pass

    def hook(name: str) -> None:
        if name == "register_renamed":
            raise Crash(name)

    monkeypatch.setattr(registry_module, "_checkpoint", hook)
    with pytest.raises(Crash):
        reg.register(models[0])
    monkeypatch.setattr(registry_module, "_checkpoint", None)
    assert reg.version_names() == ["v0001"] and reg.history() == []
    assert reg.register(models[1]) == "v0002"
    evs = reg.history()
    assert [(e["event"], e["version"], e.get("recovered")) for e in evs] == [
        ("registered", "v0001", True),
        ("registered", "v0002", None),
    ]


# --------------------------------------------------------------------------- challenger


def test_challenger_set_show_clear(reg: ModelRegistry, models: list[Path]) -> None:
    v1, v2 = reg.register(models[0]), reg.register(models[1])
    reg.promote(v1, "first")
    assert reg.challenger() is None
    for bad in (-5, 101, True):
        with pytest.raises(RegistryError, match="traffic"):
            reg.set_challenger(v2, bad)
    with pytest.raises(RegistryError, match="is the production model"):
        reg.set_challenger(v1, 10)
    info = reg.set_challenger(v2, 10, reason="A/B")
    assert reg.challenger() == info and info.traffic == 10.0
    assert {v.version: v.challenger for v in reg.versions()} == {v1: False, v2: True}
    assert reg.clear_challenger() and reg.challenger() is None
    assert not reg.clear_challenger()
    ch = [e for e in reg.history() if e["event"] == "challenger"]
    assert [e["action"] for e in ch] == ["set", "clear"]
    assert ch[0]["mode"] == "routed" and "replaces" not in ch[0]


def test_a_shadow_challenger_serves_no_traffic_and_a_newer_one_replaces_it(
    reg: ModelRegistry, models: list[Path]
) -> None:
    v1, v2, v3 = (reg.register(m) for m in models[:3])
    reg.promote(v1, "first")
    info = reg.set_challenger(v2, 0, reason="INCONCLUSIVE")
    assert info.traffic == 0.0 and reg.challenger() == info
    reg.set_challenger(v3, 0, reason="newer INCONCLUSIVE")
    current = reg.challenger()
    assert current is not None and current.version == v3
    ch = [e for e in reg.history() if e["event"] == "challenger"]
    assert [(e["version"], e["mode"], e.get("replaces")) for e in ch] == [
        (v2, "shadow", None),
        (v3, "shadow", v2),
    ]


def test_promoting_the_challenger_clears_it(reg: ModelRegistry, models: list[Path]) -> None:
    v1, v2 = reg.register(models[0]), reg.register(models[1])
    reg.promote(v1, "first")
    reg.set_challenger(v2, 20)
    reg.promote(v2, "won the A/B test", force=True)
    assert reg.challenger() is None
    assert reg.history()[-1]["challenger_cleared"] is True


def test_an_unreadable_challenger_file_never_blocks_promotion_or_rollback(
    settings: Settings, models: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    reg = ModelRegistry(settings.models_dir)
    v1, v2 = reg.register(models[0]), reg.register(models[1])
    reg.promote(v1, "first")
    reg.challenger_path.write_text("{broken")
    reg.promote(v2, "hotfix", force=True)
    assert reg.rollback() == v1  # the emergency path works with a broken challenger file
    code, out, _ = run_cli(capsys, "status")
    assert code == 0 and "Challenger  ! " in out and "Versions    2" in out
    code, out, _ = run_cli(capsys, "challenger", "clear")
    assert code == 0 and "Challenger cleared" in out
    assert not reg.challenger_path.exists() and reg.challenger() is None
    ev = reg.history()[-1]
    assert ev["event"] == "challenger" and ev["action"] == "clear" and "problem" in ev


# --------------------------------------------------------------------------- gc


def test_gc_keeps_recent_production_predecessor_and_challenger(
    tmp_path: Path, reg: ModelRegistry
) -> None:
    vs = [reg.register(make_model(tmp_path / f"g{i}", seed=i)) for i in range(8)]
    reg.promote(vs[0], "first")  # v0001 once in production
    reg.promote(vs[2], "x", force=True)  # v0003: predecessor of production
    reg.promote(vs[3], "x", force=True)  # v0004: production
    reg.set_challenger(vs[4], 5)  # v0005: challenger
    dry = reg.gc(keep=2, dry_run=True)
    assert dry.delete == ["v0002", "v0006"]
    assert reg.version_names() == vs  # nothing deleted by a dry run
    assert dry.keep["v0004"] == "production"
    assert dry.keep["v0003"].startswith("previous production")
    assert dry.keep["v0005"] == "challenger" and dry.keep["v0001"] == "was in production"
    assert dry.keep["v0008"].startswith("among the newest")
    done = reg.gc(keep=2)
    assert done.delete == dry.delete
    assert reg.version_names() == ["v0001", "v0003", "v0004", "v0005", "v0007", "v0008"]
    deleted = [e["version"] for e in reg.history() if e["event"] == "deleted"]
    assert deleted == ["v0002", "v0006"]
    pruned = reg.gc(keep=0, keep_production=False)
    assert pruned.delete == ["v0001", "v0007", "v0008"]
    assert reg.version_names() == ["v0003", "v0004", "v0005"]
    assert reg.rollback() == "v0003"  # the predecessor survived


# --------------------------------------------------------------------------- import hygiene


def test_registry_does_not_import_torch_or_prefect() -> None:
    code = (
        "import sys, model.registry, model.cli.registry; "
        "assert 'torch' not in sys.modules and 'prefect' not in sys.modules"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_an_unopenable_lock_is_a_clear_error_and_reads_still_work(
    settings: Settings, models: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    reg = ModelRegistry(settings.models_dir)
    v1 = reg.register(models[0])
    reg.promote(v1, "first")
    (reg.root / ".lock").unlink()
    (reg.root / ".lock").mkdir()  # cannot be opened for writing, even by root
    with pytest.raises(RegistryError, match="cannot open the registry lock"):
        reg.register(models[1])
    assert reg.production().version == v1  # type: ignore[union-attr]
    code, _, err = run_cli(capsys, "gc")
    assert code == 2 and err.startswith("error: ") and "registry lock" in err
    code, out, _ = run_cli(capsys, "status")
    assert code == 0 and "Production  v0001" in out


def test_reading_a_missing_registry_creates_nothing(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path / "nowhere")
    assert reg.production() is None and reg.history() == [] and reg.versions() == []
    assert not (tmp_path / "nowhere").exists()


# --------------------------------------------------------------------------- CLI


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_aligned(table: str) -> None:
    """Every column starts at the same offset on every line of a table."""
    lines = table.strip("\n").splitlines()
    starts = [m.start() for m in re.finditer(r"(?<=  )\S", lines[0])]
    for line in lines[1:]:
        for s in starts:
            assert line[s - 2 : s] == "  " and line[s] != " ", (line, s)


def test_cli_builds_and_operates_a_registry(
    settings: Settings, real_models: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    models = real_models  # the CLI's writes check that a model loads
    code, out, _ = run_cli(capsys, "status")
    assert code == 0 and "Production  none" in out
    code, out, _ = run_cli(capsys, "register", str(models[0]), "--reason", "initial")
    assert code == 0 and out.startswith("Registered v0001")
    assert (settings.models_dir / "versions" / "v0001" / "model.pt").is_file()
    run_cli(capsys, "register", str(models[1]))
    code, out, _ = run_cli(capsys, "promote", "v0001")
    assert code == 0 and "Promoted v0001 to production" in out
    code, _, err = run_cli(capsys, "promote", "v0002")
    assert code == 2 and "no recorded comparison" in err
    code, _, err = run_cli(capsys, "promote", "v0002", "--force")
    assert code == 2 and "needs a reason" in err
    code, out, _ = run_cli(capsys, "promote", "v0002", "--force", "--reason", "hotfix")
    assert code == 0 and "Force-promoted v0002" in out and "was v0001" in out

    code, out, _ = run_cli(capsys, "status")
    assert code == 0
    assert re.search(r"Production  v0002  \(forced \d{4}-\d\d-\d\d \d\d:\d\d UTC", out)
    assert "Reason      hotfix" in out and "auc 0.8200" in out and "Rollback to v0001" in out

    code, out, _ = run_cli(capsys, "history", "-n", "3")
    lines = out.strip().splitlines()
    assert code == 0 and lines[0].startswith("TIME (UTC)") and len(lines) == 4
    assert lines[-1].split()[2:5] == ["forced", "v0002", "v0001"]
    assert_aligned(out)
    code, out, _ = run_cli(capsys, "history", "--json")
    assert [json.loads(ln)["event"] for ln in out.splitlines()] == [
        "registered",
        "registered",
        "promoted",
        "forced",
    ]
    code, out, _ = run_cli(capsys, "versions")
    assert code == 0 and "v0002    production" in out and "v0001    retired" in out
    assert_aligned(out)

    code, out, _ = run_cli(capsys, "rollback", "--reason", "bad")
    assert code == 0 and out.strip() == "Rolled back production v0002 -> v0001"
    assert (settings.models_dir / "production" / "model.pt").read_bytes() == (
        models[0] / "model.pt"
    ).read_bytes()
    code, out, _ = run_cli(capsys, "challenger", "set", "v0002", "--traffic", "10")
    assert code == 0 and "10% of traffic" in out
    code, out, _ = run_cli(capsys, "challenger", "show")
    assert "Challenger  v0002" in out and "Traffic     10%" in out
    code, out, _ = run_cli(capsys, "challenger", "clear")
    assert out.strip() == "Challenger cleared"
    code, _, err = run_cli(capsys, "promote", "../../etc")
    assert code == 2 and "invalid version name" in err


def test_cli_status_shows_the_comparison_that_promoted_production(
    settings: Settings, models: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    reg = ModelRegistry(settings.models_dir)
    v1, v2 = reg.register(models[0]), reg.register(models[1])
    reg.promote(v1, "first")
    summary = {
        "decision": "PROMOTE",
        "baseline_version": v1,
        "metrics": {"auc": {"baseline": 0.81, "candidate": 0.8512}, "f1": {"candidate": 0.7}},
    }
    reg.promote(v2, "AUC +0.04 (p=0.003)", comparison=summary, run_id="flow-run-1")
    code, out, _ = run_cli(capsys, "status")
    assert code == 0 and "Production  v0002  (promoted " in out
    assert "Reason      AUC +0.04 (p=0.003)" in out
    assert "Compared    auc 0.8512 (was 0.8100)  f1 0.7000 (test split)" in out
    assert "Flow run    flow-run-1" in out


def test_cli_status_wraps_long_lines_under_their_label(
    settings: Settings, models: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """The flow's reasons and all eight metrics fit a terminal: lines wrap at 100 columns,
    continuation lines indented under the value column."""
    reg = ModelRegistry(settings.models_dir)
    v1 = reg.register(models[0])
    reason = (
        "AUC changed by +0.0637 (0.8112 → 0.8749), at least the threshold 0.0200, and the "
        "improvement is statistically significant (DeLong, one-sided p = 6.4e-25 < 0.05)"
    )
    names = ["accuracy", "precision", "recall", "f1", "auc", "log_loss", "average_precision"]
    metrics = {m: {"baseline": 0.5, "candidate": 0.6} for m in names}
    reg.promote(v1, reason, comparison={"decision": "PROMOTE", "metrics": metrics})
    code, out, _ = run_cli(capsys, "status")
    assert code == 0
    lines = out.splitlines()
    long = [ln for ln in lines if len(ln) > 100 and not ln.startswith(("Registry", "SHA-256"))]
    assert long == []
    at = next(i for i, ln in enumerate(lines) if ln.startswith("Reason      "))
    assert lines[at + 1].startswith(" " * 12) and lines[at + 1][12] != " "
    assert " ".join(ln.strip() for ln in lines[at : at + 2])[12:].strip() == reason
    assert "Compared    auc 0.6000 (was 0.5000)" in out


def test_cli_gc_and_status_report_corruption(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reg = ModelRegistry(settings.models_dir)
    vs = [reg.register(make_model(tmp_path / f"c{i}", seed=i)) for i in range(4)]
    reg.promote(vs[3], "first")
    code, out, _ = run_cli(capsys, "gc", "--keep", "1", "--dry-run")
    assert code == 0 and "would delete 3 version(s), kept 1" in out
    assert_aligned(out.rsplit("\n", 2)[0])
    assert reg.version_names() == vs
    code, out, _ = run_cli(capsys, "gc", "--keep", "2")
    assert code == 0 and "deleted 2 version(s)" in out
    assert reg.version_names() == vs[2:]
    pt = reg.version_path(vs[2]) / "model.pt"
    os.chmod(pt, 0o644)
    pt.write_bytes(b"x")
    code, out, err = run_cli(capsys, "status")
    assert "CORRUPT     1 version(s)" in out and "v0003  " in out
    assert code == 2 and "1 corrupt version(s) (v0003)" in err  # damage is a failure
    code, _, err = run_cli(capsys, "promote", "v0003", "--force", "--reason", "x")
    assert code == 2 and "checksum mismatch" in err


# --------------------------------------------------------------------------- Prefect tasks


def test_tasks_register_promote_record(
    settings: Settings, real_models: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    models = real_models  # the tasks check that a model loads
    pytest.importorskip("prefect")
    from prefect.logging import disable_run_logger

    from tasks.registry import promote_model, record_event, register_model

    with disable_run_logger():
        v1 = register_model.fn(str(models[0]), reason={"trigger": "force"}, run_id="r1")
        info = promote_model.fn(v1, "first", comparison={"decision": "PROMOTE"}, run_id="r1")
        assert info["version"] == v1 and info["previous"] is None
        # A retry after a committed attempt of the same run succeeds quietly.
        assert promote_model.fn(v1, "first", run_id="r1")["version"] == v1
        with pytest.raises(AlreadyProductionError):
            promote_model.fn(v1, "first", run_id="other-run")
        v2 = register_model.fn(str(models[1]))
        ev = record_event.fn("REJECT", version=v2, baseline=v1, reasons=["worse"])
        assert ev["event"] == "rejected"
    reg = ModelRegistry(settings.models_dir)
    assert events(reg) == ["registered", "promoted", "registered", "rejected"]
