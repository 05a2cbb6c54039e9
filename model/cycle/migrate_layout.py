"""Move a working root from the single-model layout to one folder per model.

Earlier releases kept one model per ``RETRAIN_HOME``: ``models/`` was its registry, ``data/``
its data, ``reports/`` and ``runs/`` its files. Now every kind of folder holds one folder per
model (``models/<name>/``, ``data/<name>/``, ...; see :mod:`model.settings`). Each kind is moved
with renames (``<kind>`` → ``.<kind>.migrating`` → ``<kind>/<name>``): no file is copied, and a
migration stopped half-way is finished by running it again. The prepared-data path recorded in
each version's ``model.json`` (``data/prepared/<hash>``, relative to the working root) is
rewritten to the new folder (the only stored path that moves; the model file and its checksum
are untouched), and the history gains a ``migrated`` event.

It refuses while a cycle or a promotion holds its lock: stop the workers first.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from model.cycle.locks import CYCLE_LOCK_NAME, is_locked, promotion_lock
from model.errors import CycleLockError, LayoutError
from model.registry import ModelRegistry
from model.registry.versions import META_FILE
from model.settings import LEGACY_MARKER, Settings, check_model_name

KINDS = ("models", "data", "reports", "runs")
"""The folders that held one model's files directly in the single-model layout."""
PENDING = ".{kind}.migrating"


@dataclass
class MigrationResult:
    """What moved: each kind's old and new folder, and the model.json files rewritten."""

    model_name: str
    moved: dict[str, str] = field(default_factory=dict)
    rewritten: list[str] = field(default_factory=list)


def migrate_layout(settings: Settings, name: str) -> MigrationResult:
    """Move the single-model layout under ``settings.root`` to model ``name``'s folders.

    A :class:`LayoutError` when there is nothing to migrate (no ``models/registry.json`` and no
    migration left half-way) or when a target folder already exists; a
    :class:`CycleLockError` while a cycle or a promotion is running."""
    check_model_name(name, "--model")
    root = settings.root
    pending = [k for k in KINDS if (root / PENDING.format(kind=k)).exists()]
    if not (root / LEGACY_MARKER).is_file() and not pending:
        raise LayoutError(
            f"{root}: nothing to migrate (no {LEGACY_MARKER.as_posix()}: the layout is already "
            "one folder per model)"
        )
    for kind in KINDS:
        target = root / kind / name
        if kind not in pending and (root / kind).is_dir() and target.exists():
            raise LayoutError(f"{target}: already exists; the single-model files are not moved")
    _check_idle(root, pending)
    result = MigrationResult(name)
    lock_dir = root / "models" if "models" not in pending else root / PENDING.format(kind="models")
    with promotion_lock(lock_dir, 0.0):
        for kind in KINDS:
            moved = _move(root, kind, name)
            if moved:
                result.moved[kind] = moved
    new = settings.for_model(name)
    result.rewritten = _rewrite_data_paths(new.models_dir, name)
    ModelRegistry(new.models_dir).record(
        "migrated",
        reason=f"single-model layout moved to the per-model folders of {name!r}",
        moved=result.moved,
        rewritten=len(result.rewritten),
    )
    return result


def _check_idle(root: Path, pending: list[str]) -> None:
    """Refuse while a cycle holds its lock in the old ``runs/`` (a live run would lose its
    folders under it)."""
    runs = root / ("runs" if "runs" not in pending else PENDING.format(kind="runs"))
    if not runs.is_dir():
        return
    for folder in sorted(runs.iterdir()):
        if is_locked(folder / CYCLE_LOCK_NAME):
            raise CycleLockError(
                f"{folder}: a retraining cycle is running; stop the workers before migrating"
            )


def _move(root: Path, kind: str, name: str) -> str | None:
    """``<kind>`` → ``.<kind>.migrating`` → ``<kind>/<name>``; the old folder's relative path,
    or None when this kind has nothing to move."""
    folder, parked = root / kind, root / PENDING.format(kind=kind)
    if not parked.exists():
        if not folder.is_dir():
            return None
        os.rename(folder, parked)
    folder.mkdir(exist_ok=True)
    os.rename(parked, folder / name)
    _fsync(root)
    _fsync(folder)
    return kind


def _rewrite_data_paths(models_dir: Path, name: str) -> list[str]:
    """Each version's ``data_manifest.path`` under ``data/`` now points into ``data/<name>/``."""
    rewritten: list[str] = []
    versions = models_dir / "versions"
    if not versions.is_dir():
        return rewritten
    for meta_path in sorted(versions.glob(f"*/{META_FILE}")):
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        ref = meta.get("data_manifest") or {}
        path = ref.get("path")
        if not isinstance(path, str) or not path.startswith("data/"):
            continue
        if path.startswith(f"data/{name}/") and not path.startswith("data/prepared/"):
            continue  # already rewritten (a second run after a stop half-way)
        ref["path"] = f"data/{name}/{path.removeprefix('data/')}"
        _replace_read_only(meta_path, json.dumps(meta, indent=2) + "\n")
        rewritten.append(meta_path.relative_to(models_dir).as_posix())
    return rewritten


def _replace_read_only(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, fsync, keep ``path``'s mode, rename."""
    mode = path.stat().st_mode & 0o777
    tmp = path.with_name(f".{path.name}.migrating")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    _fsync(path.parent)


def _fsync(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
