"""Label-free estimates held against the labels that arrive later (CBPE checked by reality).

The drift monitor estimates production's AUC on data without labels (CBPE,
:mod:`model.drift.cbpe`). When that data is the scoring service's prediction log, the estimate
is recorded in the history (``estimated``: the version, the log's days, the numbers). Once
``check_rows`` labelled rows exist for those days, the estimate is checked once
(:func:`model.drift.cbpe.check_estimate` on exactly the labelled rows, with the scores the
version served) and the check recorded (``estimate_checked``); older unchecked estimates of the
same version whose days it covers are superseded, checked by it, never tested again. An estimate
made on a batch that already has labels is checked at once (:mod:`model.cycle.estimate`).

A miss marks production's estimates unreliable until production changes
(:func:`estimate_miss`): the drift report says so, and the ``estimated_auc_drop`` trigger uses
the realised AUC instead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from model.live import labelled_log as log

ESTIMATED = "estimated"
CHECKED = "estimate_checked"
PRODUCTION_CHANGES = ("promoted", "forced", "rolled_back", "recovered")


def day_of(path: str) -> str | None:
    """``date=YYYY-MM-DD`` of a prediction-log day folder (or a file in one), else None."""
    for part in reversed(str(path).replace("\\", "/").split("/")):
        if part.startswith("date="):
            return part
    return None


def pending(events: Sequence[Mapping[str, Any]], version: str) -> list[Mapping[str, Any]]:
    """The ``estimated`` events of ``version`` not yet checked (nor superseded), oldest first."""
    done: set[str] = set()
    for ev in events:
        if ev.get("event") == CHECKED:
            done.add(str(ev.get("estimate")))
            done.update(str(x) for x in ev.get("superseded") or [])
    return [
        ev
        for ev in events
        if ev.get("event") == ESTIMATED and ev.get("version") == version and ev["id"] not in done
    ]


def check_level(k: int, alpha: float = 0.05) -> float:
    """The level of the k-th check of one production's estimates: α·6/(π²k²), so that all its
    checks together mark it unreliable by mistake with probability at most α (the mark stays
    until production changes)."""
    return alpha * 6.0 / (math.pi**2 * k * k)


def _checks(events: Sequence[Mapping[str, Any]], version: str) -> list[Mapping[str, Any]]:
    """The ``estimate_checked`` events of ``version`` since it last became production."""
    out: list[Mapping[str, Any]] = []
    for ev in events:
        if ev.get("event") in PRODUCTION_CHANGES and ev.get("version") == version:
            out = []
        elif ev.get("event") == CHECKED and ev.get("version") == version:
            out.append(ev)
    return out


def checks_so_far(events: Sequence[Mapping[str, Any]], version: str) -> int:
    return len(_checks(events, version))


def checked_batches(events: Sequence[Mapping[str, Any]], version: str) -> set[str]:
    """The labelled batches whose rows a check of ``version``'s estimates already used."""
    return {str(b) for ev in _checks(events, version) for b in ev.get("batches") or []}


def checked_days(events: Sequence[Mapping[str, Any]], version: str) -> set[str]:
    """The prediction-log days whose labelled rows a check of ``version`` already used."""
    return {str(d) for ev in _checks(events, version) for d in ev.get("days") or []}


def estimate_miss(
    events: Sequence[Mapping[str, Any]], version: str | None
) -> Mapping[str, Any] | None:
    """The newest check that labels contradicted an estimate of ``version`` since it last became
    production (its estimates are unreliable until production changes), or None."""
    if version is None:
        return None
    for ev in reversed(events):
        if ev.get("event") in PRODUCTION_CHANGES and ev.get("version") == version:
            return None
        if ev.get("event") == CHECKED and ev.get("version") == version and ev.get("missed"):
            return ev
    return None


@dataclass(frozen=True)
class LabelledScores:
    """The labelled rows of an estimate's days that its version scored, with that score."""

    scores: np.ndarray
    labels: np.ndarray

    @property
    def n(self) -> int:
        return int(self.labels.size)


def labelled_scores(rows: pd.DataFrame, version: str, days: Sequence[str]) -> LabelledScores:
    """From the labelled log ``rows`` (:func:`labelled_log.labelled_rows`): the rows requested on
    ``days`` that ``version`` scored (served or in shadow), with its score and the label."""
    if rows.empty:
        return LabelledScores(np.empty(0), np.empty(0, np.int8))
    stamp = pd.to_datetime(rows[log.REQUEST_TIME], utc=True)
    on_days = stamp.dt.strftime("date=%Y-%m-%d").isin(list(days))
    scores = log.score_of(rows, version)
    keep = on_days & scores.notna()
    return LabelledScores(
        scores[keep].to_numpy(float), rows.loc[keep, log.LABEL].to_numpy().astype(np.int8)
    )


def superseded(waiting: Sequence[Mapping[str, Any]], checked: Mapping[str, Any]) -> list[str]:
    """The other pending estimates whose days the checked one covers: checked by it."""
    days = set(checked.get("days") or [])
    return [
        str(ev["id"])
        for ev in waiting
        if ev["id"] != checked["id"] and set(ev.get("days") or []) <= days
    ]
