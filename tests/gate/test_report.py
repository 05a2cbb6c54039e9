"""Reports: the lab's text layout, the JSON schema, Markdown, self-contained HTML."""

from __future__ import annotations

import html
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
    gate = ModelComparator(
        improvement_threshold=0.02, n_bootstrap=300, random_state=9, guardrails={"recall": 0.05}
    )
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
    assert lines[7].startswith("Primary test: DeLong: one-sided p = ")
    assert lines[8] == "" and lines[9] == "All Metrics:"
    acc = result.metrics["accuracy"]
    assert acc.baseline is not None and acc.relative_change is not None
    assert lines[10] == (
        f"  accuracy: {acc.baseline:.4f} → {acc.candidate:.4f} ({100 * acc.relative_change:+.2f}%)"
    )
    factors_at = lines.index("Decision Factors:")
    assert (
        lines[factors_at + 1]
        == "  ✓ Evidence: 1000 positives, 1000 negatives (at least 100 each, holdout rows)"
    )
    assert re.match(r"  ✓ Lower bound \+0\.\d{4} > threshold 0\.0200 \(", lines[factors_at + 2])
    assert lines[-4] == "=" * 60
    assert lines[-3] == "PROMOTION DECISION: PROMOTE"
    assert lines[-2].startswith("Reason: AUC gain +")
    assert lines[-1] == "=" * 60


PRIMARY = re.compile(
    r"one-sided p = (?P<p>\S+) \(H0: gain <= (?P<t>\S+)\), (?P<conf>\S+)% interval "
    r"\[(?P<lo>\S+), (?P<hi>\S+)\], lower bound (?P<lb>\S+), level = (?P<a>\S+) \("
)


@pytest.mark.parametrize("decision", ["PROMOTE", "INCONCLUSIVE", "REJECT"])
def test_every_report_prints_the_decisions_own_numbers(decision: str, tmp_path: Path) -> None:
    """The primary line of the text, Markdown and HTML reports parses back to the JSON's
    decision numbers (p, interval, bound, level), whatever the outcome."""
    mu_c = {"PROMOTE": 1.4, "INCONCLUSIVE": 0.86, "REJECT": 0.55}[decision]
    y, sb, sc = scores(3, 2000, 0.8, mu_c)
    result = ModelComparator(n_bootstrap=100, holdout_uses=2).compare_scores(y, sb, sc)
    assert result.decision == decision, result.reasons
    data = json.loads(report.write_json(result, tmp_path / "c.json").read_text())
    primary = data["primary"]
    assert primary["p_value"] == result.p_value and primary["lower_bound"] == result.lower_bound
    assert data["metrics"]["auc"]["ci_low"] == primary["lower_bound"]  # the table agrees
    page = html.unescape(report.to_html(result))
    for text in (report.to_text(result), report.to_markdown(result), page):
        m = PRIMARY.search(text)
        assert m, text[:400]
        assert float(m["p"]) == pytest.approx(primary["p_value"], rel=1e-5, abs=1e-12)
        assert float(m["lo"]) == pytest.approx(primary["lower_bound"], abs=1e-6)
        assert float(m["lb"]) == pytest.approx(primary["lower_bound"], abs=1e-6)
        assert float(m["hi"]) == pytest.approx(primary["upper_bound"], abs=1e-6)
        assert float(m["a"]) == pytest.approx(data["alpha_k"], rel=1e-5)
        assert float(m["conf"]) == pytest.approx(100 * (1 - 2 * data["alpha_k"]), abs=0.01)
        assert float(m["t"]) == pytest.approx(data["threshold_absolute"])


def test_json_report_follows_the_schema(result: ComparisonResult, tmp_path: Path) -> None:
    path = report.write_json(result, tmp_path / "deep" / "comparison.json")
    data = json.loads(path.read_text())
    for key in (
        "primary_metric", "threshold", "threshold_type", "baseline", "candidate", "metrics",
        "tests", "guardrails", "decision", "reasons", "n_test", "n_bootstrap", "seed",
        "created_at", "improvements", "primary", "holdout_uses", "alpha_k", "populations",
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
    assert "**Primary test**: DeLong: one-sided p = " in md
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
    assert page.count("<svg") == 4  # ROC, precision-recall, reliability, bootstrap histogram
    assert page.count('<path class="curve"') == 6  # both models on three charts
    assert ">threshold<" in page and "PROMOTE" in page
    assert "v0002" in page and "average_precision" in page
    assert "&lt; 0.001" in page and "0.0010" not in page  # p below the floor, as "< 0.001"


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
    assert page.count('<path class="curve"') == 3  # the candidate's ROC, PR and reliability
    assert 'id="first-version"' in page and ">n/a<" not in page and "null" not in page
    assert "none (no production model)" in page and ">None<" not in page
    json.dumps(report.to_json(r), allow_nan=False)
    assert report.to_markdown(r).startswith("## Model comparison: **PROMOTE**")


def _cells(page: str, metric: str) -> list[str]:
    row = re.search(rf'<tr class="([a-z]*)"><td>{metric}</td>(.*?)</tr>', page)
    assert row is not None, metric
    return [row.group(1), *re.findall(r"<td[^>]*>(.*?)</td>", row.group(2))]


def test_html_shows_calibration_confusion_and_flags_regressions() -> None:
    rng = np.random.default_rng(3)
    n = 4_000
    y = rng.binomial(1, 0.4, n)
    base = 1 / (1 + np.exp(-(2.0 * y - 1 + rng.normal(size=n))))
    cand = np.clip(base * 0.5, 0, 1)  # same ranking, badly calibrated: recall collapses
    r = ModelComparator(n_bootstrap=200).compare_scores(y, base, cand)
    page = report.to_html(r)
    cls, *cells = _cells(page, "recall")
    assert cls == "regression" and "worse" in cells[-1]  # never shown as an improvement
    assert cells[3].startswith("-")  # the improvement column is negative
    assert 'data-chart="reliability"' in page and "observed positive rate" in page
    assert "AUC 0." in page and "AP 0." in page  # in the legends
    assert page.count("<table class=confusion>") == 2
    # the confusion matrix is the one at the threshold (independent count)
    tp = int(np.sum((cand >= 0.5) & (y == 1)))
    assert f"<td class=n>{tp:,}</td>" in page
    assert "-0.0000" not in page and "<pre>" not in page  # the tests are a table, not JSON


def test_identical_candidate_gets_a_banner() -> None:
    y, sb, _ = scores(4, 600, 1.0, 1.0)
    page = report.to_html(ModelComparator(n_bootstrap=100).compare_scores(y, sb, sb.copy()))
    assert 'id="identical"' in page and "exactly as production" in page
    other = report.to_html(ModelComparator(n_bootstrap=100).compare_scores(y, sb, sb * 0.99))
    assert 'id="identical"' not in other


def test_threshold_label_is_anchored_inside_the_chart() -> None:
    from model.gate.svg import _svg_histogram

    svg = _svg_histogram([0.1, 0.2, 0.3, 0.35], threshold=0.34, observed=0.33, xlabel="d")
    label = re.search(
        r'<text class="chart-label" x="([0-9.]+)"[^>]*text-anchor="(\w+)"[^>]*>'
        r"threshold<",
        svg,
    )
    assert label is not None and label.group(2) == "end"  # near the right edge: grows left
