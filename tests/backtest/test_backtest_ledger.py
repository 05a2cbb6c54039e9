"""A policy's summary read from its registry's history (model.backtest.ledger), on a registry
whose history is written here event by event: every count and sum checked by hand."""

from __future__ import annotations

import json
from pathlib import Path

from fakes import make_model

from model.backtest.ledger import summarize
from model.registry import ModelRegistry


def _version(registry: ModelRegistry, tmp_path: Path, seed: int, seconds: float) -> str:
    folder = make_model(tmp_path / f"m{seed}", seed=seed)
    meta = json.loads((folder / "model.json").read_text())
    meta["training"] = {"seconds": seconds, "epochs_run": 10 * seed}
    if seed == 3:
        meta["training_cache"] = {"key": "k", "reused": True}
    (folder / "model.json").write_text(json.dumps(meta))
    return registry.register(folder, reason="test")


def test_counts_and_sums_come_from_the_history(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "models")
    first = _version(registry, tmp_path, 1, 100.0)  # the first production model: not counted
    registry.record("compared", version=first, baseline=None, decision="PROMOTE", alpha_spent=0)
    registry.promote(first, "first")
    second = _version(registry, tmp_path, 2, 2.5)
    registry.record("compared", version=second, baseline=first, decision="REJECT", alpha_spent=0.05)
    registry.record("rejected", version=second, reasons=["no gain"])
    third = _version(registry, tmp_path, 3, 4.0)
    registry.record(
        "compared", version=third, baseline=first, decision="INCONCLUSIVE", alpha_spent=0.0076
    )
    registry.record("inconclusive", version=third, reasons=["wide interval"])
    evaluation = {
        "decision": "PROMOTE",
        "source": "challenger-evaluation",
        "baseline_version": first,
    }
    registry.record("challenger_evaluated", version=third, evaluation="e1", alpha_spent=0.001)
    registry.record("challenger_evaluated", version=third, evaluation="e1", alpha_spent=0.004)
    registry.promote(third, "live", comparison={**evaluation, "candidate_version": third})
    registry.record("watch_checked", version=third, promotion="p1", alpha_spent=0.02)
    registry.rollback(reason="watch")
    summary = summarize(registry, [0.9, None, 0.8, 0.7])
    assert summary["first_version"] == first and summary["batches"] == 4
    assert summary["mean_auc"] == round((0.9 + 0.8 + 0.7) / 3, 6) and summary["min_auc"] == 0.7
    assert summary["last_auc"] == 0.7
    assert (summary["trainings"], summary["promotions"], summary["live_promotions"]) == (2, 1, 1)
    assert (summary["rejections"], summary["inconclusive"], summary["rollbacks"]) == (1, 1, 1)
    assert summary["decisions"] == 2  # comparisons against a production model
    assert summary["alpha_spent"] == round(0.05 + 0.0076, 6)
    assert summary["alpha_spent_live"] == 0.004  # the evaluation's α at its last look
    assert summary["alpha_spent_watch"] == 0.02
    assert summary["training_seconds"] == 6.5 and summary["training_epochs"] == 50
    assert summary["cache_reused"] == 1 and summary["first_reused"] is False
