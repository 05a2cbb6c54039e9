"""The production pointer: the ``production`` link, ``production.json``, ``.pending.json``.

The link is the commit point of a switch. :meth:`ProductionPointer.switch` writes
``.pending.json`` (the full history event), swaps the link, rewrites the pointer, clears
the challenger if it was the new version, appends the event, then removes the intent;
each step is temp-file/link, fsync, ``os.replace``, fsync of the folder, followed by a
:func:`~model.registry.files.checkpoint`. :meth:`ProductionPointer.recover` (run under
the lock before every write) finishes a switch whose link was swapped, discards one
whose link was not, and repairs a pointer that disagrees with the link.
"""

from __future__ import annotations

import contextlib
import errno
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model.errors import RegistryError
from model.registry.challenger import ChallengerFile
from model.registry.files import atomic_write_json, checkpoint, fsync_dir, read_json, remove_file
from model.registry.history import HistoryLog, new_event
from model.registry.layout import (
    REGISTRY_FORMAT_VERSION,
    VERSION_RE,
    RegistryLayout,
    check_version_name,
)
from model.registry.lock import RegistryLock, RegistryLockError
from model.registry.versions import VersionStore, metrics_summary


@dataclass(frozen=True)
class ProductionInfo:
    """The production model: ``path`` is the version folder the link resolves to."""

    version: str
    sha256: str
    promoted_at: str | None
    path: Path
    event: str | None = None
    reason: str | None = None


