"""The model registry: immutable versions, an atomic production link, an audited history.

Layout under ``root`` (``$RETRAIN_HOME/models``)::

    registry.json            {"format_version": 1, "created_at": ...}
    versions/v0001/          model.pt + model.json, immutable once renamed into place
    production -> versions/v0003   relative symlink: what users load (production/model.pt)
    production.json          {"format_version", "version", "sha256", "promoted_at", ...}
    challenger.json          optional {"format_version", "version", "traffic", ...}
    history.jsonl            append-only, one JSON event per line
    .pending.json            intent of an unfinished production switch (crash recovery)
    .lock                    fcntl.flock target held for every write

Source of truth: the ``production`` link is the commit point of a switch. A switch
writes ``.pending.json`` (the full history event), swaps the link, rewrites the
pointer, appends the event, then removes the intent; each step is temp-file/link,
fsync, ``os.replace``, fsync of the folder. Recovery (run under the lock before every
write, and by readers that see a disagreement) finishes a switch whose link was
swapped and discards one whose link was not. This module never imports torch.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import math
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from model.errors import RegistryError

REGISTRY_FORMAT_VERSION = 1
SUPPORTED_MODEL_FORMATS = frozenset({1})
VERSION_RE = re.compile(r"^v\d{4,}$")

MODEL_FILE = "model.pt"
META_FILE = "model.json"

#: Every event the history may hold. ``deleted`` (gc), ``challenger`` (set/clear) and
#: ``recovered`` (pointer repaired after a crash or manual edit) extend the design's list.
EVENTS = (
    "registered",
    "compared",
    "promoted",
    "rejected",
    "inconclusive",
    "skipped",
    "rolled_back",
    "forced",
    "failed",
    "deleted",
    "challenger",
    "recovered",
)
#: Events callers may append with :meth:`ModelRegistry.record`; the others are written
#: only by the registry operation they describe, so the history cannot lie about them.
RECORDABLE_EVENTS = ("compared", "rejected", "inconclusive", "skipped", "failed")
PRODUCTION_EVENTS = ("promoted", "forced", "rolled_back", "recovered")
_RESERVED_FIELDS = ("event", "time", "id")
_BASELINE_FIELDS = ("baseline", "baseline_version")

#: Test hook: called with a step name after each file-system step of a switch.
#: Fault-injection tests set it in a child process to die at a chosen step.
_checkpoint: Callable[[str], None] | None = None


def _step(name: str) -> None:
    if _checkpoint is not None:
        _checkpoint(name)


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class ProductionInfo:
    """The production model: ``path`` is the version folder the link resolves to."""

    version: str
    sha256: str
    promoted_at: str | None
    path: Path
    event: str | None = None
    reason: str | None = None


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


@dataclass(frozen=True)
class ChallengerInfo:
    version: str
    traffic: float
    set_at: str
    reason: str | None = None


@dataclass(frozen=True)
class GcResult:
    """``delete``: versions removed (or that would be, with ``dry_run``); ``keep``: why kept."""

    delete: list[str]
    keep: dict[str, str]
    dry_run: bool


# --------------------------------------------------------------------------- helpers


def utc_now() -> str:
    """UTC time as ISO 8601 with milliseconds and a ``Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def check_version_name(version: object) -> str:
    """Return ``version`` if it is a version name (``v0001``); raise RegistryError otherwise."""
    if not isinstance(version, str) or not VERSION_RE.fullmatch(version):
        raise RegistryError(
            f"invalid version name {version!r}: expected 'v' and at least 4 digits, e.g. v0003"
        )
    return version


def version_name(number: int) -> str:
    return f"v{number:04d}"


