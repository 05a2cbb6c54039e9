"""Promotion and rollback rules: who may become production, and what a rollback restores.

:func:`production_stack` replays the production events of the history (promotions push,
a rollback pops back to its target). :class:`Promoter` promotes a version that passed
the gate (a PROMOTE decision against the current production, or ``force`` with a
reason) and rolls back to a version that was in production, both through the crash-safe
:meth:`~model.registry.pointer.ProductionPointer.switch`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from model.errors import RegistryError
from model.registry.files import jsonable
from model.registry.history import PRODUCTION_EVENTS, HistoryLog
from model.registry.layout import check_version_name
from model.registry.lock import RegistryLock
from model.registry.pointer import ProductionPointer
from model.registry.versions import VersionStore, check_model_folder


class AlreadyProductionError(RegistryError):
    """The version asked for is already production (promote/rollback is a no-op)."""


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


def holdout_auc_of(ev: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The version's own holdout AUC interval (DeLong, 95 %) in a promotion or comparison
    event or summary: its ``holdout_auc``, else the comparison's ``candidate_auc``."""
    if not ev:
        return None
    found = ev.get("holdout_auc") or ev.get("candidate_auc")
    comparison = ev.get("comparison")
    if not found and isinstance(comparison, Mapping):
        found = comparison.get("candidate_auc")
    if not isinstance(found, Mapping) or found.get("ci_low") is None:
        return None
    return {k: found.get(k) for k in ("auc", "se", "ci_low", "ci_high")}


def baseline_of(ev: Mapping[str, Any]) -> tuple[bool, str | None]:
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


class Promoter:
    """Production changes of a registry: promote, rollback, and the rollback target."""

    def __init__(
        self,
        history: HistoryLog,
        versions: VersionStore,
        pointer: ProductionPointer,
        lock: RegistryLock,
    ) -> None:
        self.history = history
        self.versions = versions
        self.pointer = pointer
        self.lock = lock

    def previous_production(self) -> str | None:
        """The rollback target: the newest earlier production version that is still in
        the registry (gc may have deleted some), if it verifies; None otherwise."""
        return self.rollback_target()[0]

    def rollback_target(self, current: str | None = None) -> tuple[str | None, str | None]:
        """(the rollback target, or None and why there is none). Earlier production
        versions that are no longer in the registry are skipped; one that is there but
        does not verify stops the search (a rollback must not silently go further)."""
        stack = production_stack(self.history.events())
        current = current or self.pointer.current()
        gone = []
        for v in reversed(stack):
            if v == current:
                continue
            path = self.versions.layout.version_path(v)
            if path.is_symlink() or not path.is_dir():
                gone.append(v)
                continue
            try:
                check_model_folder(path)
            except RegistryError as exc:
                return None, f"{v} does not verify: {exc}"
            return v, None
        if gone:
            return None, f"{', '.join(gone)}: no longer in the registry (deleted by gc)"
        return None, None

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
        The event records the version's holdout AUC interval (``holdout_auc``: DeLong, 95 %,
        from ``comparison`` or its newest ``compared`` event; None when it was never compared).
        """
        check_version_name(version)
        if event not in ("promoted", "forced"):
            raise RegistryError(f"promotion event must be 'promoted' or 'forced', not {event!r}")
        if force:
            if not reason or not reason.strip():
                raise RegistryError("a forced promotion needs a reason (--reason '...')")
            event = "forced"
        with self.lock.held():
            meta = self.versions.verify(version)
            current = self.pointer.current()
            if current == version:
                raise AlreadyProductionError(f"{version} is already the production model")
            summary = None if comparison is None else jsonable(dict(comparison))
            default_reason = "forced"
            if not force:
                default_reason = self._check_gate(version, current, summary)
            holdout = holdout_auc_of(summary) or holdout_auc_of(
                self.history.last("compared", version=version)
            )
            self.pointer.switch(
                version,
                meta,
                event,
                current=current,
                reason=reason or default_reason,
                run_id=run_id,
                comparison=summary,
                holdout_auc=holdout,
            )

    def _check_gate(self, version: str, current: str | None, summary: Any) -> str:
        """Raise unless ``version`` may be promoted without force; return why it may."""
        if summary is not None:
            source, decision, ev = "comparison passed in", summary.get("decision"), summary
        else:
            ev = self.history.last("compared", version=version)
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
        known, baseline = baseline_of(ev)
        if known and baseline != current:
            raise RegistryError(
                f"{version} was compared with {baseline or 'no production model'}, but "
                f"production is now {current or 'empty'}: compare again or use --force"
            )
        return f"{source} decided PROMOTE"

    def holdout_auc(
        self, version: str, events: list[dict[str, Any]] | None = None
    ) -> dict[str, Any] | None:
        """``version``'s holdout AUC interval as its newest production event recorded it
        (None: never recorded, e.g. promoted before intervals were kept)."""
        for ev in reversed(self.history.events() if events is None else events):
            if ev.get("event") in PRODUCTION_EVENTS and ev.get("version") == version:
                found = holdout_auc_of(ev)
                if found is not None:
                    return found
        return None

    def rollback(
        self, to: str | None = None, *, reason: str | None = None, run_id: str | None = None
    ) -> str:
        """Restore the previous production version (or ``to``, which must have been in
        production) atomically; record ``rolled_back``; return the restored version."""
        if to is not None:
            check_version_name(to)
        with self.lock.held():
            current = self.pointer.current()
            if current is None:
                raise RegistryError("there is no production model to roll back")
            events = self.history.events()
            if to is None:
                to, why = self.rollback_target(current)
                if to is None:
                    raise RegistryError(
                        f"no production version before {current} to roll back to"
                        + (f" ({why})" if why else "")
                    )
            if to == current:
                raise AlreadyProductionError(f"{to} is already the production model")
            ever = {e.get("version") for e in events if e.get("event") in PRODUCTION_EVENTS}
            if to not in ever:
                raise RegistryError(
                    f"{to} has never been in production; promote it instead "
                    f"(`retrain promote {to} --force --reason '...'`)"
                )
            meta = self.versions.verify(to)
            self.pointer.switch(
                to,
                meta,
                "rolled_back",
                current=current,
                reason=reason or f"rollback from {current}",
                run_id=run_id,
                holdout_auc=self.holdout_auc(to, events),
            )
        return to
