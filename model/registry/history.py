"""The audit history: ``history.jsonl``, append-only, one JSON event per line.

An event is appended with a single ``O_APPEND`` write and fsync (under the registry
lock); a write that stops short (disk full, file size limit) is cut off again before the
error is raised, so a failed append leaves the file as it was. A last line without its
newline is either a write cut short by a crash (it does not parse: never committed) or a
complete event that lost only its newline (it parses: it counts). Readers see the file
that way, and :meth:`HistoryLog.repair_tail` (before the next write) cuts off only a last
line that does not parse, and gives a complete one its newline.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from model.errors import RegistryError
from model.files import check_regular, read_bytes
from model.registry.files import dumps, fsync_dir, jsonable, utc_now, write_all

#: Every event the history may hold. ``deleted`` (gc), ``challenger`` (set/clear),
#: ``recovered`` (pointer repaired after a crash or manual edit), ``challenger_evaluated`` and
#: ``watch_checked`` (looks of the live sequential tests) extend the design's list.
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
    "gate_reset",
    "challenger_evaluated",
    "watch_checked",
    "migrated",
    "estimated",
    "estimate_checked",
    "quarantined",
    "restored",
)
#: Events callers may append with :meth:`ModelRegistry.record`; the others are written
#: only by the registry operation they describe, so the history cannot lie about them.
RECORDABLE_EVENTS = (
    "compared",
    "rejected",
    "inconclusive",
    "skipped",
    "failed",
    "gate_reset",
    "challenger_evaluated",  # one look of a challenger's sequential evaluation (live labels)
    "watch_checked",  # one look of the post-promotion watch
    "migrated",  # the registry moved to the per-model layout (retrain migrate-layout)
    "estimated",  # a label-free estimate of production on the prediction log (its days)
    "estimate_checked",  # that estimate held against the labels that came later (once)
    "quarantined",  # an incoming batch set aside (incoming/.quarantine/<batch>/)
    "restored",  # a quarantined batch moved back (retrain batches restore)
)
PRODUCTION_EVENTS = ("promoted", "forced", "rolled_back", "recovered")
RESERVED_FIELDS = ("event", "time", "id")
BASELINE_FIELDS = ("baseline", "baseline_version")


def new_event(
    event: str, fields: Mapping[str, Any], keep_none: Iterable[str] = ()
) -> dict[str, Any]:
    """A history event; fields that are None are left out, except ``keep_none`` ones."""
    keep = set(keep_none)
    ev: dict[str, Any] = {"event": event, "time": utc_now(), "id": uuid.uuid4().hex}
    ev.update({k: v for k, v in fields.items() if v is not None or k in keep})
    return jsonable(ev)  # type: ignore[no-any-return]


class HistoryLog:
    """The events in the file ``path``, oldest first."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, ev: Mapping[str, Any]) -> None:
        """Append one event as one line with a single O_APPEND write, then fsync (locked)."""
        line = (dumps(ev) + "\n").encode("utf-8")
        created = not self.path.exists()
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK  # a FIFO: never waits
        try:
            fd = os.open(self.path, flags, 0o644)
        except OSError as exc:
            if exc.errno != errno.ENXIO:  # a FIFO without a reader
                raise
            raise RegistryError(
                f"{self.path}: is a FIFO; the history must be a regular file"
            ) from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise RegistryError(f"{self.path}: the history must be a regular file")
            size = os.fstat(fd).st_size
            try:
                write_all(fd, line, self.path)
            except BaseException:
                # Not committed: cut off what part of the line reached the file, so the
                # history never holds an event whose write was reported as failed.
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, size)
                    os.fsync(fd)
                raise
        finally:
            os.close(fd)
        if created:
            fsync_dir(self.path.parent)

    def lines(self) -> list[str]:
        """The committed lines (not yet parsed)."""
        try:
            data = read_bytes(self.path, "the history", RegistryError, limit=2**40)
        except FileNotFoundError:
            return []
        text = data.decode("utf-8", errors="replace")
        lines = text.split("\n")
        # A last line without "\n" counts only when it is a complete event (it lost just
        # its newline); otherwise it is a write cut short by a crash, never committed.
        tail = lines[-1] if _is_event(lines[-1]) else ""
        return [ln for ln in [*lines[:-1], tail] if ln.strip()]

    def events(self, n: int | None = None) -> list[dict[str, Any]]:
        """Events, oldest first (the last ``n`` when given)."""
        events = []
        for i, line in enumerate(self.lines(), start=1):
            try:
                ev = json.loads(line)
            except ValueError as exc:
                raise RegistryError(f"{self.path}:{i}: unreadable event: {exc}") from exc
            if not isinstance(ev, dict):
                raise RegistryError(f"{self.path}:{i}: event is not a JSON object")
            events.append(ev)
        if n is not None:
            if isinstance(n, bool) or not isinstance(n, int) or n < 0:
                raise RegistryError(f"the number of events must be an integer >= 0, got {n!r}")
            events = events[-n:] if n > 0 else []
        return events

    def last(
        self, kind: str | Iterable[str] | None = None, version: str | None = None
    ) -> dict[str, Any] | None:
        """The newest event of ``kind`` (one name or several), optionally for ``version``."""
        kinds = {kind} if isinstance(kind, str) else (set(kind) if kind is not None else None)
        for ev in reversed(self.events()):
            if kinds is not None and ev.get("event") not in kinds:
                continue
            if version is not None and ev.get("version") != version:
                continue
            return ev
        return None

    def repair_tail(self) -> None:
        """Make the file end with a newline before the next append (locked): a last line
        that is a complete event gets its newline; one that does not parse (a write cut
        short by a crash) is cut off. Every earlier line is left as it is."""
        try:
            check_regular(self.path, "the history", RegistryError)
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        if size == 0:
            return
        with open(self.path, "rb+") as f:
            f.seek(size - 1)
            if f.read(1) == b"\n":
                return
            f.seek(0)
            data = f.read()
            start = data.rfind(b"\n") + 1
            if _is_event(data[start:].decode("utf-8", errors="replace")):
                f.seek(0, os.SEEK_END)
                f.write(b"\n")
            else:
                f.truncate(start)
            f.flush()
            os.fsync(f.fileno())


def _is_event(line: str) -> bool:
    """Whether ``line`` is one complete JSON object (an event)."""
    if not line.strip():
        return False
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False
