"""Retention: which old versions gc deletes, and which it keeps and why.

gc keeps the newest ``keep`` versions, every version ever in production (unless told
not to), and always production, its predecessor (the rollback target) and the
challenger; each deletion is recorded as a ``deleted`` event. A symbolic link in
``versions/`` with a version's name is not a version: gc unlinks it (never following it)
and records that, unless production or the challenger names it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from model.errors import RegistryError
from model.registry.challenger import ChallengerFile
from model.registry.history import PRODUCTION_EVENTS, HistoryLog
from model.registry.lock import RegistryLock
from model.registry.pointer import ProductionPointer
from model.registry.promotion import Promoter
from model.registry.versions import VersionStore


@dataclass(frozen=True)
class GcResult:
    """``delete``: versions removed (or that would be, with ``dry_run``); ``keep``: why kept."""

    delete: list[str]
    keep: dict[str, str]
    dry_run: bool


class GarbageCollector:
    """Deletes old versions of a registry (under its lock)."""

    def __init__(
        self,
        history: HistoryLog,
        versions: VersionStore,
        pointer: ProductionPointer,
        promoter: Promoter,
        challenger: ChallengerFile,
        lock: RegistryLock,
    ) -> None:
        self.history = history
        self.versions = versions
        self.pointer = pointer
        self.promoter = promoter
        self.challenger = challenger
        self.lock = lock

    def collect(
        self, keep: int = 5, dry_run: bool = False, *, keep_production: bool = True
    ) -> GcResult:
        """Delete old versions: keep the newest ``keep``, every version ever in production
        (unless ``keep_production`` is False), and always production, its predecessor and
        the challenger. Each deletion is recorded as a ``deleted`` event. A dry run
        only reads (no lock, no recovery)."""
        if keep < 0:
            raise RegistryError(f"keep must be >= 0, got {keep}")
        with contextlib.nullcontext() if dry_run else self.lock.held():  # dry run: a read
            names = self.versions.names()
            events = self.history.events()
            reasons: dict[str, str] = {}
            for v in names[-keep:] if keep else []:
                reasons[v] = f"among the newest {keep}"
            if keep_production:
                for e in events:
                    if e.get("event") in PRODUCTION_EVENTS and e.get("version") in names:
                        reasons.setdefault(e["version"], "was in production")
            current = self.pointer.current()
            if current:
                reasons[current] = "production"
            prev = self.promoter.previous_production()
            if prev:
                reasons[prev] = "previous production (rollback target)"
            chal = self.challenger.read()
            if chal:
                reasons[chal.version] = "challenger"
            # Symbolic links named like versions are not versions: unlinked (never followed),
            # unless production or the challenger names one (replace it first).
            links = self.versions.links()
            for name, target in links.items():
                if name in reasons:
                    reasons[name] += f" (a symbolic link to {target}, not a version folder)"
            entries = sorted({*names, *links}, key=lambda v: int(v[1:]))
            delete = [v for v in entries if v not in reasons]
            if not dry_run:
                for v in delete:
                    self.versions.delete(v)
        return GcResult(
            delete=delete, keep={v: reasons[v] for v in entries if v in reasons}, dry_run=dry_run
        )
