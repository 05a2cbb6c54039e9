"""Model versions: ``versions/vNNNN`` folders, immutable once renamed into place.

:func:`check_model_folder` verifies a model folder without torch (model.json parses, its
format is supported, its checksum matches model.pt). :class:`VersionStore` registers a
folder (copy to a temp folder, fsync, verify, rename to the next free number,
``registered`` event), lists, verifies and deletes versions.

A version is a real folder inside ``versions/``: a symbolic link there (``v0008 ->
/elsewhere``) is never listed, registered, promoted or loaded; listing warns about it,
and gc unlinks it (never following it). ``verify`` (given to the registry by an entry
layer) is also called on every folder that is registered or becomes production or
challenger, e.g. to check that it loads with torch ``weights_only=True``; without one the
registry checks format and checksum only (it never imports torch).
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import uuid
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model.errors import RegistryError, RegistryWarning
from model.files import check_regular
from model.registry.files import (
    checkpoint,
    file_sha256,
    force_rmtree,
    fsync_dir,
    fsync_file,
    naming,
    os_error_text,
    read_json,
)
from model.registry.history import PRODUCTION_EVENTS, HistoryLog, new_event
from model.registry.layout import VERSION_RE, RegistryLayout, version_name
from model.registry.lock import RegistryLock

SUPPORTED_MODEL_FORMATS = frozenset({1})
MODEL_FILE = "model.pt"
META_FILE = "model.json"

#: Checks that a model folder is usable beyond its checksum (e.g. that it loads); raises
#: when it is not. Supplied by the entry layers, which may import torch.
Verifier = Callable[[Path], object]


@dataclass(frozen=True)
class VersionInfo:
    """One registered version. ``status``: production, retired (was production) or candidate."""

    version: str
    path: Path
    status: str
    valid: bool
    problem: str | None
    sha256: str | None
    trained_at: str | None
    metrics: dict[str, Any] = field(default_factory=dict)
    registered_at: str | None = None
    challenger: bool = False
    decision: str | None = None

    @property
    def val_auc(self) -> float | None:
        """Validation AUC from model.json, when recorded."""
        auc = self.metrics.get("auc")
        return float(auc) if isinstance(auc, int | float) else None


def check_model_folder(folder: Path) -> tuple[dict[str, Any], str]:
    """Verify a model folder without torch; return (model.json, sha256 of model.pt).

    Checks that both files exist, model.json parses, its ``format_version`` is supported
    and its ``sha256`` equals the SHA-256 of model.pt. Raises RegistryError otherwise.
    """
    folder = Path(folder)
    meta_path, pt_path = folder / META_FILE, folder / MODEL_FILE
    if not folder.is_dir():
        raise RegistryError(f"{folder}: not a model folder (missing or not a directory)")
    for p in (meta_path, pt_path):
        try:
            check_regular(p, "a model file", RegistryError)
        except FileNotFoundError:
            raise RegistryError(f"{folder}: missing {p.name}") from None
    try:
        meta = read_json(meta_path, "model metadata")
    except FileNotFoundError as exc:
        raise RegistryError(f"{folder}: missing {META_FILE}") from exc
    fmt = meta.get("format_version")
    if fmt not in SUPPORTED_MODEL_FORMATS or isinstance(fmt, bool):
        raise RegistryError(
            f"{meta_path}: format_version {fmt!r} is not supported "
            f"(this code reads {sorted(SUPPORTED_MODEL_FORMATS)})"
        )
    expected = meta.get("sha256")
    if not isinstance(expected, str) or not expected:
        raise RegistryError(f"{meta_path}: no 'sha256' of {MODEL_FILE}")
    actual = file_sha256(pt_path)
    if actual != expected:
        raise RegistryError(
            f"{pt_path}: checksum mismatch (model.json says {expected[:12]}…, "
            f"file is {actual[:12]}…): the model is corrupt"
        )
    return meta, actual


def metrics_summary(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The numeric validation metrics of a model.json, rounded for the history."""
    metrics = meta.get("metrics")
    val = metrics.get("validation") if isinstance(metrics, Mapping) else None
    if not isinstance(val, Mapping):
        return {}
    out: dict[str, Any] = {}
    for k, v in val.items():
        if isinstance(v, int | float) and not isinstance(v, bool):
            out[str(k)] = round(float(v), 6) if math.isfinite(float(v)) else None
    return out


