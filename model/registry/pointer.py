"""The production pointer: the ``production`` link, ``production.json``, ``.pending.json``.

The link is the commit point of a switch. :meth:`ProductionPointer.switch` writes
``.pending.json`` (the full history event), swaps the link, rewrites the pointer, clears
the challenger if it was the new version, appends the event, then removes the intent;
each step is temp-file/link, fsync, ``os.replace``, fsync of the folder, followed by a
:func:`~model.registry.files.checkpoint`. An OS error (disk full, read-only) before the
link moved leaves production as it was and is raised; one after it does not undo the
switch: it is reported as a :class:`~model.errors.RegistryWarning`, and the intent stays
for recovery to complete the record.

Reading (:meth:`ProductionPointer.production`) never writes: it applies the rules of
:mod:`model.registry.state`. :meth:`ProductionPointer.recover` (run under the lock before
every write) makes the repairs those rules name: it finishes a switch whose link moved,
discards one whose link did not, repairs a link that disagrees with the last completed
switch (production.json), or rewrites a missing or invalid production.json from a valid
link, and records a ``recovered`` event that says what was wrong.
"""

from __future__ import annotations

import contextlib
import os
import uuid
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model.errors import RegistryError, RegistryWarning
from model.registry.challenger import ChallengerFile
from model.registry.files import (
    atomic_write_json,
    checkpoint,
    fsync_dir,
    os_error_text,
    remove_file,
)
from model.registry.history import HistoryLog, new_event
from model.registry.layout import REGISTRY_FORMAT_VERSION, RegistryLayout
from model.registry.lock import RegistryLock
from model.registry.state import ProductionState, read_link, read_state
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

    def state(self) -> ProductionState:
        """The production records and what they mean (read-only). A disagreement is read
        twice, so that a switch running in another process is not taken for damage."""
        state = read_state(self.layout, self.versions)
        return read_state(self.layout, self.versions) if state.problem else state

    def link_version(self) -> str | None:
        """Version named by the production link, or None (no link, or not versions/vN)."""
        return read_link(self.layout)[0]

    def current(self) -> str | None:
        """The production version by the rules of :mod:`model.registry.state`."""
        return self.state().version

    def production(self) -> ProductionInfo | None:
        """The production model, or None; read without writing (see :meth:`state`)."""
        state = self.state()
        version = state.version
        if version is None:
            return None
        record: dict[str, Any] = {}
        if state.finish and state.pending is not None:
            record = state.pending
        elif state.pointer_version == version and state.pointer is not None:
            record = state.pointer
        sha = record.get("sha256")
        if not isinstance(sha, str):
            with contextlib.suppress(RegistryError, OSError):
                sha = self.versions.metadata(version).get("sha256")
        when = record.get("promoted_at", record.get("time") if record is state.pending else None)
        return ProductionInfo(
            version=version,
            sha256=sha if isinstance(sha, str) else "",
            promoted_at=when,
            path=self.layout.version_path(version),
            event=record.get("event"),
            reason=record.get("reason"),
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
        holdout_auc: Any = None,
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
                "holdout_auc": holdout_auc,
                "challenger_cleared": True if clear_chal else None,
            },
        )
        self._check_link_swappable()
        pending = {"format_version": REGISTRY_FORMAT_VERSION, "event": ev}
        atomic_write_json(self.layout.pending_path, pending, step="pending")
        try:
            self.swap_link(version)
        except (OSError, RegistryError):
            if self.link_version() != version:  # not committed: production is as it was
                with contextlib.suppress(OSError):
                    remove_file(self.layout.pending_path)
                raise
        try:  # committed: an error from here on does not undo the switch
            self.write_pointer(ev)
            if clear_chal:
                self.challenger.remove()
                checkpoint("challenger_cleared")
            self.history.append(ev)
            checkpoint("history")
            remove_file(self.layout.pending_path)
        except OSError as exc:
            warnings.warn(
                RegistryWarning(
                    f"production is now {version} (the switch committed), but recording it "
                    f"failed: {os_error_text(exc, self.layout.root)}; the next registry write "
                    "(or `retrain recover`) completes the record"
                ),
                stacklevel=4,
            )
            return
        checkpoint("done")

    def _check_link_swappable(self) -> None:
        link = self.layout.production_path()
        if link.exists() and not link.is_symlink():
            raise RegistryError(
                f"{link} is a plain folder or file, not a link: move it away and register it "
                "with `retrain register`"
            )

    def swap_link(self, version: str) -> None:
        link = self.layout.production_path()
        self._check_link_swappable()
        tmp = self.layout.root / f".production.tmp-{uuid.uuid4().hex}"
        os.symlink(f"versions/{version}", tmp)
        checkpoint("link_tmp")
        try:
            os.replace(tmp, link)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
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
        """Make the repairs :func:`~model.registry.state.read_state` names (locked: runs
        on taking the lock): finish or discard an interrupted switch, then relink or
        repoint, recording a ``recovered`` event that says what was wrong."""
        self.history.repair_tail()
        self.layout.remove_stale_temps()
        state = read_state(self.layout, self.versions)
        if state.pending_exists:
            if state.finish and state.pending is not None:
                self._finish_switch(state.pending)
            remove_file(self.layout.pending_path)
            state = read_state(self.layout, self.versions)
        if state.repair is None or state.version is None:
            return
        meta: dict[str, Any] = {}
        with contextlib.suppress(RegistryError, OSError):
            meta = self.versions.metadata(state.version)
        if state.repair == "relink":
            self.swap_link(state.version)
            what = "the production link was repaired to match production.json"
        else:
            what = "production.json was rewritten from the production link"
        ev = new_event(
            "recovered",
            {
                "version": state.version,
                "previous": state.link if state.repair == "relink" else state.pointer_version,
                "link_was": state.link_text,
                "sha256": meta.get("sha256"),
                "reason": f"{what}; found: {state.found}",
            },
        )
        if state.repair == "repoint":
            self.write_pointer(ev)
        self.history.append(ev)

    def _finish_switch(self, ev: dict[str, Any]) -> None:
        pointer = read_state(self.layout, self.versions).pointer
        if pointer is None or pointer.get("event_id") != ev.get("id"):
            self.write_pointer(ev)
        if ev.get("challenger_cleared"):
            chal = self.challenger.read_or_none()
            if chal is not None and chal.version == ev.get("version"):
                self.challenger.remove()
        if f'"id":"{ev["id"]}"' not in "\n".join(self.history.lines()):
            self.history.append(
                {**ev, "recovered": "interrupted after its commit point; finished by recovery"}
            )
