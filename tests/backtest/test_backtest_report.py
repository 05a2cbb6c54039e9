"""The backtest's result document and its reports, from a made-up replay: the JSON's
comparisons against 'retrain always', the chart's lines and marks, the tables."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from model.backtest.chart import step_marks
from model.backtest.report import to_html, to_markdown, write_reports
from model.backtest.result import assemble, headline, policy, summary_rows

BATCHES = [
    {
        "name": f"date=2024-0{m}-01",
        "starts": f"2024-0{m}-01T00:00:00+00:00",
        "arrives": f"2024-0{m + 1}-01T00:00:00+00:00",
        "rows": 100,
        "positives": 30,
        "path": "-",
        "times_path": "-",
    }
    for m in range(1, 5)
]
TIMELINE = {
    "source": "history.parquet",
    "time_column": "when",
    "period": "month",
    "start": "2024-01-01T00:00:00+00:00",
    "base_path": "-",
    "base_rows": 1000,
    "target_column": "y",
    "batches": BATCHES,
}


def _step(i: int, auc: float, status: str | None, **extra: Any) -> dict[str, Any]:
    cycle = None if status is None else {"status": status, "trigger": "drift", "candidate": "v9"}
    if cycle is not None:
        cycle.update(extra.pop("cycle", {}))
    drift = {
        "status": "ok",
        "dataset_drift": i >= 2,
        "drift_share": 0.1 * i,
        "drifted_features": ["income"] if i >= 2 else [],
    }
    return {
        "batch": BATCHES[i]["name"],
        "auc": auc,
        "live": extra.get("live", {}),
        "drift": drift,
        "cycle": cycle,
    }


def _summary(aucs: list[float], trainings: int, **counts: Any) -> dict[str, Any]:
    base = {
        "batches": len(aucs),
        "mean_auc": sum(aucs) / len(aucs),
        "min_auc": min(aucs),
        "trainings": trainings,
        "promotions": 0,
        "rejections": 0,
        "inconclusive": 0,
        "rollbacks": 0,
        "training_seconds": 1.5 * trainings,
        "alpha_spent": 0.05 * trainings,
        "alpha_spent_live": 0.0,
        "cache_reused": 0,
        "first_reused": False,
    }
    return base | counts


def _replay() -> list[dict[str, Any]]:
    configured = [0.90, 0.80, 0.85, 0.86]
    never = [0.90, 0.80, 0.70, 0.65]
    always = [0.90, 0.81, 0.86, 0.88]
    live = {
        "challenger": {"status": "looked", "decision": "PROMOTE", "candidate_version": "v3"},
        "watch": {"status": "looked", "decision": "ROLLBACK", "restored": "v1"},
    }
    return [
        {
            "name": "configured",
            "kind": "configured",
            "slug": "configured",
            "overrides": {},
            "description": "d",
            "steps": [
                _step(0, configured[0], "skipped"),
                _step(1, configured[1], "inconclusive"),
                _step(2, configured[2], "promoted", live=live),
                _step(3, configured[3], "rejected"),
            ],
            "summary": _summary(
                configured, 3, promotions=2, rejections=1, inconclusive=1, rollbacks=1
            ),
        },
        {
            "name": "never retrain",
            "kind": "never",
            "slug": "never",
            "overrides": {},
            "description": "d",
            "steps": [_step(i, a, None) for i, a in enumerate(never)],
            "summary": _summary(never, 0),
        },
        {
            "name": "retrain always",
            "kind": "always",
            "slug": "always",
            "overrides": {},
            "description": "d",
            "steps": [
                _step(i, a, "rejected", cycle={"forced": True}) for i, a in enumerate(always)
            ],
            "summary": _summary(always, 4, promotions=4),
        },
    ]


def test_versus_reference_is_computed_from_the_series() -> None:
    result = assemble("demo", TIMELINE, _replay(), 12.3, 1)
    assert result["reference"] == "retrain always"
    gaps = result["versus_reference"]
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    assert (
        abs(
            gaps["configured"]["mean_auc_gap"]
            - (mean([0.9, 0.81, 0.86, 0.88]) - mean([0.9, 0.8, 0.85, 0.86]))
        )
        < 1e-9
    )
    assert abs(gaps["configured"]["max_auc_gap"] - 0.02) < 1e-9
    assert gaps["configured"]["trainings_saved"] == 1
    assert abs(gaps["never retrain"]["max_auc_gap"] - 0.23) < 1e-9
    assert policy(result, "never")["name"] == "never retrain"
    assert [r["policy"] for r in summary_rows(result)] == [
        "configured",
        "never retrain",
        "retrain always",
    ]
    assert headline(result).startswith("configured: mean AUC 0.8525 over 4 batches, +0.0100 behind")
    assert result["compute"]["trainings_run"] == (1 + 3) + (1 + 0) + (1 + 4)


def test_marks_say_what_was_decided() -> None:
    steps = _replay()[0]["steps"]
    assert step_marks(steps[0]) == []  # skipped: no decision
    assert [k for k, _ in step_marks(steps[1])] == ["inconclusive"]
    assert [k for k, _ in step_marks(steps[2])] == ["live-promoted", "rolled-back", "promoted"]
    assert [k for k, _ in step_marks(_replay()[2]["steps"][0])] == ["forced"]


def test_html_has_a_line_per_policy_marks_and_tables(tmp_path: Path) -> None:
    result = assemble("demo", TIMELINE, _replay(), 12.3, 1)
    page = to_html(result)
    lines = re.findall(r'<path class="policy-line" data-policy="([^"]+)"', page)
    assert lines == ["configured", "never retrain", "retrain always"]
    kinds = re.findall(r'class="marker" data-kind="([a-z-]+)"', page)
    assert sorted(kinds) == sorted(
        ["inconclusive", "live-promoted", "rolled-back", "promoted", "rejected"] + ["forced"] * 4
    )
    assert "http://" not in page.replace("http://www.w3.org", "") and "<script" not in page
    for table in ("summary", "decisions", "drift"):
        assert f'<table id="{table}" class="wrap">' in page
    assert page.count("<tr>") == 1 + 3 + 2 * (1 + len(BATCHES))
    paths = write_reports(result, tmp_path)
    assert json.loads(paths["json"].read_text()) == json.loads(json.dumps(result))
    assert paths["html"].read_text() == page
    assert "| configured | 0.8525 |" in to_markdown(result)
