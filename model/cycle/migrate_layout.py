"""Move a working root from the single-model layout to one folder per model.

Earlier releases kept one model per ``RETRAIN_HOME``: ``models/`` was its registry, ``data/``
its data, ``reports/`` and ``runs/`` its files. Now every kind of folder holds one folder per
model (``models/<name>/``, ``data/<name>/``, ...; see :mod:`model.settings`). Each kind is moved
with renames (``<kind>`` → ``.<kind>.migrating`` → ``<kind>/<name>``): no file is copied. A
journal records each step, so a migration stopped half-way is finished by running it again, and
until then every flow and command refuses the working root. The prepared-data path recorded in
each version's ``model.json`` (``data/prepared/<hash>``, relative to the working root) is
rewritten to the new folder: the one stored path the system reads back (older records, such as
the report paths in the history, keep the paths of their time; the model file and its checksum
are untouched), and the history gains a ``migrated`` event.

It refuses while a cycle or a promotion holds its lock: stop the workers first.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model.cycle.locks import CYCLE_LOCK_NAME, is_locked, promotion_lock
from model.errors import CycleLockError, LayoutError
from model.files import read_json
from model.registry import ModelRegistry
from model.registry.versions import META_FILE
from model.settings import LEGACY_MARKER, MIGRATION_JOURNAL, Settings, check_model_name

KINDS = ("data", "reports", "runs", "models")
"""The folders that held one model's files directly in the single-model layout, in the order
they move: ``models/`` (which holds the marker, ``models/registry.json``) last."""
PENDING = ".{kind}.migrating"
JOURNAL = MIGRATION_JOURNAL
"""``<root>/.migrate-layout.json``: the model and the steps done, written before the first
rename and removed after the last step, so a stopped migration resumes where it stopped (and
every flow and command refuses the root until it has)."""
RESERVED_NAMES = frozenset({"raw", "incoming", "prepared"})
"""Names of the single-model ``data/`` sub-folders: a model of that name would make
``data/<name>/`` ambiguous while the paths are rewritten."""


@dataclass
class MigrationResult:
    """What moved: each kind's old and new folder, and the model.json files rewritten."""

    model_name: str
    moved: dict[str, str] = field(default_factory=dict)
    rewritten: list[str] = field(default_factory=list)


def migrate_layout(settings: Settings, name: str) -> MigrationResult:
    """Move the single-model layout under ``settings.root`` to model ``name``'s folders.

    Steps, each recorded in the journal: rewrite each version's data path (while the registry
    is still in ``models/``), move ``data``, ``reports``, ``runs``, then ``models``, record the
    ``migrated`` event, remove the journal. A :class:`LayoutError` when there is nothing to
    migrate, when a target folder already exists, or when a stopped migration was for another
    model; a :class:`CycleLockError` while a cycle or a promotion is running."""
    check_model_name(name, "--model")
    root = settings.root
    journal = root / JOURNAL
    if journal.exists() or journal.is_symlink():
        state = read_journal(journal)
        if state["model"] != name:
            raise LayoutError(
                f"{journal}: a migration to model {state['model']!r} was stopped half-way; "
                f"finish it with `retrain migrate-layout --model {state['model']}`"
            )
    elif not (root / LEGACY_MARKER).is_file():
        raise LayoutError(
            f"{root}: nothing to migrate (no {LEGACY_MARKER.as_posix()}: the layout is already "
            "one folder per model)"
        )
    else:
        if name in RESERVED_NAMES:
            raise LayoutError(
                f"--model {name}: collides with the single-model folder data/{name}/; "
                "migrate under another model name"
            )
        for kind in KINDS:
            if (root / kind / name).exists():
                raise LayoutError(
                    f"{root / kind / name}: already exists in the single-model {kind}/ folder; "
                    "migrate under another model name (nothing was moved)"
                )
        state = {"model": name, "rewritten": None, "moved": [], "id": uuid.uuid4().hex}
    _check_idle(root, state["moved"])
    result = MigrationResult(name)
    with contextlib.ExitStack() as stack:
        if (root / LEGACY_MARKER).is_file():  # the registry has not moved: no cycle may promote
            stack.enter_context(promotion_lock(root / "models", 0.0))
        _save(journal, state)
        if state["rewritten"] is None:
            state["rewritten"] = _rewrite_data_paths(root / "models", name)
            _save(journal, state)
        for kind in KINDS:
            if kind in state["moved"]:
                continue
            if _move(root, kind, name):
                result.moved[kind] = kind
            state["moved"].append(kind)
            _save(journal, state)
    result.rewritten = list(state["rewritten"])
    registry = ModelRegistry(settings.for_model(name).models_dir)
    journal_id = state.get("id")
    done = journal_id is not None and any(  # a kill after the record: never twice
        ev.get("event") == "migrated" and ev.get("journal") == journal_id
        for ev in registry.history()
    )
    if not done:
        registry.record(
            "migrated",
            reason=f"single-model layout moved to the per-model folders of {name!r}",
            moved=list(state["moved"]),
            rewritten=len(result.rewritten),
            journal=journal_id,
        )
    journal.unlink()
    _fsync(root)
    return result