def file_sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _jsonable(value: Any) -> Any:
    """Plain JSON data from ``value``: paths to str, NaN/inf to None, numpy scalars unwrapped."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Path):
        return value.as_posix()
    if hasattr(value, "to_dict"):
        return _jsonable(value.to_dict())
    if hasattr(value, "item"):  # numpy scalar
        return _jsonable(value.item())
    return str(value)


def _dumps(data: Mapping[str, Any]) -> str:
    return json.dumps(_jsonable(data), separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _atomic_write_json(path: Path, data: Mapping[str, Any], step: str | None = None) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder, fsync, replace, fsync."""
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex}")
    payload = (json.dumps(_jsonable(data), indent=2, allow_nan=False) + "\n").encode()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, payload)
        os.fsync(fd)
    finally:
        os.close(fd)
    if step:
        _step(f"{step}_tmp")
    os.replace(tmp, path)
    _fsync_dir(path.parent)
    if step:
        _step(step)


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:
        raise RegistryError(f"{path}: cannot read {what}: {exc}") from exc
    if not isinstance(data, dict):
        raise RegistryError(f"{path}: {what} must be a JSON object")
    return data


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
        if not p.is_file():
            raise RegistryError(f"{folder}: missing {p.name}")
    try:
        meta = _read_json(meta_path, "model metadata")
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


def production_stack(events: Iterable[Mapping[str, Any]]) -> list[str]:
    """Replay production changes; the last item is production, the one before it the
    rollback target. Promotions push, a rollback pops back to its target."""
    stack: list[str] = []
    for ev in events:
        kind, v = ev.get("event"), ev.get("version")
        if kind not in PRODUCTION_EVENTS or not isinstance(v, str):
            continue
        if kind == "rolled_back" and v in stack:
            del stack[stack.index(v) + 1 :]
        elif not stack or stack[-1] != v:
            stack.append(v)
    return stack


def _baseline_of(ev: Mapping[str, Any]) -> tuple[bool, str | None]:
    """(known, version) of the baseline a comparison event or summary was made against."""
    if "baseline_version" in ev:
        b = ev["baseline_version"]
        return True, b if isinstance(b, str) else None
    if "baseline" in ev:
        b = ev["baseline"]
        if isinstance(b, Mapping):  # a comparison report: {"version", "path", "sha256"}
            v = b.get("version")
            return isinstance(v, str), v if isinstance(v, str) else None
        return True, b if isinstance(b, str) else None
    return False, None


# --------------------------------------------------------------------------- registry


