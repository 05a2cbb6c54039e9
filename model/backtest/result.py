"""The backtest's result for machines (``backtest.json``): the timeline, each policy's steps and
summary, and each policy held against ``retrain always`` (the reference when it ran).

Format (``format_version`` 1)::

    {"format_version", "model_name", "created_at",
     "timeline": {"source", "time_column", "period", "start", "base_rows", "target_column",
                  "batches": [{"name", "starts", "arrives", "rows", "positives", ...}]},
     "policies": [{"name", "kind", "slug", "overrides", "description",
                   "first": {the first cycle}, "steps": [{"batch", "arrives", "auc",
                   "served", "live", "drift", "cycle"}], "summary": {model.backtest.ledger}}],
     "reference": "retrain always" | null,
     "versus_reference": {policy: {"mean_auc_gap", "max_auc_gap", "trainings_saved"}},
     "compute": {"wall_seconds", "workers", "trainings_run", "trainings_reused"}}

``mean_auc_gap`` is the reference's mean prequential AUC minus the policy's (positive: the
policy did worse); ``max_auc_gap`` the largest such gap on one batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from model import clock
from model.backtest.policies import ALWAYS, LABELS

FORMAT_VERSION = 1


def _gaps(policy: Mapping[str, Any], reference: Mapping[str, Any]) -> dict[str, Any]:
    ours = [s.get("auc") for s in policy["steps"]]
    theirs = [s.get("auc") for s in reference["steps"]]
    diffs = [t - o for o, t in zip(ours, theirs, strict=True) if o is not None and t is not None]
    mine, ref = policy["summary"], reference["summary"]
    mean_gap = None
    if mine.get("mean_auc") is not None and ref.get("mean_auc") is not None:
        mean_gap = round(ref["mean_auc"] - mine["mean_auc"], 6)
    return {
        "mean_auc_gap": mean_gap,
        "max_auc_gap": round(max(diffs), 6) if diffs else None,
        "trainings_saved": int(ref["trainings"]) - int(mine["trainings"]),
    }


def assemble(
    model_name: str,
    timeline: Mapping[str, Any],
    policies: Sequence[Mapping[str, Any]],
    wall_seconds: float,
    workers: int,
) -> dict[str, Any]:
    """The result document from the timeline and each policy's replay."""
    reference = next((p for p in policies if p["kind"] == ALWAYS), None)
    versus = (
        {p["name"]: _gaps(p, reference) for p in policies if p is not reference}
        if reference is not None
        else {}
    )
    trained = sum(1 + int(p["summary"]["trainings"]) for p in policies)
    reused = sum(
        int(p["summary"]["cache_reused"]) + bool(p["summary"].get("first_reused")) for p in policies
    )
    return {
        "format_version": FORMAT_VERSION,
        "model_name": model_name,
        "created_at": clock.iso_now("seconds"),
        "timeline": dict(timeline),
        "policies": [dict(p) for p in policies],
        "reference": reference["name"] if reference is not None else None,
        "versus_reference": versus,
        "compute": {
            "wall_seconds": round(wall_seconds, 1),
            "workers": workers,
            "trainings_run": trained - reused,
            "trainings_reused": reused,
        },
    }


def policy(result: Mapping[str, Any], kind_or_name: str) -> Mapping[str, Any]:
    """The policy of that kind (``configured``, ``never``, ``always``) or name."""
    for p in result["policies"]:
        if kind_or_name in (p["kind"], p["name"]):
            return p  # type: ignore[no-any-return]
    raise KeyError(kind_or_name)


def summary_rows(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per policy: the numbers the report's table and the artifact show."""
    rows = []
    for p in result["policies"]:
        s = p["summary"]
        gap = (result.get("versus_reference") or {}).get(p["name"]) or {}
        rows.append(
            {
                "policy": p["name"],
                "mean_auc": s["mean_auc"],
                "min_auc": s["min_auc"],
                "auc_gap_to_reference": gap.get("mean_auc_gap"),
                "trainings": s["trainings"],
                "promotions": s["promotions"],
                "rejections": s["rejections"],
                "inconclusive": s["inconclusive"],
                "rollbacks": s["rollbacks"],
                "training_seconds": s["training_seconds"],
                "alpha_spent": s["alpha_spent"],
                "alpha_spent_live": s["alpha_spent_live"],
            }
        )
    return rows


def headline(result: Mapping[str, Any]) -> str:
    """One sentence: how the configured policy (or the first one) did against the reference."""
    reference = result.get("reference")
    ref = policy(result, reference) if reference else None
    for p in result["policies"]:
        if p["kind"] == ALWAYS:
            continue
        s = p["summary"]
        if ref is None or s.get("mean_auc") is None:
            continue
        gap = (result.get("versus_reference") or {}).get(p["name"]) or {}
        return (
            f"{p['name']}: mean AUC {s['mean_auc']:.4f} over {s['batches']} batches, "
            f"{gap['mean_auc_gap']:+.4f} behind '{LABELS[ALWAYS]}' "
            f"({ref['summary']['mean_auc']:.4f}), with {s['trainings']} training(s) against "
            f"{ref['summary']['trainings']}"
        )
    return f"{len(result['policies'])} policies over {len(result['timeline']['batches'])} batches"