def read_journal(journal: Path) -> dict[str, Any]:
    """A stopped migration's journal, checked: a torn, empty or hand-edited journal (or a
    FIFO in its place) is a one-line LayoutError naming it, never a traceback or a hang."""
    data = read_json(journal, "a migration journal", LayoutError, limit=2**20)
    fix = (
        "it is not the journal this command writes; look at the folders named in "
        "docs/many-models.md and remove the file once the layout is right"
    )
    if not isinstance(data, dict):
        raise LayoutError(f"{journal}: expected a JSON object, got {type(data).__name__}; {fix}")
    model, moved, rewritten = data.get("model"), data.get("moved"), data.get("rewritten")
    if not isinstance(model, str) or not model:
        raise LayoutError(f"{journal}: no model name; {fix}")
    if not isinstance(moved, list) or not all(m in KINDS for m in moved):
        raise LayoutError(f"{journal}: 'moved' must list folders of {list(KINDS)}; {fix}")
    if rewritten is not None and not (
        isinstance(rewritten, list) and all(isinstance(r, str) for r in rewritten)
    ):
        raise LayoutError(f"{journal}: 'rewritten' must be a list of paths; {fix}")
    journal_id = data.get("id")
    if journal_id is not None and not isinstance(journal_id, str):
        raise LayoutError(f"{journal}: 'id' must be text; {fix}")
    return data


def _save(journal: Path, state: dict[str, object]) -> None:
    tmp = journal.with_name(journal.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(state, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, journal)
    _fsync(journal.parent)


def _check_idle(root: Path, moved: list[str]) -> None:
    """Refuse while a cycle holds its lock in the old ``runs/`` (a live run would lose its
    folders under it)."""
    runs = root / "runs" if "runs" not in moved else None
    for folder in (runs, root / PENDING.format(kind="runs")):
        if folder is None:
            continue
        if not folder.is_dir():
            continue
        for run in sorted(folder.iterdir()):
            if is_locked(run / CYCLE_LOCK_NAME):
                raise CycleLockError(
                    f"{run}: a retraining cycle is running; stop the workers before migrating"
                )


def _move(root: Path, kind: str, name: str) -> str | None:
    """``<kind>`` → ``.<kind>.migrating`` → ``<kind>/<name>``; the old folder's relative path,
    or None when this kind has nothing to move."""
    folder, parked = root / kind, root / PENDING.format(kind=kind)
    if not parked.exists() and (folder / name).exists():
        return kind  # moved before a stop (the single-model folder had no such entry: checked)
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
        meta = read_json(meta_path, "model metadata", LayoutError)
        if not isinstance(meta, dict):
            raise LayoutError(f"{meta_path}: model metadata must be a JSON object")
        ref = meta.get("data_manifest") or {}
        path = ref.get("path")
        if not isinstance(path, str) or not path.startswith("data/"):
            continue
        if path.startswith(f"data/{name}/"):
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
