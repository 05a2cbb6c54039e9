"""Setting and clearing the challenger: a verified version, never production, recorded.

:class:`ChallengerControl` writes ``challenger.json`` through
:class:`~model.registry.challenger.ChallengerFile` under the registry lock and appends a
``challenger`` event for every change.
"""

from __future__ import annotations

from model.errors import RegistryError
from model.registry.challenger import ChallengerFile, ChallengerInfo
from model.registry.files import utc_now
from model.registry.history import HistoryLog, new_event
from model.registry.layout import check_version_name
from model.registry.lock import RegistryLock
from model.registry.pointer import ProductionPointer
from model.registry.versions import VersionStore


class ChallengerControl:
    """Sets and clears the challenger of a registry."""

    def __init__(
        self,
        file: ChallengerFile,
        history: HistoryLog,
        versions: VersionStore,
        pointer: ProductionPointer,
        lock: RegistryLock,
    ) -> None:
        self.file = file
        self.history = history
        self.versions = versions
        self.pointer = pointer
        self.lock = lock

    def set(
        self,
        version: str,
        traffic: float,
        *,
        reason: str | None,
        run_id: str | None,
        source: str | None = None,
    ) -> ChallengerInfo:
        """Route ``traffic`` percent (0 <= traffic <= 100) of entities to ``version``; 0: a
        shadow challenger, scored beside production on every row but serving none. A
        challenger that was set before is replaced, and the event names it."""
        check_version_name(version)
        if (
            isinstance(traffic, bool)
            or not isinstance(traffic, int | float)
            or not 0 <= float(traffic) <= 100
        ):
            raise RegistryError(f"challenger traffic must be in [0, 100] percent, got {traffic!r}")
        with self.lock.held():
            meta = self.versions.verify(version)
            if self.pointer.current() == version:
                raise RegistryError(f"{version} is the production model; it cannot be challenger")
            before = self.file.read_or_none()
            info = ChallengerInfo(version, float(traffic), utc_now(), reason)
            self.file.write(info)
            self.history.append(
                new_event(
                    "challenger",
                    {
                        "action": "set",
                        "version": version,
                        "traffic": float(traffic),
                        "mode": "shadow" if float(traffic) == 0 else "routed",
                        "sha256": meta.get("sha256"),
                        "replaces": (
                            before.version
                            if before is not None and before.version != version
                            else None
                        ),
                        "reason": reason,
                        "source": source,
                        "run_id": run_id,
                    },
                )
            )
        return info

    def clear(self, *, reason: str | None, run_id: str | None) -> bool:
        """Stop routing traffic to the challenger; False when there was none."""
        with self.lock.held():
            problem = None
            try:
                chal = self.file.read()
            except RegistryError as exc:  # unreadable: clearing it is the way out
                chal, problem = None, str(exc)
            if chal is None and problem is None:
                return False
            self.file.remove()
            self.history.append(
                new_event(
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
