"""What a dead cycle leaves behind, settled by the next cycle when it starts.

A cycle killed at any point (SIGKILL, power loss) may leave a registered candidate with no
decision in the history, and its scratch folder under ``runs/``. The registry itself finishes
or discards an interrupted promotion (``model.registry.pointer``); this module records the
candidate's outcome — ``failed``, "the cycle that trained it died" — once no live process
holds that cycle's lock (:mod:`model.cycle.locks`), and removes the dead cycles' scratch
folders.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model.cycle.locks import is_cycle_alive, remove_stale_scratch
from model.errors import RetrainError
from model.registry import ModelRegistry

DECISION_EVENTS = frozenset(
    {"promoted", "forced", "rejected", "inconclusive", "failed", "deleted", "rolled_back"}
)
"""Events that settle a candidate: after one of them, no cycle owes it a decision."""
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
"""A run id that names a scratch folder (a flow run's UUID); any other cannot hold a lock."""


@dataclass
class Recovery:
    """What :func:`recover_dead_cycles` did."""

    failed: list[dict[str, Any]] = field(default_factory=list)
    removed_scratch: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"{ev['version']}: {ev['error']}" for ev in self.failed]
        out += [f"removed the scratch folder of a dead cycle: {p}" for p in self.removed_scratch]
        return out


def undecided_candidates(registry: ModelRegistry) -> dict[str, str]:
    """``{version: run id}`` of versions a cycle registered and no event has settled.

    The run id comes from the ``registered`` event, or — for a version folder whose
    ``registered`` event was never written (a cycle killed between the two) — from its
    ``model.json`` (``training_reason.flow_run_id``). Versions registered by hand (no run id),
    production and the challenger are never listed.
    """
    run_of: dict[str, str | None] = {}
    decided: set[str] = set()
    for ev in registry.history():
        version = ev.get("version")
        if not isinstance(version, str):
            continue
        if ev.get("event") == "registered":
            run_of[version] = ev.get("run_id")
        elif ev.get("event") in DECISION_EVENTS:
            decided.add(version)
    for version in registry.version_names():
        if version in run_of or version in decided:
            continue
        try:
            reason = registry.metadata(version).get("training_reason") or {}
        except (OSError, ValueError, RetrainError):
            continue
        run_of[version] = reason.get("flow_run_id") if isinstance(reason, dict) else None
    prod = registry.production()
    chal = registry.challenger()
    keep = {prod.version if prod else None, chal.version if chal else None}
    return {
        v: run
        for v, run in run_of.items()
        if run and v not in decided and v not in keep and isinstance(run, str)
    }


def record_dead_cycles(
    registry: ModelRegistry, runs_dir: Path, *, run_id: str | None = None
) -> list[dict[str, Any]]:
    """Record ``failed`` for every candidate whose cycle ended without a decision and is not
    alive; return the events. Checked and recorded under the registry lock (no duplicates when
    two cycles start together)."""
    events: list[dict[str, Any]] = []
    if not _dead_candidates(registry, runs_dir, run_id):
        return events  # the common case: nothing to settle, no lock taken
    with registry.locked():
        for version, dead_run in _dead_candidates(registry, runs_dir, run_id):
            events.append(
                registry.record(
                    "failed",
                    version=version,
                    error=(
                        f"the cycle that trained it died (run {dead_run} ended without "
                        "recording a decision, and no live process holds its cycle lock)"
                    ),
                    run_id=dead_run,
                    recorded_by=run_id,
                )
            )
    return events


def _dead_candidates(
    registry: ModelRegistry, runs_dir: Path, run_id: str | None
) -> list[tuple[str, str]]:
    if not registry.history_path.exists() and not registry.versions_dir.is_dir():
        return []
    return [
        (version, run)
        for version, run in sorted(undecided_candidates(registry).items())
        if run != run_id and not (_RUN_ID.match(run) and is_cycle_alive(runs_dir, run))
    ]


def recover_dead_cycles(
    registry: ModelRegistry, runs_dir: Path, *, run_id: str | None = None
) -> Recovery:
    """Settle what dead cycles left: their candidates' outcome, their scratch folders."""
    failed = record_dead_cycles(registry, runs_dir, run_id=run_id)
    removed = remove_stale_scratch(runs_dir)
    return Recovery(failed=failed, removed_scratch=[str(p) for p in removed])
