"""ModelRegistry: the public face of the registry, composed of its parts.

It wires one of each part to the same root (layout, lock, history, versions,
challenger file, production pointer, promoter, garbage collector) and delegates to
them; it also records flow events. Taking the lock checks the layout and runs crash
recovery first; reading takes no lock and never writes.

Every write turns an error of the OS (disk full, quota, read-only file system,
permission) into a one-line :class:`~model.errors.RegistryError` that names the path and
says what the failure left (e.g. "production is unchanged (v0001)"). A switch whose link
already moved is not reported as failed: it returns, with a
:class:`~model.errors.RegistryWarning` if its record could not be completed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager, suppress
from pathlib import Path
from typing import Any

from model.errors import RegistryError
from model.registry.challenger import ChallengerFile, ChallengerInfo
from model.registry.challenger_control import ChallengerControl
from model.registry.files import os_errors
from model.registry.gc import GarbageCollector, GcResult
from model.registry.history import (
    BASELINE_FIELDS,
    RECORDABLE_EVENTS,
    RESERVED_FIELDS,
    HistoryLog,
    new_event,
)
from model.registry.layout import RegistryLayout, check_version_name
from model.registry.lock import RegistryLock
from model.registry.pointer import ProductionInfo, ProductionPointer
from model.registry.promotion import Promoter
from model.registry.versions import Verifier, VersionInfo, VersionStore


class ModelRegistry:
    """A folder of immutable model versions with an atomically swapped production link.

    Reads take no lock; every write holds an exclusive ``fcntl.flock`` on ``root/.lock``,
    so concurrent processes never lose a version number or a history line.

    ``verify`` is called with a model folder before it is registered (on the copy, before
    it becomes a version) and before a version becomes production or challenger; it
    raises when the folder is not usable. The entry layers pass one that loads the model
    with torch ``weights_only=True``; without one (the default) the registry checks the
    format and the checksum only, as it always did, and never imports torch.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        lock_timeout: float | None = 300.0,
        verify: Verifier | None = None,
    ) -> None:
        self._layout = RegistryLayout(Path(root).expanduser().absolute())
        self._lock = RegistryLock(self._layout.lock_path, lock_timeout, self._on_lock)
        self._history = HistoryLog(self._layout.history_path)
        self._versions = VersionStore(self._layout, self._history, self._lock, verify)
        self._challenger = ChallengerFile(self._layout.challenger_path)
        self._pointer = ProductionPointer(
            self._layout, self._history, self._versions, self._challenger, self._lock
        )
        self._control = ChallengerControl(
            self._challenger, self._history, self._versions, self._pointer, self._lock
        )
        self._promoter = Promoter(self._history, self._versions, self._pointer, self._lock)
        self._gc = GarbageCollector(
            self._history,
            self._versions,
            self._pointer,
            self._promoter,
            self._challenger,
            self._lock,
        )
        self._layout.check_format()

    # ------------------------------------------------------------------ paths

    @property
    def root(self) -> Path:
        return self._layout.root

    @property
    def versions_dir(self) -> Path:
        return self._layout.versions_dir

    @property
    def history_path(self) -> Path:
        return self._layout.history_path

    @property
    def pointer_path(self) -> Path:
        return self._layout.pointer_path

    @property
    def challenger_path(self) -> Path:
        return self._layout.challenger_path

    @property
    def _pending_path(self) -> Path:
        return self._layout.pending_path

    def production_path(self) -> Path:
        """The ``production`` link (``production/model.pt`` is what users load)."""
        return self._layout.production_path()

    def version_path(self, version: str) -> Path:
        """Folder of ``version`` (validated name; the folder may not exist)."""
        return self._layout.version_path(version)

    def __repr__(self) -> str:
        return f"ModelRegistry({str(self.root)!r})"

    # ------------------------------------------------------------------ lock and recovery

    @property
    def lock_timeout(self) -> float | None:
        """Seconds a write waits for another process's lock (None: forever)."""
        return self._lock.timeout

    @lock_timeout.setter
    def lock_timeout(self, value: float | None) -> None:
        self._lock.timeout = value

    def locked(self) -> AbstractContextManager[None]:
        """Hold the registry's exclusive lock (re-entrant within this object)."""
        return self._lock.held()

    def _on_lock(self) -> None:
        """Run when the lock is first taken: create/check the layout, then recover."""
        self._layout.ensure()
        self._pointer.recover()

    def recover(self) -> None:
        """Repair what a crash or a hand edit left (also runs before every write): finish
        or discard an interrupted switch, make the link and production.json agree, cut a
        torn history line, remove temp files; each repair is recorded."""
        outcome = "what was repaired before the error is recorded"
        with self._os_errors("recovery", outcome), self.locked():
            pass

    def problems(self) -> list[str]:
        """What is inconsistent, with how to repair it; read without writing (``retrain
        status`` reports these)."""
        state = self._pointer.state()
        found = [state.problem] if state.problem else []
        for name, target in self._versions.links().items():
            found.append(self._versions.link_problem(name, target))
        return found

    def _os_errors(
        self, action: str, outcome: str | Callable[[], str]
    ) -> AbstractContextManager[None]:
        return os_errors(action, outcome, self.root)

    def _unchanged(self) -> str:
        current = None
        with suppress(RegistryError, OSError):
            current = self._pointer.current()
        return f"production is unchanged ({current or 'none'})"

    # ------------------------------------------------------------------ history

    def history(self, n: int | None = None) -> list[dict[str, Any]]:
        """Events, oldest first (the last ``n`` when given)."""
        return self._history.events(n)

    def last_event(
        self, kind: str | Iterable[str] | None = None, version: str | None = None
    ) -> dict[str, Any] | None:
        """The newest event of ``kind`` (one name or several), optionally for ``version``."""
        return self._history.last(kind, version)

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
        bad = [k for k in RESERVED_FIELDS if k in fields]
        if bad:
            raise RegistryError(f"event fields {bad} are reserved")
        for key in ("version", "baseline_version"):
            if fields.get(key) is not None:
                check_version_name(fields[key])
        with self._os_errors(f"recording {event}", "the event was not recorded"), self.locked():
            # An explicit baseline of None means "compared with no production model": keep
            # it, or the promotion gate could not tell that comparison from one of unknown
            # baseline and would accept it after another version reached production.
            ev = new_event(event, fields, keep_none=BASELINE_FIELDS)
            self._history.append(ev)
        return ev

    # ------------------------------------------------------------------ versions

    def version_names(self) -> list[str]:
        return self._versions.names()

    def metadata(self, version: str) -> dict[str, Any]:
        """The model.json of ``version``."""
        return self._versions.metadata(version)

    def verify(self, version: str) -> dict[str, Any]:
        """Verify ``version``'s checksum and format; return its model.json or raise."""
        return self._versions.verify(version)

    def versions(self) -> list[VersionInfo]:
        """Every version folder with its status (derived from the history) and integrity."""
        events = self.history()
        current = self._pointer.current()
        chal = self._challenger.read_or_none()
        return self._versions.describe(events, current, chal.version if chal else None)

    def register(
        self,
        folder: str | Path,
        *,
        reason: str | Mapping[str, Any] | None = None,
        run_id: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> str:
        """Copy a model folder into ``versions/vNNNN`` (temp folder, fsync, rename) and
        record ``registered``; return the new version. The source is verified first, and
        the copy (with ``verify``, if given) before it becomes a version."""
        with self._os_errors(f"registering {folder}", "nothing was registered"):
            return self._versions.register(folder, reason=reason, run_id=run_id, extra=extra)

    # ------------------------------------------------------------------ production

    def production(self) -> ProductionInfo | None:
        """The production model, or None, read without writing: after a crash or a hand
        edit it is what recovery will make it (see :mod:`model.registry.state`), and
        :meth:`problems` says what is to repair."""
        return self._pointer.production()

    def previous_production(self) -> str | None:
        """The rollback target: the newest earlier production version still in the
        registry, if it verifies (see :meth:`rollback_target` for why there is none)."""
        return self._promoter.previous_production()

    def holdout_auc(self, version: str) -> dict[str, Any] | None:
        """``version``'s holdout AUC interval (DeLong, 95 %: ``auc``, ``se``, ``ci_low``,
        ``ci_high``) recorded when it became production; None if none was recorded."""
        return self._promoter.holdout_auc(version)

    def rollback_target(self) -> tuple[str | None, str | None]:
        """(the rollback target, or None and why there is none: deleted by gc, corrupt)."""
        return self._promoter.rollback_target()

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
        with self._os_errors(f"promoting {version}", self._unchanged):
            self._promoter.promote(
                version, reason, force, run_id=run_id, comparison=comparison, event=event
            )

    def rollback(
        self, to: str | None = None, *, reason: str | None = None, run_id: str | None = None
    ) -> str:
        """Restore the previous production version (or ``to``, which must have been in
        production) atomically; record ``rolled_back``; return the restored version."""
        with self._os_errors("rollback", self._unchanged):
            return self._promoter.rollback(to, reason=reason, run_id=run_id)

    # ------------------------------------------------------------------ challenger

    def challenger(self) -> ChallengerInfo | None:
        """The challenger, or None; an unreadable challenger.json is a RegistryError."""
        return self._challenger.read()

    def set_challenger(
        self,
        version: str,
        traffic: float,
        *,
        reason: str | None = None,
        run_id: str | None = None,
        source: str | None = None,
    ) -> ChallengerInfo:
        """Route ``traffic`` percent (0 <= traffic <= 100) of entities to ``version`` (0: a
        shadow challenger, scored on every row beside production, serving none)."""
        with self._os_errors("setting the challenger", "the challenger is unchanged"):
            return self._control.set(version, traffic, reason=reason, run_id=run_id, source=source)

    def challenger_source(self) -> str | None:
        """Who set the current challenger: the ``source`` of its ``challenger`` set event
        (``"inconclusive"``: the retraining flow, for an INCONCLUSIVE candidate; None: a person
        or an older release)."""
        info = self.challenger()
        if info is None:
            return None
        ev = self.last_event("challenger", version=info.version)
        return None if ev is None or ev.get("action") != "set" else ev.get("source")

    def clear_challenger(self, *, reason: str | None = None, run_id: str | None = None) -> bool:
        """Stop routing traffic to the challenger; False when there was none."""
        with self._os_errors("clearing the challenger", "the challenger is unchanged"):
            return self._control.clear(reason=reason, run_id=run_id)

    # ------------------------------------------------------------------ retention

    def gc(self, keep: int = 5, dry_run: bool = False, *, keep_production: bool = True) -> GcResult:
        """Delete old versions: keep the newest ``keep``, every version ever in production
        (unless ``keep_production`` is False), and always production, its predecessor and
        the challenger. Each deletion is recorded as a ``deleted`` event."""
        outcome = "gc stopped there (`retrain versions` shows what is left)"
        with self._os_errors("gc", outcome):
            return self._gc.collect(keep, dry_run, keep_production=keep_production)
