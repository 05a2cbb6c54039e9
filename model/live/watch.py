"""The post-promotion watch: roll a new production back when it does worse live.

After a promotion (``promoted`` or ``forced`` with a previous production) the previous version
keeps scoring in shadow; each run is one look (``watch_checked``) of a one-sided
group-sequential test (:mod:`model.live.sequential`) of "the new production is worse than the
previous by more than ``watch_margin``" at level ``watch_alpha``, spent over the labelled rows
up to ``watch_rows``. The watch ends by evidence: ROLLBACK (harm shown: ``registry.rollback`` to
the previous version), or KEEP at ``watch_rows`` labelled rows; ``watch_max_days`` after the
promotion is only a maximum age (that look spends what is left), for a model whose labels
arrive too slowly to ever reach ``watch_rows``. The watch belongs to the promotion event that
started it: any later production change (a manual promotion or rollback) ends it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from model.live import labelled_log as log
from model.live.challenger import clear_stale
from model.live.outcome import (
    WATCHED,
    LiveOutcome,
    LiveSettings,
    newest_state,
    paired_estimate,
    take_look,
)
from model.live.sequential import SequentialPlan, SequentialState
from model.registry import ModelRegistry


@dataclass(frozen=True)
class Watch:
    """The pair a promotion put under watch, and since when."""

    promotion: str  # id of the promotion event
    new: str
    previous: str
    started: dt.datetime
    event: str  # "promoted" or "forced"


def current_watch(events: Sequence[Mapping[str, Any]]) -> tuple[Watch | None, str]:
    """The watch of the newest production change, or None and why there is none."""
    last = None
    for ev in reversed(events):
        if ev.get("event") in ("promoted", "forced", "rolled_back"):
            last = ev
            break
    if last is None:
        return None, "no promotion yet"
    if last.get("event") == "rolled_back":
        return None, f"the last production change was a rollback to {last.get('version')}"
    if not last.get("previous"):
        return None, f"{last.get('version')} was the first production model: no previous one"
    started = pd.Timestamp(last["time"]).to_pydatetime()
    return (
        Watch(str(last["id"]), last["version"], last["previous"], started, last["event"]),
        "",
    )


def check_watch(
    registry: ModelRegistry, rows: pd.DataFrame, cfg: LiveSettings, now: dt.datetime
) -> LiveOutcome:
    """One look of the post-promotion watch on the labelled log ``rows``."""
    events = registry.history()
    watch, why = current_watch(events)
    if watch is None:
        return LiveOutcome("watch", "skipped", None, [f"nothing to watch: {why}"])
    ends = watch.started + dt.timedelta(days=cfg.watch_max_days)
    base: dict[str, Any] = {
        "baseline_version": watch.previous,
        "candidate_version": watch.new,
        "test_id": watch.promotion,
        "started_at": watch.started.isoformat(),
        "window_ends": ends.isoformat(),
    }
    found = newest_state(events, WATCHED, "promotion", watch.promotion)
    if found is not None and found.done:
        return LiveOutcome(
            "watch",
            "ended",
            found.decision,
            [f"the watch of {watch.new} (promoted over {watch.previous}) ended: {found.decision}"],
            state=found.to_dict(),
            **base,
        )
    state = found or SequentialState(
        SequentialPlan(
            kind="watch",
            alpha=cfg.watch_alpha,
            n_max=cfg.watch_rows,
            spending=cfg.spending,  # type: ignore[arg-type]
            min_class_count=cfg.min_class_count,
            threshold=cfg.watch_margin,
        )
    )
    if len(rows):
        rows = rows[rows[log.REQUEST_TIME] >= pd.Timestamp(watch.started)]
    est = paired_estimate(rows, watch.previous, watch.new)
    out = LiveOutcome("watch", "looked", None, [], **base)
    return take_look(out, state, est, final=now >= ends)


def apply_watch(
    registry: ModelRegistry, outcome: LiveOutcome, run_id: str | None = None
) -> str | None:
    """Record the look (``watch_checked``); on ROLLBACK restore the previous production with
    the evidence as the reason. Returns the restored version, or None."""
    if outcome.status != "looked":
        return None
    registry.record(WATCHED, run_id=run_id, **outcome.history_fields())
    if outcome.decision != "ROLLBACK":
        return None
    assert outcome.baseline_version is not None
    restored = registry.rollback(
        outcome.baseline_version,
        reason="post-promotion watch: " + "; ".join(outcome.reasons),
        run_id=run_id,
    )
    clear_stale(
        registry,
        f"production rolled back to {restored}: the challenger was INCONCLUSIVE against "
        f"{outcome.candidate_version}",
        run_id,
    )
    return restored
