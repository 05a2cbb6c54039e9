"""Flow run names that say which model a run was for and how it ended, built from the trigger
decision and the outcome.

Every top-level run's name starts with its model: ``<model> · <name>`` (:func:`model_run_name`),
e.g. ``churn · retrain-drift-2026-11-28T031502-PROMOTED-v0004``, so two models' runs differ in
the runs list and in ``prefect flow-run ls``; ``<name>`` is one of:

- retrained: ``retrain-<trigger>-<UTC time>-<OUTCOME>-<version>``, e.g.
  ``retrain-drift-2026-11-28T031502-PROMOTED-v0004`` (OUTCOME: PROMOTED, REJECTED,
  INCONCLUSIVE, FAILED);
- skipped: ``skip-<UTC time>``, or ``skip-cooldown-<trigger>-<UTC time>`` when a trigger fired
  and the cooldown suppressed it;
- drift monitor: ``drift-<UTC date>-<verdict>`` (``drift``, ``no-drift``, ``no-new-data``,
  ``skipped``);
- the live tests: ``challenger-evaluation-<UTC time>`` and ``post-promotion-watch-<UTC time>``
  (:func:`live_run_name`), with the look's decision once known.

A name the user chose for the run (``--flow-run-name``, the run form, ``with_options``) is kept,
with the outcome appended: ``<chosen> · PROMOTED-v0004`` (:func:`user_run_name`).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

OUTCOMES = {"PROMOTE": "PROMOTED", "REJECT": "REJECTED", "INCONCLUSIVE": "INCONCLUSIVE"}
MODEL_SEPARATOR = " · "
OUR_NAME = re.compile(
    r"^(?:[a-z0-9-]{1,63} · )?"
    r"(?:retrain-[a-z-]+|skip|skip-cooldown-[a-z-]+|drift|challenger-evaluation"
    r"|post-promotion-watch)-\d{4}-\d{2}-\d{2}"
)
"""A name this project gave (with or without its model): renamed freely, never "chosen"."""


def model_run_name(model: str, name: str) -> str:
    """``<model> · <name>``: the model first, where a list of runs shows it."""
    return f"{model}{MODEL_SEPARATOR}{name}"


def ours(name: str | None) -> bool:
    """Whether ``name`` is a run name this project gives (see the module's docstring)."""
    return bool(name and OUR_NAME.match(name))


def outcome_text(decision: str | None, version: str | None = None) -> str | None:
    """``PROMOTED-v0004`` / ``FAILED`` / ``skipped``: the part a chosen name gets appended."""
    if decision is None:
        return None
    text = OUTCOMES.get(decision, decision)
    return f"{text}-{version}" if version else text


def user_run_name(chosen: str, outcome: str | None) -> str:
    """A name the user chose, with the outcome appended once it is known."""
    return f"{chosen}{MODEL_SEPARATOR}{outcome}" if outcome else chosen


def retrain_command(model: str, report: str) -> str:
    """The command that retrains ``model`` given a drift report, as a deployment's run would:
    what a drift run without a listening server tells its user."""
    return f"python -m flows.retraining --model {model} -p drift_report_path={report}"


def live_run_name(kind: str, at: dt.datetime, decision: str | None = None) -> str:
    """``challenger-evaluation-<UTC time>`` (or ``post-promotion-watch-``), then its decision."""
    name = f"{kind}-{stamp(at)}"
    return f"{name}-{decision}" if decision else name


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