class VersionStore:
    """The version folders of a registry; writes hold ``lock`` and record in ``history``."""

    def __init__(
        self,
        layout: RegistryLayout,
        history: HistoryLog,
        lock: RegistryLock,
        verify: Verifier | None = None,
    ) -> None:
        self.layout = layout
        self.history = history
        self.lock = lock
        self.verifier = verify

    def _entries(self) -> list[str]:
        """Names in ``versions/`` that look like versions, whatever they are."""
        try:
            names = os.listdir(self.layout.versions_dir)
        except FileNotFoundError:
            return []
        return [n for n in names if VERSION_RE.fullmatch(n)]

    def numbers(self) -> list[int]:
        """Numbers of the versions: entries of ``versions/`` that are not symbolic links."""
        d = self.layout.versions_dir
        return sorted(int(n[1:]) for n in self._entries() if not os.path.islink(d / n))

    def names(self) -> list[str]:
        return [version_name(n) for n in self.numbers()]

    def links(self) -> dict[str, str]:
        """Symbolic links in ``versions/`` with a version's name -> where they point.
        They are not versions (never listed, promoted or loaded); gc unlinks them."""
        out = {}
        for n in sorted(self._entries()):
            path = self.layout.versions_dir / n
            with contextlib.suppress(OSError):
                if os.path.islink(path):
                    out[n] = os.readlink(path)
        return out

    def link_problem(self, name: str, target: str) -> str:
        return (
            f"{self.layout.versions_dir / name} is a symbolic link (to {target}), not a version "
            "folder: ignored (versions are real folders inside the registry); `retrain gc` "
            "removes the link"
        )

    def folder(self, version: str) -> Path:
        """The folder of ``version``: a real folder inside ``versions/``, or RegistryError."""
        path = self.layout.version_path(version)
        if path.is_symlink():
            raise RegistryError(
                f"{path} is a symbolic link (to {os.readlink(path)}), not a version folder: "
                "versions must be real folders inside the registry"
            )
        if not path.is_dir():
            raise RegistryError(f"version {version} is not in the registry {self.layout.root}")
        return path

    def metadata(self, version: str) -> dict[str, Any]:
        """The model.json of ``version``."""
        path = self.folder(version)
        try:
            return read_json(path / META_FILE, "model metadata")
        except FileNotFoundError as exc:
            raise RegistryError(f"{path}: missing {META_FILE}") from exc

    def verify(self, version: str, *, load: bool = True) -> dict[str, Any]:
        """Verify ``version``'s checksum and format, and (``load``) run the verifier on it;
        return its model.json or raise RegistryError."""
        path = self.folder(version)
        meta, _ = check_model_folder(path)
        if load:
            self.run_verifier(path, f"version {version}")
        return meta

    def run_verifier(self, path: Path, what: str, shown_as: Path | None = None) -> None:
        """Run the verifier (if any) on ``path``; its refusal is a RegistryError (naming
        ``shown_as`` where it names ``path``: the source of a copy being registered)."""
        if self.verifier is None:
            return
        try:
            self.verifier(path)
        except Exception as exc:  # any failure to load means: refuse
            text = " ".join(str(exc).split()) or type(exc).__name__
            if shown_as is not None:
                text = text.replace(str(path), str(shown_as))
            raise RegistryError(f"{what} does not load as a model: {text}") from exc

    def describe(
        self, events: list[dict[str, Any]], current: str | None, challenger: str | None
    ) -> list[VersionInfo]:
        """Every version folder with its status (derived from ``events``, the history,
        ``current``, the production version, and ``challenger``) and integrity."""
        ever = {e.get("version") for e in events if e.get("event") in PRODUCTION_EVENTS}
        registered = {
            e.get("version"): e.get("time") for e in events if e.get("event") == "registered"
        }
        decisions = {
            e.get("version"): e.get("decision")
            for e in events
            if e.get("event") == "compared" and e.get("decision")
        }
        for name, target in self.links().items():
            warnings.warn(RegistryWarning(self.link_problem(name, target)), stacklevel=3)
        out = []
        for v in self.names():
            path = self.layout.version_path(v)
            problem: str | None = None
            meta: dict[str, Any] = {}
            try:
                meta, _ = check_model_folder(path)
            except RegistryError as exc:
                problem = str(exc)
                with contextlib.suppress(RegistryError, FileNotFoundError):
                    meta = read_json(path / META_FILE, "model metadata")
            status = "production" if v == current else "retired" if v in ever else "candidate"
            out.append(
                VersionInfo(
                    version=v,
                    path=path,
                    status=status,
                    valid=problem is None,
                    problem=problem,
                    sha256=meta.get("sha256") if isinstance(meta.get("sha256"), str) else None,
                    trained_at=meta.get("trained_at"),
                    metrics=metrics_summary(meta),
                    registered_at=registered.get(v),
                    challenger=challenger == v,
                    decision=decisions.get(v),
                )
            )
        return out

    def next_number(self) -> int:
        """Next free version number (locked). Numbers of deleted versions are not reused.
        A version folder without its ``registered`` event (a crash between the rename and
        the append) gets the event now, marked ``recovered``."""
        on_disk = set(self.numbers())
        taken = {int(n[1:]) for n in self._entries()}  # a symbolic link's name is not reused
        recorded = set()
        for ev in self.history.events():
            v = ev.get("version")
            if ev.get("event") == "registered" and isinstance(v, str) and VERSION_RE.fullmatch(v):
                recorded.add(int(v[1:]))
        for n in sorted(on_disk - recorded):
            meta: dict[str, Any] = {}
            with contextlib.suppress(RegistryError, FileNotFoundError):
                meta = self.metadata(version_name(n))
            fields = {"version": version_name(n), "sha256": meta.get("sha256"), "recovered": True}
            self.history.append(new_event("registered", fields))
        return max(on_disk | taken | recorded, default=0) + 1

    def register(
        self,
        folder: str | Path,
        *,
        reason: str | Mapping[str, Any] | None = None,
        run_id: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> str:
        """Copy a model folder into ``versions/vNNNN`` (temp folder, fsync, rename) and
        record ``registered``; return the new version. The source is checked first, and the
        copy (format, checksum, the verifier) before it is renamed into place.

        The rename is the commit: if recording the event then fails (disk full), the
        version is returned with a :class:`RegistryWarning`, and the next write records it.
        """
        src = Path(folder).expanduser().absolute()
        meta, sha = check_model_folder(src)
        for name in (MODEL_FILE, META_FILE):
            if (src / name).is_symlink():
                raise RegistryError(
                    f"{src / name} is a symbolic link: register a folder of regular files "
                    "(e.g. a copy made with `cp -rL`)"
                )
        with self.lock.held():
            tmp = self.layout.versions_dir / f".tmp-{uuid.uuid4().hex}"
            try:
                self._copy_tree(src, tmp)
                check_model_folder(tmp)  # the copy, as written to disk
                self.run_verifier(tmp, str(src), shown_as=src)
                checkpoint("register_copied")
                version = version_name(self.next_number())
                os.rename(tmp, self.layout.versions_dir / version)
            except BaseException:
                force_rmtree(tmp)
                raise
            checkpoint("register_renamed")
            fields: dict[str, Any] = {
                "version": version,
                "sha256": sha,
                "source": src.as_posix(),
                "trained_at": meta.get("trained_at"),
                "metrics": metrics_summary(meta),
                "reason": reason,
                "run_id": run_id,
            }
            if extra:
                fields.update({k: v for k, v in extra.items() if k not in fields})
            try:
                fsync_dir(self.layout.versions_dir)
                self.history.append(new_event("registered", fields))
            except OSError as exc:
                warnings.warn(
                    RegistryWarning(
                        f"registered {version}, but recording it failed: "
                        f"{os_error_text(exc, self.layout.history_path)}; the next registry "
                        "write records it"
                    ),
                    stacklevel=2,
                )
        return version

    @staticmethod
    def _copy_tree(src: Path, dst: Path) -> None:
        """Copy regular files (not links) from ``src`` to ``dst``, fsync all, make read-only."""
        dst.mkdir()
        for dirpath, dirnames, filenames in os.walk(src):
            rel = Path(dirpath).relative_to(src)
            for d in dirnames:
                if not (Path(dirpath) / d).is_symlink():
                    (dst / rel / d).mkdir()
            dirnames[:] = [d for d in dirnames if not (Path(dirpath) / d).is_symlink()]
            for name in filenames:
                source = Path(dirpath) / name
                if source.is_symlink() or not source.is_file():
                    continue
                target = dst / rel / name
                with naming(target):
                    shutil.copyfile(source, target)
                fsync_file(target)
                os.chmod(target, 0o444)
        for dirpath, _, _ in os.walk(dst, topdown=False):
            fsync_dir(Path(dirpath))

    def delete(self, version: str) -> None:
        """Remove ``version`` (rename to a trash folder, then delete) and record
        ``deleted`` (locked). A symbolic link of that name is unlinked, never followed."""
        path = self.layout.version_path(version)
        if path.is_symlink():
            target = os.readlink(path)
            os.unlink(path)
            fsync_dir(self.layout.versions_dir)
            reason = "gc: a symbolic link, not a version folder (unlinked; its target is untouched)"
            fields = {"version": version, "link_target": target, "reason": reason}
            self.history.append(new_event("deleted", fields))
            return
        meta: dict[str, Any] = {}
        with contextlib.suppress(RegistryError, FileNotFoundError):
            meta = read_json(path / META_FILE, "model metadata")
        trash = self.layout.versions_dir / f".trash-{version}-{uuid.uuid4().hex}"
        os.rename(path, trash)  # the version vanishes atomically; then the bytes go
        fsync_dir(self.layout.versions_dir)
        force_rmtree(trash)
        self.history.append(
            new_event(
                "deleted",
                {"version": version, "sha256": meta.get("sha256"), "reason": "gc"},
            )
        )
