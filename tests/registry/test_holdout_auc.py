"""Production's holdout AUC interval is recorded at every change of production."""

from __future__ import annotations

import json
from pathlib import Path

from fakes import make_model

from model.registry import ModelRegistry

AUC1 = {"auc": 0.83, "se": 0.01, "ci_low": 0.81, "ci_high": 0.85}
AUC2 = {"auc": 0.86, "se": 0.01, "ci_low": 0.84, "ci_high": 0.88}


def test_each_promotion_and_rollback_records_the_holdout_auc_interval(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path / "models")
    v1, v2, v3 = (reg.register(make_model(tmp_path / f"m{i}", seed=i)) for i in range(3))
    # the first model's comparison (no baseline) passed in, as the retraining flow does
    reg.promote(v1, None, comparison={"decision": "PROMOTE", "candidate_auc": AUC1})
    assert reg.last_event("promoted", version=v1)["holdout_auc"] == AUC1  # type: ignore[index]
    assert reg.holdout_auc(v1) == AUC1
    # a recorded comparison (retrain compare, then retrain promote)
    reg.record("compared", version=v2, baseline=v1, decision="PROMOTE", candidate_auc=AUC2)
    reg.promote(v2, None)
    assert reg.holdout_auc(v2) == AUC2
    # never compared: forced, nothing to record, and it says so by its absence
    reg.promote(v3, "hotfix", force=True)
    assert "holdout_auc" not in reg.last_event("forced", version=v3)  # type: ignore[operator]
    assert reg.holdout_auc(v3) is None
    # a rollback carries the restored version's interval
    reg.rollback(v2)
    assert reg.last_event("rolled_back")["holdout_auc"] == AUC2  # type: ignore[index]
    assert reg.holdout_auc(v2) == AUC2 and reg.holdout_auc(v1) == AUC1


def test_an_older_promotion_with_only_the_comparison_summary_still_counts(
    tmp_path: Path,
) -> None:
    """A promotion event written before ``holdout_auc`` existed: its comparison's
    ``candidate_auc``; one without either has no interval."""
    reg = ModelRegistry(tmp_path / "models")
    v1, v2 = (reg.register(make_model(tmp_path / f"m{i}", seed=i)) for i in range(2))
    old = [
        {"event": "promoted", "version": v1, "comparison": {"candidate_auc": AUC1}},
        {"event": "promoted", "version": v2, "comparison": {"decision": "PROMOTE"}},
    ]
    with reg.history_path.open("a", encoding="utf-8") as f:
        f.writelines(json.dumps(ev) + "\n" for ev in old)
    assert reg.holdout_auc(v1) == AUC1
    assert reg.holdout_auc(v2) is None
