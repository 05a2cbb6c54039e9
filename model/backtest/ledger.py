"""What a policy did over the replay, read from its scratch registry's history (the record the
cycle code keeps, not the backtest's own bookkeeping) and its batches' AUCs.

- trainings: ``registered`` versions after the first production model, with what they cost
  (``training.seconds`` and epochs in their ``model.json``: the original training's, also
  for a candidate the training cache gave a second policy);
- promotions (``promoted`` or ``forced`` over a previous production; those the challenger's
  live evaluation made are also counted apart), rejections, inconclusive decisions and
  rollbacks;
- α spent: the gate's, the sum of ``alpha_spent`` of its ``compared`` events (evidence by
  rows, :mod:`model.gate.evidence`), and the live tests' (each challenger evaluation's and
  each watch's α spent at its last look);
- the AUC series: production's prequential AUC on each batch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from model.live.outcome import EVALUATED, WATCHED
from model.registry import ModelRegistry
from model.training.cache import reused as reused_candidate

PROMOTIONS = ("promoted", "forced")


def _last_alpha(events: Sequence[Mapping[str, Any]], kind: str, key: str) -> float:
    """The α spent by each test of ``kind`` at its last look, summed over the tests."""
    spent: dict[str, float] = {}
    for ev in events:
        if ev.get("event") == kind and ev.get(key):
            spent[str(ev[key])] = float(ev.get("alpha_spent") or 0.0)
    return sum(spent.values())


def training_cost(registry: ModelRegistry, versions: Sequence[str]) -> dict[str, Any]:
    """Seconds and epochs the trainings of ``versions`` took (from their model.json: the
    original training's for a candidate the training cache gave this policy), and how many of
    them the cache gave (``cache_reused``: this process did not train them)."""
    seconds, epochs, reused = 0.0, 0, 0
    for version in versions:
        meta = registry.metadata(version)
        training = meta.get("training") or {}
        seconds += float(training.get("seconds") or 0.0)
        epochs += int(training.get("epochs_run") or 0)
        reused += reused_candidate(meta)
    return {
        "training_seconds": round(seconds, 3),
        "training_epochs": epochs,
        "cache_reused": reused,
    }


def summarize(registry: ModelRegistry, aucs: Sequence[float | None]) -> dict[str, Any]:
    """The policy's summary numbers from its registry's history and its batches' AUCs."""
    events = registry.history()
    registered = [str(ev["version"]) for ev in events if ev.get("event") == "registered"]
    first = registered[:1]  # the first production model, trained on the start window
    trained = registered[1:]
    changes = [ev for ev in events if ev.get("event") in PROMOTIONS and ev.get("previous")]
    live = [
        ev
        for ev in changes
        if ((ev.get("comparison") or {}).get("source")) == "challenger-evaluation"
    ]
    compared = [ev for ev in events if ev.get("event") == "compared" and ev.get("baseline")]
    count = {name: sum(1 for ev in events if ev.get("event") == name) for name in EVENT_COUNTS}
    known = [a for a in aucs if a is not None and math.isfinite(a)]
    return {
        "batches": len(aucs),
        "mean_auc": round(sum(known) / len(known), 6) if known else None,
        "min_auc": round(min(known), 6) if known else None,
        "last_auc": round(known[-1], 6) if known else None,
        "first_version": first[0] if first else None,
        "trainings": len(trained),
        "promotions": len(changes),
        "live_promotions": len(live),
        "forced_promotions": sum(1 for ev in changes if ev.get("event") == "forced"),
        "rejections": count["rejected"],
        "inconclusive": count["inconclusive"],
        "rollbacks": count["rolled_back"],
        "decisions": len(compared),
        "alpha_spent": round(sum(float(ev.get("alpha_spent") or 0.0) for ev in compared), 6),
        "alpha_spent_live": round(_last_alpha(events, EVALUATED, "evaluation"), 6),
        "alpha_spent_watch": round(_last_alpha(events, WATCHED, "promotion"), 6),
        **training_cost(registry, trained),
        "first_reused": bool(first) and reused_candidate(registry.metadata(first[0])),
    }


EVENT_COUNTS = ("rejected", "inconclusive", "rolled_back")