class ModelRegistry:
    """A folder of immutable model versions with an atomically swapped production link.

    Reads take no lock; every write holds an exclusive ``fcntl.flock`` on ``root/.lock``,
    so concurrent processes never lose a version number or a history line.
    """

    def __init__(self, root: str | Path, *, lock_timeout: float | None = 300.0) -> None:
        self.root = Path(root).expanduser().absolute()
        self.lock_timeout = lock_timeout
        self._tlock = threading.RLock()
        self._depth = 0
        self._lock_fd: int | None = None
        self._check_format()

    # ------------------------------------------------------------------ paths

    @property
    def versions_dir(self) -> Path:
        return self.root / "versions"

    @property
    def history_path(self) -> Path:
        return self.root / "history.jsonl"

    @property
    def pointer_path(self) -> Path:
        return self.root / "production.json"

    @property
    def challenger_path(self) -> Path:
        return self.root / "challenger.json"

    @property
    def _pending_path(self) -> Path:
        return self.root / ".pending.json"

    def production_path(self) -> Path:
        """The ``production`` link (``production/model.pt`` is what users load)."""
        return self.root / "production"

    def version_path(self, version: str) -> Path:
        """Folder of ``version`` (validated name; the folder may not exist)."""
        return self.versions_dir / check_version_name(version)

    def __repr__(self) -> str:
        return f"ModelRegistry({str(self.root)!r})"

    # ------------------------------------------------------------------ format and lock

    def _check_format(self) -> None:
        path = self.root / "registry.json"
        try:
            data = _read_json(path, "registry descriptor")
        except FileNotFoundError:
            return
        fmt = data.get("format_version")
        if not isinstance(fmt, int) or isinstance(fmt, bool):
            raise RegistryError(f"{path}: format_version must be an integer, got {fmt!r}")
        if fmt > REGISTRY_FORMAT_VERSION:
            raise RegistryError(
                f"{path}: registry format {fmt} was written by a newer version of this "
                f"software (this one reads format {REGISTRY_FORMAT_VERSION}); upgrade it"
            )

    def _ensure_layout(self) -> None:
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        if not (self.root / "registry.json").exists():
            _atomic_write_json(
                self.root / "registry.json",
                {"format_version": REGISTRY_FORMAT_VERSION, "created_at": utc_now()},
            )
        self._check_format()

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the registry's exclusive lock (re-entrant within this object)."""
        with self._tlock:
            if self._depth == 0:
                fd = self._open_lock()
                try:
                    self._acquire(fd)
                except BaseException:
                    os.close(fd)
                    raise
                self._lock_fd = fd
            self._depth += 1
            try:
                if self._depth == 1:
                    self._ensure_layout()
                    self._recover_locked()
                yield
            finally:
                self._depth -= 1
                if self._depth == 0 and self._lock_fd is not None:
                    fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
                    os.close(self._lock_fd)
                    self._lock_fd = None

    def _open_lock(self) -> int:
        """Open (creating the registry folder if needed) the lock file; an unwritable or
        impossible location is a RegistryError naming it, not a traceback."""
        lock = self.root / ".lock"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            return os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise RegistryLockError(
                f"{lock}: cannot open the registry lock ({exc.strerror or exc}); every write "
                "needs a writable registry folder"
            ) from exc

    def _acquire(self, fd: int) -> None:
        deadline = None if self.lock_timeout is None else time.monotonic() + self.lock_timeout
        delay = 0.001
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
            if deadline is not None and time.monotonic() > deadline:
                raise RegistryError(
                    f"{self.root / '.lock'}: registry locked by another process for more "
                    f"than {self.lock_timeout:.0f} s"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    # ------------------------------------------------------------------ history

    def _event(
        self, event: str, fields: Mapping[str, Any], keep_none: Iterable[str] = ()
    ) -> dict[str, Any]:
        """A history event; fields that are None are left out, except ``keep_none`` ones."""
        keep = set(keep_none)
        ev: dict[str, Any] = {"event": event, "time": utc_now(), "id": uuid.uuid4().hex}
        ev.update({k: v for k, v in fields.items() if v is not None or k in keep})
        return _jsonable(ev)  # type: ignore[no-any-return]

    def _append(self, ev: Mapping[str, Any]) -> None:
        """Append one event as one line with a single O_APPEND write, then fsync (locked)."""
        line = (_dumps(ev) + "\n").encode("utf-8")
        created = not self.history_path.exists()
        fd = os.open(self.history_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            written = os.write(fd, line)
            if written != len(line):
                raise OSError(f"{self.history_path}: short write ({written} of {len(line)})")
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            _fsync_dir(self.root)

    def _read_lines(self) -> list[str]:
        try:
            data = self.history_path.read_bytes()
        except FileNotFoundError:
            return []
        text = data.decode("utf-8", errors="replace")
        lines = text.split("\n")
        # A last line without "\n" is a write cut short by a crash: never committed.
        return [ln for ln in lines[:-1] if ln.strip()]

    def history(self, n: int | None = None) -> list[dict[str, Any]]:
        """Events, oldest first (the last ``n`` when given)."""
        events = []
        for i, line in enumerate(self._read_lines(), start=1):
            try:
                ev = json.loads(line)
            except ValueError as exc:
                raise RegistryError(f"{self.history_path}:{i}: unreadable event: {exc}") from exc
            if not isinstance(ev, dict):
                raise RegistryError(f"{self.history_path}:{i}: event is not a JSON object")
            events.append(ev)
        if n is not None:
            events = events[-n:] if n > 0 else []
        return events

    def last_event(
        self, kind: str | Iterable[str] | None = None, version: str | None = None
    ) -> dict[str, Any] | None:
        """The newest event of ``kind`` (one name or several), optionally for ``version``."""
        kinds = {kind} if isinstance(kind, str) else (set(kind) if kind is not None else None)
        for ev in reversed(self.history()):
            if kinds is not None and ev.get("event") not in kinds:
                continue
            if version is not None and ev.get("version") != version:
                continue
            return ev
        return None

    def record(self, event: str, **fields: Any) -> dict[str, Any]:
        """Append a flow event (compared, rejected, inconclusive, skipped, failed).

        Fields are free-form JSON (version, baseline_version, decision, reasons, metrics,
        report paths, run_id, ...); ``version`` must be a valid version name when given.
        """
        if event not in RECORDABLE_EVENTS:
            raise RegistryError(
                f"cannot record event {event!r}: use one of {', '.join(RECORDABLE_EVENTS)} "
                "(production changes are recorded by promote/rollback themselves)"
            )
        bad = [k for k in _RESERVED_FIELDS if k in fields]
        if bad:
            raise RegistryError(f"event fields {bad} are reserved")
        for key in ("version", "baseline_version"):
            if fields.get(key) is not None:
                check_version_name(fields[key])
        with self.locked():
            # An explicit baseline of None means "compared with no production model": keep
            # it, or the promotion gate could not tell that comparison from one of unknown
            # baseline and would accept it after another version reached production.
            ev = self._event(event, fields, keep_none=_BASELINE_FIELDS)
            self._append(ev)
        return ev

    # ------------------------------------------------------------------ versions

    def _version_numbers(self) -> list[int]:
        try:
            names = os.listdir(self.versions_dir)
        except FileNotFoundError:
            return []
        return sorted(int(n[1:]) for n in names if VERSION_RE.fullmatch(n))

    def version_names(self) -> list[str]:
        return [version_name(n) for n in self._version_numbers()]

    def metadata(self, version: str) -> dict[str, Any]:
        """The model.json of ``version``."""
        path = self.version_path(version)
        if not path.is_dir():
            raise RegistryError(f"version {version} is not in the registry {self.root}")
        try:
            return _read_json(path / META_FILE, "model metadata")
        except FileNotFoundError as exc:
            raise RegistryError(f"{path}: missing {META_FILE}") from exc

    def verify(self, version: str) -> dict[str, Any]:
        """Verify ``version``'s checksum and format; return its model.json or raise."""
        path = self.version_path(version)
        if not path.is_dir():
            raise RegistryError(f"version {version} is not in the registry {self.root}")
        meta, _ = check_model_folder(path)
        return meta

    def versions(self) -> list[VersionInfo]:
        """Every version folder with its status (derived from the history) and integrity."""
        events = self.history()
        current = self._link_version()
        ever = {e.get("version") for e in events if e.get("event") in PRODUCTION_EVENTS}
        registered = {
            e.get("version"): e.get("time") for e in events if e.get("event") == "registered"
        }
        decisions = {
            e.get("version"): e.get("decision")
            for e in events
            if e.get("event") == "compared" and e.get("decision")
        }
        try:
            chal = self.challenger()
        except RegistryError:
            chal = None
        out = []
        for v in self.version_names():
            path = self.version_path(v)
            problem: str | None = None
            meta: dict[str, Any] = {}
            try:
                meta, _ = check_model_folder(path)
            except RegistryError as exc:
                problem = str(exc)
                with contextlib.suppress(RegistryError, FileNotFoundError):
                    meta = _read_json(path / META_FILE, "model metadata")
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
                    challenger=chal is not None and chal.version == v,
                    decision=decisions.get(v),
                )
            )
        return out

    def _next_number(self) -> int:
        """Next free version number (locked). Numbers of deleted versions are not reused.
        A version folder without its ``registered`` event (a crash between the rename and
        the append) gets the event now, marked ``recovered``."""
        on_disk = set(self._version_numbers())
        recorded = set()
        for ev in self.history():
            v = ev.get("version")
            if ev.get("event") == "registered" and isinstance(v, str) and VERSION_RE.fullmatch(v):
                recorded.add(int(v[1:]))
        for n in sorted(on_disk - recorded):
            meta: dict[str, Any] = {}
            with contextlib.suppress(RegistryError, FileNotFoundError):
                meta = self.metadata(version_name(n))
            fields = {"version": version_name(n), "sha256": meta.get("sha256"), "recovered": True}
            self._append(self._event("registered", fields))
        return max(on_disk | recorded, default=0) + 1

    def register(
        self,
        folder: str | Path,
        *,
        reason: str | Mapping[str, Any] | None = None,
        run_id: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> str:
        """Copy a model folder into ``versions/vNNNN`` (temp folder, fsync, rename) and
        record ``registered``; return the new version. The source is verified first."""
        src = Path(folder).expanduser().absolute()
        meta, sha = check_model_folder(src)
        with self.locked():
            tmp = self.versions_dir / f".tmp-{uuid.uuid4().hex}"
            try:
                self._copy_tree(src, tmp)
                check_model_folder(tmp)  # the copy, as written to disk
                _step("register_copied")
                version = version_name(self._next_number())
                os.rename(tmp, self.versions_dir / version)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            _fsync_dir(self.versions_dir)
            _step("register_renamed")
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
            self._append(self._event("registered", fields))
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
                shutil.copyfile(source, target)
                _fsync_file(target)
                os.chmod(target, 0o444)
        for dirpath, _, _ in os.walk(dst, topdown=False):
            _fsync_dir(Path(dirpath))

    # ------------------------------------------------------------------ production

    def _link_version(self) -> str | None:
        """Version named by the production link, or None when there is no link."""
        try:
            target = os.readlink(self.production_path())
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                raise RegistryError(
                    f"{self.production_path()} is a plain folder or file, not a link: move it "
                    "away and register it with `retrain register`"
                ) from exc
            raise
        parts = Path(target).parts
        if len(parts) != 2 or parts[0] != "versions" or not VERSION_RE.fullmatch(parts[1]):
            raise RegistryError(f"{self.production_path()} points to {target!r}, not versions/vN")
        return parts[1]

    def _read_pointer(self) -> dict[str, Any] | None:
        try:
            data = _read_json(self.pointer_path, "production pointer")
        except FileNotFoundError:
            return None
        fmt = data.get("format_version")
        if isinstance(fmt, int) and fmt > REGISTRY_FORMAT_VERSION:
            raise RegistryError(f"{self.pointer_path}: format {fmt} is newer than this software")
        return data

    def production(self) -> ProductionInfo | None:
        """The production model, or None. If the link and pointer disagree (a crash), the
        registry is recovered first (under the lock) when it is writable."""
        link = self._link_version()
        pointer = self._safe_pointer()
        pending = self._pending_path.exists()
        if pending or (pointer or {}).get("version") != link:
            with contextlib.suppress(OSError, RegistryLockError):  # read-only: read as is
                with self.locked():
                    pass  # recovery runs on acquiring the lock
                link, pointer = self._link_version(), self._safe_pointer()
        if link is None:
            return None
        same = pointer is not None and pointer.get("version") == link
        sha = pointer.get("sha256") if same and pointer else None
        if not isinstance(sha, str):
            with contextlib.suppress(RegistryError, FileNotFoundError):
                sha = self.metadata(link).get("sha256")
        return ProductionInfo(
            version=link,
            sha256=sha if isinstance(sha, str) else "",
            promoted_at=pointer.get("promoted_at") if same and pointer else None,
            path=self.version_path(link),
            event=pointer.get("event") if same and pointer else None,
            reason=pointer.get("reason") if same and pointer else None,
        )

    def _safe_pointer(self) -> dict[str, Any] | None:
        try:
            return self._read_pointer()
        except RegistryError:
            return None

    def previous_production(self) -> str | None:
        """The rollback target: the production version before the current one."""
        stack = production_stack(self.history())
        current = self._link_version()
        if stack and stack[-1] == current:
            stack = stack[:-1]
        return stack[-1] if stack else None

    def promote(
        self,
        version: str,
        reason: str | None,
        force: bool = False,
        *,
        run_id: str | None = None,
        comparison: Mapping[str, Any] | None = None,
        event: str = "promoted",
    ) -> None:
        """Make ``version`` production atomically; the old version stays as the backup.

        Without ``force`` the version must have a PROMOTE decision (``comparison`` passed
        here, or the newest ``compared`` event for it) made against the current production,
        unless there is no production yet. ``force`` needs a reason and records ``forced``.
        """
        check_version_name(version)
        if event not in ("promoted", "forced"):
            raise RegistryError(f"promotion event must be 'promoted' or 'forced', not {event!r}")
        if force:
            if not reason or not reason.strip():
                raise RegistryError("a forced promotion needs a reason (--reason '...')")
            event = "forced"
        with self.locked():
            meta = self.verify(version)
            current = self._link_version()
            if current == version:
                raise AlreadyProductionError(f"{version} is already the production model")
            summary = None if comparison is None else _jsonable(dict(comparison))
            default_reason = "forced"
            if not force:
                default_reason = self._check_gate(version, current, summary)
            self._switch(
                version,
                meta,
                event,
                current=current,
                reason=reason or default_reason,
                run_id=run_id,
                comparison=summary,
            )

    def _check_gate(self, version: str, current: str | None, summary: Any) -> str:
        """Raise unless ``version`` may be promoted without force; return why it may."""
        if summary is not None:
            source, decision, ev = "comparison passed in", summary.get("decision"), summary
        else:
            ev = self.last_event("compared", version=version)
            source = "last recorded comparison"
            decision = ev.get("decision") if ev else None
            if ev is None and current is None:
                return "first production model (nothing to compare with)"
            if ev is None:
                raise RegistryError(
                    f"{version} has no recorded comparison with production {current}: run the "
                    "comparison (or the retraining flow) first, or use --force --reason '...'"
                )
        if decision != "PROMOTE":
            raise RegistryError(
                f"{version}: {source} decided {decision!r}, not PROMOTE; "
                "use --force --reason '...' to override"
            )
        cand = ev.get("candidate")
        cand_version = cand.get("version") if isinstance(cand, Mapping) else None
        cand_version = ev.get("candidate_version", cand_version)
        if isinstance(cand_version, str) and cand_version != version:
            raise RegistryError(f"the comparison is about {cand_version}, not {version}: refusing")
        known, baseline = _baseline_of(ev)
        if known and baseline != current:
            raise RegistryError(
                f"{version} was compared with {baseline or 'no production model'}, but "
                f"production is now {current or 'empty'}: compare again or use --force"
            )
        return f"{source} decided PROMOTE"

    def rollback(
        self, to: str | None = None, *, reason: str | None = None, run_id: str | None = None
    ) -> str:
        """Restore the previous production version (or ``to``, which must have been in
        production) atomically; record ``rolled_back``; return the restored version."""
        if to is not None:
            check_version_name(to)
        with self.locked():
            current = self._link_version()
            if current is None:
                raise RegistryError("there is no production model to roll back")
            events = self.history()
            if to is None:
                stack = production_stack(events)
                if stack and stack[-1] == current:
                    stack = stack[:-1]
                if not stack:
                    raise RegistryError(f"no production version before {current} to roll back to")
                to = stack[-1]
            if to == current:
                raise AlreadyProductionError(f"{to} is already the production model")
            ever = {e.get("version") for e in events if e.get("event") in PRODUCTION_EVENTS}
            if to not in ever:
                raise RegistryError(
                    f"{to} has never been in production; promote it instead "
                    f"(`retrain promote {to} --force --reason '...'`)"
                )
            meta = self.verify(to)
            self._switch(
                to,
                meta,
                "rolled_back",
                current=current,
                reason=reason or f"rollback from {current}",
                run_id=run_id,
            )
        return to

    def _switch(
        self,
        version: str,
        meta: Mapping[str, Any],
        event: str,
        *,
        current: str | None,
        reason: str | None,
        run_id: str | None,
        comparison: Any = None,
    ) -> None:
        """Atomically make ``version`` production (locked). Steps: intent, link, pointer,
        challenger (if it was this version), history, intent removed."""
        prev_sha = None
        if current is not None:
            with contextlib.suppress(RegistryError):
                prev_sha = self.metadata(current).get("sha256")
        chal = self._challenger_or_none()  # a broken challenger file must not block a switch
        clear_chal = chal is not None and chal.version == version
        ev = self._event(
            event,
            {
                "version": version,
                "previous": current,
                "sha256": meta.get("sha256"),
                "previous_sha256": prev_sha,
                "reason": reason,
                "run_id": run_id,
                "metrics": metrics_summary(meta),
                "trained_at": meta.get("trained_at"),
                "comparison": comparison,
                "challenger_cleared": True if clear_chal else None,
            },
        )
        pending = {"format_version": REGISTRY_FORMAT_VERSION, "event": ev}
        _atomic_write_json(self._pending_path, pending, step="pending")
        self._swap_link(version)
        self._write_pointer(ev)
        if clear_chal:
            self._remove(self.challenger_path)
            _step("challenger_cleared")
        self._append(ev)
        _step("history")
        self._remove(self._pending_path)
        _step("done")

    def _swap_link(self, version: str) -> None:
        link = self.production_path()
        if link.exists() and not link.is_symlink():
            raise RegistryError(
                f"{link} is a plain folder or file, not a link: move it away and register it "
                "with `retrain register`"
            )
        tmp = self.root / f".production.tmp-{uuid.uuid4().hex}"
        os.symlink(f"versions/{version}", tmp)
        _step("link_tmp")
        os.replace(tmp, link)
        _step("link_replaced")
        _fsync_dir(self.root)
        _step("link")

    def _write_pointer(self, ev: Mapping[str, Any]) -> None:
        pointer = {
            "format_version": REGISTRY_FORMAT_VERSION,
            "version": ev["version"],
            "sha256": ev.get("sha256"),
            "promoted_at": ev["time"],
            "event": ev["event"],
            "reason": ev.get("reason"),
            "event_id": ev["id"],
        }
        _atomic_write_json(self.pointer_path, pointer, step="pointer")

    def _remove(self, path: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
            _fsync_dir(path.parent)

    # ------------------------------------------------------------------ recovery

    def recover(self) -> None:
        """Finish or discard an interrupted operation (also runs before every write)."""
        with self.locked():
            pass

    def _recover_locked(self) -> None:
        self._repair_history_tail()
        self._remove_stale_temps()
        link = self._link_version()
        pending = None
        try:
            pending = _read_json(self._pending_path, "pending operation")
        except FileNotFoundError:
            pass
        except RegistryError:
            pending = None  # torn intent: written before the link was touched; discard
        if self._pending_path.exists():
            ev = (pending or {}).get("event")
            if isinstance(ev, dict) and ev.get("version") == link:
                self._finish_switch(ev)
            self._remove(self._pending_path)
            return
        pointer = self._safe_pointer()
        if link is None and pointer and isinstance(pointer.get("version"), str):
            # The link was removed by hand: restore it from the pointer.
            version = check_version_name(pointer["version"])
            self.verify(version)
            self._swap_link(version)
            return
        if link is not None and (pointer is None or pointer.get("version") != link):
            meta: dict[str, Any] = {}
            with contextlib.suppress(RegistryError, FileNotFoundError):
                meta = self.metadata(link)
            ev = self._event(
                "recovered",
                {
                    "version": link,
                    "previous": (pointer or {}).get("version"),
                    "sha256": meta.get("sha256"),
                    "reason": "production.json disagreed with the production link; "
                    "repaired from the link",
                },
            )
            self._write_pointer(ev)
            self._append(ev)

    def _finish_switch(self, ev: dict[str, Any]) -> None:
        pointer = self._safe_pointer()
        if pointer is None or pointer.get("event_id") != ev.get("id"):
            self._write_pointer(ev)
        if ev.get("challenger_cleared"):
            chal = self._challenger_or_none()
            if chal is not None and chal.version == ev.get("version"):
                self._remove(self.challenger_path)
        if f'"id":"{ev["id"]}"' not in "\n".join(self._read_lines()):
            self._append(ev)

    def _repair_history_tail(self) -> None:
        try:
            size = self.history_path.stat().st_size
        except FileNotFoundError:
            return
        if size == 0:
            return
        with open(self.history_path, "rb+") as f:
            f.seek(size - 1)
            if f.read(1) == b"\n":
                return
            f.seek(0)
            data = f.read()
            f.truncate(data.rfind(b"\n") + 1)
            f.flush()
            os.fsync(f.fileno())

    def _remove_stale_temps(self) -> None:
        if self.versions_dir.is_dir():
            for p in self.versions_dir.iterdir():
                if p.name.startswith((".tmp-", ".trash-")):
                    _force_rmtree(p)
        for p in self.root.iterdir():
            if ".tmp-" in p.name and p.name.startswith("."):
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()

    # ------------------------------------------------------------------ challenger

    def challenger(self) -> ChallengerInfo | None:
        try:
            data = _read_json(self.challenger_path, "challenger")
        except FileNotFoundError:
            return None
        try:
            return ChallengerInfo(
                version=check_version_name(data.get("version")),
                traffic=float(data["traffic"]),
                set_at=str(data.get("set_at", "")),
                reason=data.get("reason"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise RegistryError(f"{self.challenger_path}: invalid challenger: {exc}") from exc

    def _challenger_or_none(self) -> ChallengerInfo | None:
        """The challenger, or None when there is none or its file is unreadable."""
        try:
            return self.challenger()
        except RegistryError:
            return None

    def set_challenger(
        self,
        version: str,
        traffic: float,
        *,
        reason: str | None = None,
        run_id: str | None = None,
    ) -> ChallengerInfo:
        """Route ``traffic`` percent (0 < traffic <= 100) of entities to ``version``."""
        check_version_name(version)
        if not isinstance(traffic, int | float) or not 0 < float(traffic) <= 100:
            raise RegistryError(f"challenger traffic must be in (0, 100] percent, got {traffic!r}")
        with self.locked():
            meta = self.verify(version)
            if self._link_version() == version:
                raise RegistryError(f"{version} is the production model; it cannot be challenger")
            info = ChallengerInfo(version, float(traffic), utc_now(), reason)
            _atomic_write_json(
                self.challenger_path, {"format_version": REGISTRY_FORMAT_VERSION, **asdict(info)}
            )
            self._append(
                self._event(
                    "challenger",
                    {
                        "action": "set",
                        "version": version,
                        "traffic": float(traffic),
                        "sha256": meta.get("sha256"),
                        "reason": reason,
                        "run_id": run_id,
                    },
                )
            )
        return info

    def clear_challenger(self, *, reason: str | None = None, run_id: str | None = None) -> bool:
        """Stop routing traffic to the challenger; False when there was none."""
        with self.locked():
            problem = None
            try:
                chal = self.challenger()
            except RegistryError as exc:  # unreadable: clearing it is the way out
                chal, problem = None, str(exc)
            if chal is None and problem is None:
                return False
            self._remove(self.challenger_path)
            self._append(
                self._event(
                    "challenger",
                    {
                        "action": "clear",
                        "version": chal.version if chal else None,
                        "reason": reason,
                        "problem": problem,
                        "run_id": run_id,
                    },
                )
            )
        return True

    # ------------------------------------------------------------------ retention

    def gc(self, keep: int = 5, dry_run: bool = False, *, keep_production: bool = True) -> GcResult:
        """Delete old versions: keep the newest ``keep``, every version ever in production
        (unless ``keep_production`` is False), and always production, its predecessor and
        the challenger. Each deletion is recorded as a ``deleted`` event."""
        if keep < 0:
            raise RegistryError(f"keep must be >= 0, got {keep}")
        with self.locked():
            names = self.version_names()
            events = self.history()
            reasons: dict[str, str] = {}
            for v in names[-keep:] if keep else []:
                reasons[v] = f"among the newest {keep}"
            if keep_production:
                for e in events:
                    if e.get("event") in PRODUCTION_EVENTS and e.get("version") in names:
                        reasons.setdefault(e["version"], "was in production")
            current = self._link_version()
            if current:
                reasons[current] = "production"
            prev = self.previous_production()
            if prev:
                reasons[prev] = "previous production (rollback target)"
            chal = self.challenger()
            if chal:
                reasons[chal.version] = "challenger"
            delete = [v for v in names if v not in reasons]
            if not dry_run:
                for v in delete:
                    self._delete_version(v)
        return GcResult(
            delete=delete, keep={v: reasons[v] for v in names if v in reasons}, dry_run=dry_run
        )

    def _delete_version(self, version: str) -> None:
        path = self.version_path(version)
        meta: dict[str, Any] = {}
        with contextlib.suppress(RegistryError, FileNotFoundError):
            meta = _read_json(path / META_FILE, "model metadata")
        trash = self.versions_dir / f".trash-{version}-{uuid.uuid4().hex}"
        os.rename(path, trash)  # the version vanishes atomically; then the bytes go
        _fsync_dir(self.versions_dir)
        _force_rmtree(trash)
        self._append(
            self._event(
                "deleted",
                {"version": version, "sha256": meta.get("sha256"), "reason": "gc"},
            )
        )


class AlreadyProductionError(RegistryError):
    """The version asked for is already production (promote/rollback is a no-op)."""


class RegistryLockError(RegistryError):
    """The registry's lock file cannot be opened (folder missing, unwritable, not a folder)."""


def _force_rmtree(path: Path) -> None:
    """Remove a folder tree (its read-only files go too: the folders stay writable)."""
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(path)
