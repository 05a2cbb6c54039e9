"""Flow run names that say how a run ended, built from the trigger decision and the outcome.

- retrained: ``retrain-<trigger>-<UTC time>-<OUTCOME>-<version>``, e.g.
  ``retrain-drift-2026-11-28T031502-PROMOTED-v0004`` (OUTCOME: PROMOTED, REJECTED,
  INCONCLUSIVE, FAILED);
- skipped: ``skip-<UTC time>``, or ``skip-cooldown-<trigger>-<UTC time>`` when a trigger fired
  and the cooldown suppressed it;
- drift monitor: ``drift-<UTC date>-<verdict>`` (``drift``, ``no-drift``, ``no-new-data``,
  ``skipped``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

OUTCOMES = {"PROMOTE": "PROMOTED", "REJECT": "REJECTED", "INCONCLUSIVE": "INCONCLUSIVE"}


def stamp(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H%M%S")


def suppressed_trigger(trigger: dict[str, Any]) -> str | None:
    """The first trigger that fired but was suppressed by the cooldown, if any (the decision's
    ``suppressed`` list, ``TriggerDecision.to_dict``)."""
    suppressed = trigger.get("suppressed") or []
    return str(suppressed[0]) if suppressed else None


def skip_run_name(trigger: dict[str, Any], at: dt.datetime) -> str:
    held = suppressed_trigger(trigger)
    return f"skip-cooldown-{held}-{stamp(at)}" if held else f"skip-{stamp(at)}"


def retrain_run_name(
    primary: str, at: dt.datetime, decision: str | None = None, version: str | None = None
) -> str:
    """``decision`` is the gate's (PROMOTE / REJECT / INCONCLUSIVE), "FAILED", or None while
    the run is still going."""
    name = f"retrain-{primary}-{stamp(at)}"
    if decision is not None:
        name += f"-{OUTCOMES.get(decision, decision)}"
    if version:
        name += f"-{version}"
    return name


def drift_run_name(at: dt.datetime, summary: dict[str, Any]) -> str:
    if summary.get("status") == "skipped":
        reason = str(summary.get("reason") or "")
        verdict = "no-new-data" if "no new data" in reason else "skipped"
    else:
        verdict = "drift" if summary.get("dataset_drift") else "no-drift"
    return f"drift-{at.astimezone(dt.UTC):%Y-%m-%d}-{verdict}"
