"""The leaderboard: every retained version re-scored on one current holdout, side by side.

A version's AUC "as measured when it was registered" comes from the holdout of its own cycle;
holdouts grow as batches arrive, so those numbers are not comparable across versions (an old
version measured on an easier, older holdout can look better than its successor). Once per
cycle, :func:`leaderboard` scores the retained versions — production, the previous production,
the challenger and the newest few candidates — on the *current* prepared test split, and gives
each one's AUC there, its difference from production with a DeLong interval and p (paired, same
rows), its status, the trigger that trained it, when, and its flow run. The numbers as
registered stay, labelled with their holdout's hash. Numbers are rounded to 4 digits.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from model.data import encode_target, load_manifest, load_split
from model.errors import RetrainError
from model.gate.stats import delong_test
from model.registry import ModelRegistry

DECISIONS = {"promoted": "promoted", "forced": "promoted", "rejected": "rejected"}
MAX_CANDIDATES = 5


def _r(x: Any) -> float | None:
    return None if x is None or not math.isfinite(float(x)) else round(float(x), 4)


def _statuses(registry: ModelRegistry) -> dict[str, str]:
    """Each version's status: production, previous, challenger, or its last decision."""
    status: dict[str, str] = {}
    for ev in registry.history():
        version, kind = ev.get("version"), ev.get("event")
        if isinstance(version, str) and kind in ("rejected", "inconclusive", "failed"):
            status[version] = str(kind)
    prod = registry.production()
    previous = registry.previous_production()
    challenger = registry.challenger()
    for info in registry.versions():
        if info.status == "retired":
            status[info.version] = "retired"
    if previous:
        status[previous] = "previous"
    if challenger is not None:
        status[challenger.version] = "challenger"
    if prod is not None:
        status[prod.version] = "production"
    return status


def retained_versions(registry: ModelRegistry, max_candidates: int = MAX_CANDIDATES) -> list[str]:
    """Production, previous, challenger and the newest ``max_candidates`` others, newest first."""
    status = _statuses(registry)
    newest_first = [v.version for v in reversed(registry.versions()) if v.valid]
    keep = [v for v in newest_first if status.get(v) in ("production", "previous", "challenger")]
    others = [v for v in newest_first if v not in keep][:max_candidates]
    return [v for v in newest_first if v in keep or v in others]


def _validation_auc(meta: dict[str, Any]) -> Any:
    return ((meta.get("metrics") or {}).get("validation") or {}).get("auc")


def flow_run_link(run_id: str | None, ui_url: str | None) -> str | None:
    if not run_id:
        return None
    return f"{ui_url.rstrip('/')}/runs/flow-run/{run_id}" if ui_url else run_id


def leaderboard(
    registry: ModelRegistry,
    holdout_dir: str | Path | None,
    *,
    ui_url: str | None = None,
    max_candidates: int = MAX_CANDIDATES,
) -> list[dict[str, Any]]:
    """One row per retained version (see the module). Without a holdout (``holdout_dir`` None
    or unreadable), only the numbers as registered."""
    from model.training.artifact import load_model

    status = _statuses(registry)
    versions = retained_versions(registry, max_candidates)
    compared = {
        ev["version"]: ev
        for ev in registry.history()
        if ev.get("event") == "compared" and isinstance(ev.get("version"), str)
    }
    y: np.ndarray | None = None
    test = None
    holdout_hash = None
    if holdout_dir is not None:
        try:
            manifest = load_manifest(holdout_dir)
            test = load_split(manifest, "test")
            y = encode_target(test[manifest.spec.target], str(holdout_dir))
            holdout_hash = manifest.sha256[:16]
        except (OSError, RetrainError):
            test, y = None, None
    scores: dict[str, np.ndarray] = {}
    if test is not None:
        for version in versions:
            try:
                scores[version] = load_model(registry.version_path(version)).predict_proba(test)
            except (OSError, RetrainError, KeyError, ValueError):
                continue  # a version that cannot score these columns: no current numbers
    prod = registry.production()
    base = scores.get(prod.version) if prod is not None else None
    rows = []
    for version in versions:
        meta = registry.metadata(version)
        reason = meta.get("training_reason") or {}
        ev = compared.get(version, {})
        registered_auc = ((ev.get("metrics") or {}).get("auc") or {}).get("candidate")
        registered_holdout = ev.get("holdout")
        row: dict[str, Any] = {
            "version": version,
            "status": status.get(version, "candidate"),
            "trigger": reason.get("trigger") if isinstance(reason, dict) else None,
            "auc": None,
            "delta_vs_production": None,
            "delta_interval": None,
            "p": None,
            "created": meta.get("trained_at"),
            "flow_run": flow_run_link(
                reason.get("flow_run_id") if isinstance(reason, dict) else None, ui_url
            ),
            "auc_as_registered": _r(registered_auc),
            "registered_on_holdout": registered_holdout,
            "val_auc_as_registered": _r(_validation_auc(meta)),
            "holdout": holdout_hash,
        }
        s = scores.get(version)
        if s is not None and y is not None and 0 < int(y.sum()) < y.size:
            if base is not None and prod is not None and version != prod.version:
                d = delong_test(y, base, s, alternative="two-sided")
                row["auc"] = _r(d.auc_candidate)
                row["delta_vs_production"] = _r(d.diff)
                row["delta_interval"] = f"[{d.ci_low:+.4f}, {d.ci_high:+.4f}]"
                row["p"] = float(f"{d.p_value:.3g}")
            else:
                from sklearn.metrics import roc_auc_score

                row["auc"] = _r(roc_auc_score(y, s))
                if prod is not None and version == prod.version:
                    row["delta_vs_production"] = 0.0
        rows.append(row)
    return rows
