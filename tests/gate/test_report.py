"""Reports: the lab's text layout, the JSON schema, Markdown, self-contained HTML."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from model.gate import report
from model.gate.comparator import ComparisonResult, ModelComparator, ModelInfo


def scores(seed: int, n: int, mu_b: float, mu_c: float) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    y = np.r_[np.ones(n // 2, int), np.zeros(n - n // 2, int)]
    noise = rng.multivariate_normal([0, 0], [[1, 0.5], [0.5, 1]], size=n)
    sb = 1 / (1 + np.exp(-(mu_b * y + noise[:, 0] - mu_b / 2)))
    sc = 1 / (1 + np.exp(-(mu_c * y + noise[:, 1] - mu_c / 2)))
    return y, sb, sc


@pytest.fixture(scope="module")
def result() -> ComparisonResult:
    y, sb, sc = scores(0, 2000, 0.8, 1.4)
    gate = ModelComparator(n_bootstrap=300, random_state=9, guardrails={"recall": 0.05})
    return gate.compare_scores(
        y,
        sb,
        sc,
        baseline_info=ModelInfo("v0001", "/m/v0001", "a" * 64),
        candidate_info=ModelInfo("v0002", "/m/v0002", "b" * 64, 0.5),
    )


def test_text_report_has_the_labs_layout(result: ComparisonResult) -> None:
    text = report.to_text(result)
    lines = text.splitlines()
    auc = result.metrics["auc"]
    assert auc.baseline is not None and auc.improvement is not None
    assert lines[:4] == ["=" * 60, "MODEL COMPARISON RESULTS", "=" * 60, "Primary Metric: AUC"]
    assert lines[4] == f"Baseline: {auc.baseline:.4f}"
    assert lines[5] == f"New Model: {auc.candidate:.4f}"
    rel = 100 * auc.improvement / auc.baseline
    assert lines[6] == f"Improvement: {auc.improvement:+.4f} ({rel:+.2f}%)"
    assert lines[7] == "" and lines[8] == "All Metrics:"
    acc = result.metrics["accuracy"]
    assert acc.baseline is not None and acc.relative_change is not None
    assert lines[9] == (
        f"  accuracy: {acc.baseline:.4f} → {acc.candidate:.4f} ({100 * acc.relative_change:+.2f}%)"
    )
    factors_at = lines.index("Decision Factors:")
    assert lines[factors_at + 1].startswith("  ✓ Improvement exceeds threshold (")
    assert re.match(r"  ✓ Statistically significant \(p = \S+ < 0\.05", lines[factors_at + 2])
    assert lines[-4] == "=" * 60
    assert lines[-3] == "PROMOTION DECISION: PROMOTE"
    assert lines[-2].startswith("Reason: AUC changed by")
    assert lines[-1] == "=" * 60


def test_json_report_follows_the_schema(result: ComparisonResult, tmp_path: Path) -> None:
    path = report.write_json(result, tmp_path / "deep" / "comparison.json")
    data = json.loads(path.read_text())
    for key in (
        "primary_metric", "threshold", "threshold_type", "baseline", "candidate", "metrics",
        "tests", "guardrails", "decision", "reasons", "n_test", "n_bootstrap", "seed",
        "created_at", "improvements", "minimum_detectable_effect",
    ):  # fmt: skip
        assert key in data, key
    assert data["baseline"]["sha256"] == "a" * 64 and data["candidate"]["version"] == "v0002"
    for row in data["metrics"].values():
        assert set(row) >= {
            "baseline", "candidate", "absolute_change", "relative_change", "higher_is_better",
            "ci_low", "ci_high", "p_value",
        }  # fmt: skip
        assert row["ci_low"] <= row["ci_high"]
    assert data["metrics"]["log_loss"]["higher_is_better"] is False
    assert set(data["tests"]) == {"delong", "bootstrap", "mcnemar"}
    assert data["tests"]["delong"]["alternative"] == "greater"
    assert data["guardrails"][0]["metric"] == "recall"
    assert data["n_test"] == 2000 and data["n_bootstrap"] == 300 and data["seed"] == 9
    # reports can be rebuilt from the JSON alone
    assert report.to_text(data) == report.to_text(result)


def test_markdown_summary(result: ComparisonResult) -> None:
    md = report.to_markdown(result)
    assert md.startswith("## Model comparison: **PROMOTE**")
    assert "| auc |" in md and "| log_loss |" in md
    assert "Minimum detectable effect" in md
    # Lower-is-better rows show the raw change and the (sign-flipped) improvement side by
    # side, so the CI next to them reads as the improvement's, not the change's.
    ll = result.metrics["log_loss"]
    assert ll.absolute_change is not None and ll.improvement is not None
    row = next(line for line in md.splitlines() if line.startswith("| log_loss |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[3] == f"{ll.absolute_change:+.4f}" and cells[4] == f"{ll.improvement:+.4f}"
    assert cells[3] == f"{-ll.improvement:+.4f}"
    assert cells[5] == f"[{ll.ci_low:+.4f}, {ll.ci_high:+.4f}]"


def test_html_is_self_contained(result: ComparisonResult, tmp_path: Path) -> None:
    path = report.write_html(result, tmp_path / "report.html")
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "http://" not in page and "https://" not in page and "src=" not in page
    assert page.count("<svg") == 3  # ROC, precision-recall, bootstrap histogram
    assert page.count("<polyline") == 4  # both models on both curves
    assert ">threshold<" in page and "PROMOTE" in page
    assert "v0002" in page and "average_precision" in page


def test_html_escapes_text() -> None:
    y, sb, sc = scores(1, 400, 1.0, 1.2)
    r = ModelComparator(n_bootstrap=50).compare_scores(
        y, sb, sc, candidate_info=ModelInfo("<script>alert(1)</script>", None, None)
    )
    page = report.to_html(r)
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_reports_without_a_baseline() -> None:
    y, _, sc = scores(2, 400, 1.0, 1.0)
    r = ModelComparator().compare_scores(y, None, sc)
    text = report.to_text(r)
    assert "Baseline: none (no production model)" in text
    assert "PROMOTION DECISION: PROMOTE" in text
    assert "  auc: " in text
    page = report.to_html(r)
    assert page.count("<polyline") == 2
    assert "none (no production model)" in page and ">None<" not in page
    json.dumps(report.to_json(r), allow_nan=False)
    assert report.to_markdown(r).startswith("## Model comparison: **PROMOTE**")
