"""Issue 12: errors of the OS in registry writes (disk full, quota, read-only file system,
permission, a write cut short by a file size limit).

A 2 MB tmpfs or ``prlimit --fsize`` cannot be set up here, so the system calls are
replaced: ``os.write`` / ``os.sendfile`` / ``os.replace`` fail (or write short) for files
under the registry only. Every failure must be one line naming the path, and the outcome
reported must be what happened: production untouched when the switch did not commit, the
switch reported as done (with a warning) when it did.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from model.cli import main
from model.errors import RegistryError
from model.registry import ModelRegistry
from model.settings import Settings

REAL_WRITE = os.write
REAL_SENDFILE = os.sendfile
REAL_REPLACE = os.replace


def fd_path(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""


@contextlib.contextmanager
def broken_writes(
    root: Path,
    code: int = errno.ENOSPC,
    only: Callable[[str], bool] = lambda path: True,
    short: bool = False,
) -> Iterator[None]:
    """Inside, writes to files under ``root`` (for which ``only(path)``) fail with
    ``code``, like a full disk; with ``short``, a file's first write stops one byte short
    (the next fails), like a file size limit."""
    prefix = str(root.resolve())
    cut: set[str] = set()

    def hit(path: str) -> bool:
        return path.startswith(prefix) and only(path)

    def write(fd: int, data: bytes) -> int:
        path = fd_path(fd)
        if not hit(path):
            return REAL_WRITE(fd, data)
        if short and path not in cut and len(data) > 1:
            cut.add(path)
            return REAL_WRITE(fd, bytes(data)[:-1])
        raise OSError(code, os.strerror(code))

    def sendfile(out_fd: int, in_fd: int, offset: int | None, count: int) -> int:
        if hit(fd_path(out_fd)):
            raise OSError(code, os.strerror(code))
        return REAL_SENDFILE(out_fd, in_fd, offset, count)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "write", write)
        mp.setattr(os, "sendfile", sendfile)
        yield


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def history_is_whole(reg: ModelRegistry) -> list[str]:
    data = reg.history_path.read_bytes()
    assert data.endswith(b"\n")
    return [json.loads(line)["event"] for line in data.splitlines()]


def leftovers(reg: ModelRegistry) -> list[str]:
    names = [p.name for p in reg.root.iterdir()] + [p.name for p in reg.versions_dir.iterdir()]
    return [n for n in names if ".tmp-" in n or n.startswith(".trash-") or n == ".pending.json"]


@pytest.fixture
def reg(settings: Settings, tmp_path: Path, make_real_model: Callable[..., Path]) -> ModelRegistry:
    """v0001 production, v0002 a candidate (real models: the CLI checks that they load)."""
    reg = ModelRegistry(settings.models_dir)
    for i in (1, 2):
        reg.register(make_real_model(tmp_path / f"m{i}", seed=i))
    reg.promote("v0001", "first")
    return reg


@pytest.mark.parametrize(
    "code, name",
    [
        (errno.ENOSPC, "No space left on device"),
        (errno.EDQUOT, "Disk quota exceeded"),
        (errno.EROFS, "Read-only file system"),
        (errno.EACCES, "Permission denied"),
    ],
)
def test_a_promotion_the_disk_refuses_is_one_line_and_changes_nothing(
    reg: ModelRegistry, capsys: pytest.CaptureFixture[str], code: int, name: str
) -> None:
    events = history_is_whole(reg)
    pointer = reg.pointer_path.read_bytes()
    with broken_writes(reg.root, code):
        rc, out, err = run_cli(capsys, "promote", "v0002", "--force", "--reason", "hotfix")
    assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert err.startswith("error: promoting v0002 failed: ")
    assert f"{reg.root}/.pending.json: {name}" in err
    assert err.strip().endswith("; production is unchanged (v0001)")
    assert reg.production().version == "v0001"  # type: ignore[union-attr]
    assert reg.pointer_path.read_bytes() == pointer and history_is_whole(reg) == events
    assert leftovers(reg) == []


def test_a_registration_the_disk_refuses_leaves_nothing(
    reg: ModelRegistry,
    tmp_path: Path,
    make_real_model: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = make_real_model(tmp_path / "m3", seed=3)
    with broken_writes(reg.versions_dir):  # (shutil falls back to plain writes on EDQUOT)
        rc, _, err = run_cli(capsys, "register", str(folder))
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "No space left on device [ENOSPC]" in err and "nothing was registered" in err
    assert f"{reg.versions_dir}/.tmp-" in err  # the file the OS refused
    assert reg.version_names() == ["v0001", "v0002"] and leftovers(reg) == []


def test_a_switch_that_committed_is_reported_as_done_when_its_record_fails(
    reg: ModelRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    """The history append stops one byte short (then the disk is full): the link had
    already moved, so the promotion happened and must be reported as such."""
    with broken_writes(reg.root, only=lambda p: p.endswith("history.jsonl"), short=True):
        rc, out, err = run_cli(capsys, "promote", "v0002", "--force", "--reason", "hotfix")
    assert rc == 0 and out.startswith("Force-promoted v0002 to production (was v0001")
    assert err.startswith("warning: production is now v0002 (the switch committed), but ")
    assert f"{reg.history_path}: No space left on device [ENOSPC]" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert history_is_whole(reg) == ["registered", "registered", "promoted"]  # no torn line
    assert reg.production().version == "v0002"  # type: ignore[union-attr]
    assert json.loads(reg.pointer_path.read_text())["version"] == "v0002"
    rc, out, _ = run_cli(capsys, "status")
    assert rc == 2 and "Production  v0002" in out and "after its commit point" in out
    rc, out, _ = run_cli(capsys, "recover")
    assert rc == 0 and out.startswith("Recorded forced v0002")
    assert history_is_whole(reg)[-1] == "forced"
    assert run_cli(capsys, "status")[0] == 0


def test_a_short_write_never_installs_a_truncated_pointer(
    reg: ModelRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    with broken_writes(
        reg.root, errno.EFBIG, only=lambda p: ".production.json.tmp-" in p, short=True
    ):
        rc, out, err = run_cli(capsys, "promote", "v0002", "--force", "--reason", "hotfix")
    assert rc == 0 and out.startswith("Force-promoted v0002")
    assert f"{reg.pointer_path}: File too large [EFBIG]" in err and "recording it failed" in err
    pointer = json.loads(reg.pointer_path.read_text())  # the old record, whole
    assert pointer["version"] == "v0001"
    assert reg.production().version == "v0002"  # type: ignore[union-attr]
    reg.recover()
    assert json.loads(reg.pointer_path.read_text())["version"] == "v0002"
    assert history_is_whole(reg)[-1] == "forced" and leftovers(reg) == []


def test_a_failed_rename_of_the_link_leaves_production_and_no_intent(
    reg: ModelRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    def replace(src: str, dst: str) -> None:
        if str(dst).endswith("/production"):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(src), None, str(dst))
        REAL_REPLACE(src, dst)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "replace", replace)
        with pytest.raises(RegistryError, match=r"Read-only file system \[EROFS\]; production"):
            reg.promote("v0002", "x", force=True)
    assert reg.production().version == "v0001"  # type: ignore[union-attr]
    assert leftovers(reg) == [] and reg.problems() == []


def test_recording_an_event_on_a_full_disk_records_nothing(reg: ModelRegistry) -> None:
    before = reg.history_path.read_bytes()
    with (
        broken_writes(reg.root, short=True, only=lambda p: p.endswith("history.jsonl")),
        pytest.raises(RegistryError) as info,
    ):
        reg.record("skipped", reasons=["nothing fired"])
    text = str(info.value)
    assert text.startswith("recording skipped failed: ") and "\n" not in text
    assert str(reg.history_path) in text and text.endswith("the event was not recorded")
    assert reg.history_path.read_bytes() == before  # the partial line was cut off again