class ProductionPointer:
    """Which version is production, and the crash-safe switch from one to another."""

    def __init__(
        self,
        layout: RegistryLayout,
        history: HistoryLog,
        versions: VersionStore,
        challenger: ChallengerFile,
        lock: RegistryLock,
    ) -> None:
        self.layout = layout
        self.history = history
        self.versions = versions
        self.challenger = challenger
        self.lock = lock

    # ------------------------------------------------------------------ reading

    def link_version(self) -> str | None:
        """Version named by the production link, or None when there is no link."""
        try:
            target = os.readlink(self.layout.production_path())
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                raise RegistryError(
                    f"{self.layout.production_path()} is a plain folder or file, not a link: "
                    "move it away and register it with `retrain register`"
                ) from exc
            raise
        parts = Path(target).parts
        if len(parts) != 2 or parts[0] != "versions" or not VERSION_RE.fullmatch(parts[1]):
            raise RegistryError(
                f"{self.layout.production_path()} points to {target!r}, not versions/vN"
            )
        return parts[1]

    def read_pointer(self) -> dict[str, Any] | None:
        try:
            data = read_json(self.layout.pointer_path, "production pointer")
        except FileNotFoundError:
            return None
        fmt = data.get("format_version")
        if isinstance(fmt, int) and fmt > REGISTRY_FORMAT_VERSION:
            raise RegistryError(
                f"{self.layout.pointer_path}: format {fmt} is newer than this software"
            )
        return data

    def safe_pointer(self) -> dict[str, Any] | None:
        try:
            return self.read_pointer()
        except RegistryError:
            return None

    def production(self) -> ProductionInfo | None:
        """The production model, or None. If the link and pointer disagree (a crash), the
        registry is recovered first (under the lock) when it is writable."""
        link = self.link_version()
        pointer = self.safe_pointer()
        pending = self.layout.pending_path.exists()
        if pending or (pointer or {}).get("version") != link:
            with contextlib.suppress(OSError, RegistryLockError):  # read-only: read as is
                with self.lock.held():
                    pass  # recovery runs on acquiring the lock
                link, pointer = self.link_version(), self.safe_pointer()
        if link is None:
            return None
        same = pointer is not None and pointer.get("version") == link
        sha = pointer.get("sha256") if same and pointer else None
        if not isinstance(sha, str):
            with contextlib.suppress(RegistryError, FileNotFoundError):
                sha = self.versions.metadata(link).get("sha256")
        return ProductionInfo(
            version=link,
            sha256=sha if isinstance(sha, str) else "",
            promoted_at=pointer.get("promoted_at") if same and pointer else None,
            path=self.layout.version_path(link),
            event=pointer.get("event") if same and pointer else None,
            reason=pointer.get("reason") if same and pointer else None,
        )

    # ------------------------------------------------------------------ switching

    def switch(
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
                prev_sha = self.versions.metadata(current).get("sha256")
        chal = self.challenger.read_or_none()  # a broken challenger file must not block a switch
        clear_chal = chal is not None and chal.version == version
        ev = new_event(
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
        atomic_write_json(self.layout.pending_path, pending, step="pending")
        self.swap_link(version)
        self.write_pointer(ev)
        if clear_chal:
            self.challenger.remove()
            checkpoint("challenger_cleared")
        self.history.append(ev)
        checkpoint("history")
        remove_file(self.layout.pending_path)
        checkpoint("done")

    def swap_link(self, version: str) -> None:
        link = self.layout.production_path()
        if link.exists() and not link.is_symlink():
            raise RegistryError(
                f"{link} is a plain folder or file, not a link: move it away and register it "
                "with `retrain register`"
            )
        tmp = self.layout.root / f".production.tmp-{uuid.uuid4().hex}"
        os.symlink(f"versions/{version}", tmp)
        checkpoint("link_tmp")
        os.replace(tmp, link)
        checkpoint("link_replaced")
        fsync_dir(self.layout.root)
        checkpoint("link")

    def write_pointer(self, ev: Mapping[str, Any]) -> None:
        pointer = {
            "format_version": REGISTRY_FORMAT_VERSION,
            "version": ev["version"],
            "sha256": ev.get("sha256"),
            "promoted_at": ev["time"],
            "event": ev["event"],
            "reason": ev.get("reason"),
            "event_id": ev["id"],
        }
        atomic_write_json(self.layout.pointer_path, pointer, step="pointer")

    # ------------------------------------------------------------------ recovery

    def recover(self) -> None:
        """Finish or discard an interrupted operation (locked: runs on taking the lock)."""
        self.history.repair_tail()
        self.layout.remove_stale_temps()
        link = self.link_version()
        pending = None
        try:
            pending = read_json(self.layout.pending_path, "pending operation")
        except FileNotFoundError:
            pass
        except RegistryError:
            pending = None  # torn intent: written before the link was touched; discard
        if self.layout.pending_path.exists():
            ev = (pending or {}).get("event")
            if isinstance(ev, dict) and ev.get("version") == link:
                self._finish_switch(ev)
            remove_file(self.layout.pending_path)
            return
        pointer = self.safe_pointer()
        if link is None and pointer and isinstance(pointer.get("version"), str):
            # The link was removed by hand: restore it from the pointer.
            version = check_version_name(pointer["version"])
            self.versions.verify(version)
            self.swap_link(version)
            return
        if link is not None and (pointer is None or pointer.get("version") != link):
            meta: dict[str, Any] = {}
            with contextlib.suppress(RegistryError, FileNotFoundError):
                meta = self.versions.metadata(link)
            ev = new_event(
                "recovered",
                {
                    "version": link,
                    "previous": (pointer or {}).get("version"),
                    "sha256": meta.get("sha256"),
                    "reason": "production.json disagreed with the production link; "
                    "repaired from the link",
                },
            )
            self.write_pointer(ev)
            self.history.append(ev)

    def _finish_switch(self, ev: dict[str, Any]) -> None:
        pointer = self.safe_pointer()
        if pointer is None or pointer.get("event_id") != ev.get("id"):
            self.write_pointer(ev)
        if ev.get("challenger_cleared"):
            chal = self.challenger.read_or_none()
            if chal is not None and chal.version == ev.get("version"):
                self.challenger.remove()
        if f'"id":"{ev["id"]}"' not in "\n".join(self.history.lines()):
            self.history.append(ev)
