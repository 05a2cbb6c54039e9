"""Both HTML reports, made from a real comparison and a real drift report on the demo data,
opened in headless Chromium; assertions on the rendered DOM and a screenshot.

Skipped, with the reason, only where Chromium is not installed (``.ci/run`` installs Debian's
``chromium`` when it is missing).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from chromium import find_chromium, open_page, png_pixels
from fakes import FAST_BACKTEST_POLICY

from model.data import FeatureSpec
from model.data.demo import DEMO_NUMERIC, make_customers
from model.drift import detect_drift
from model.gate import report
from model.gate.comparator import ModelComparator
from model.training import TrainParams, train

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        find_chromium() is None,
        reason="Chromium is not installed (apt-get install chromium; .ci/run does it)",
    ),
]

SPEC = FeatureSpec(numeric=list(DEMO_NUMERIC))

OVERFLOW_JS = """
(() => {
  const bad = [];
  for (const el of document.querySelectorAll('td, th')) {
    if (el.scrollWidth > el.clientWidth + 1) bad.push(el.tagName + ':' + el.textContent);
  }
  for (const t of document.querySelectorAll('svg text')) {
    const r = t.getBoundingClientRect(), s = t.ownerSVGElement.getBoundingClientRect();
    if (r.left < s.left - 1 || r.top < s.top - 1 || r.right > s.right + 1 ||
        r.bottom > s.bottom + 1) bad.push('label:' + t.textContent);
  }
  return bad;
})()
"""


def _not_blank(png: bytes) -> None:
    """Many colours, and a real share of the page not white (text, charts, tables)."""
    rows = png_pixels(png)
    pixels = [p for row in rows[:: max(1, len(rows) // 80)] for p in row[::3]]
    inked = sum(1 for p in pixels if sum(p) < 720) / len(pixels)
    assert len(rows) > 100 and len({*pixels}) > 20 and inked > 0.01, (len({*pixels}), inked)


@pytest.fixture(scope="module")
def comparison_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = make_customers(6_000, seed=21)
    tr, va, te = data.iloc[:4000], data.iloc[4000:5000], data.iloc[5000:]
    weak = train(tr, va, TrainParams(num_epochs=1, batch_size=256, device="cpu"), spec=SPEC)
    strong = train(tr, va, TrainParams(num_epochs=8, batch_size=128, device="cpu"), spec=SPEC)
    result = ModelComparator(n_bootstrap=200).compare(weak.model, strong.model, te)
    return report.write_html(result, tmp_path_factory.mktemp("cmp") / "comparison.html")


@pytest.fixture(scope="module")
def drift_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ref = make_customers(5_000, seed=1)
    cur = make_customers(5_000, seed=2, drift=0.6, batch=3)
    spec = FeatureSpec(
        numeric=[c for c in DEMO_NUMERIC if c not in ("region", "category_preference")],
        categorical=["region", "category_preference"],
    )
    page = tmp_path_factory.mktemp("drift") / "drift.html"
    page.write_text(detect_drift(ref, cur, spec).to_html(), encoding="utf-8")
    return page


def test_comparison_report_renders(comparison_page: Path) -> None:
    with open_page(comparison_page) as tab:
        decision = tab.evaluate("document.getElementById('decision').textContent.trim()")
        assert decision in ("PROMOTE", "REJECT", "INCONCLUSIVE")
        lengths = tab.evaluate(
            "[...document.querySelectorAll('path.curve')].map(p => p.getTotalLength())"
        )
        assert len(lengths) == 6 and all(x > 10 for x in lengths), lengths  # 2 models x 3
        assert tab.evaluate("!!document.querySelector('svg[data-chart=reliability] path.curve')")
        assert tab.evaluate("document.querySelectorAll('table.confusion').length") == 2
        assert tab.evaluate(OVERFLOW_JS) == []
        _not_blank(tab.screenshot(scale=0.25))


def test_drift_report_renders(drift_page: Path) -> None:
    with open_page(drift_page) as tab:
        text = tab.evaluate("document.getElementById('decision').textContent")
        assert "Dataset drift detected" in text
        bars = tab.evaluate("document.querySelectorAll('svg rect title').length")
        assert bars > 20  # hover titles on every bar
        cells = tab.evaluate("[...document.querySelectorAll('td')].map(c => c.textContent)")
        assert "True" not in cells and "None" not in cells and "nan" not in cells
        assert tab.evaluate(OVERFLOW_JS) == []
        _not_blank(tab.screenshot(scale=0.25))


@pytest.fixture
def backtest_page(
    prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, dict]:
    """A real backtest (4 monthly batches, drift from the second): configured, never, always
    and one variant."""
    from flows.backtest import backtest
    from model.data.demo import DEMO_TIME, make_timeline

    config = tmp_path / "retraining.toml"
    config.write_text(FAST_BACKTEST_POLICY)
    monkeypatch.setenv("RETRAIN_CONFIG", str(config))
    monkeypatch.setenv("RETRAIN_HOME", str(tmp_path / "home"))
    history = tmp_path / "history.parquet"
    make_timeline(
        4, base_months=3, base_rows=3_000, rows_per_month=1_200, drift_from_month=2
    ).to_parquet(history)
    result = backtest(
        data_path=str(history),
        start="2024-01-01",
        time_column=DEMO_TIME,
        variants=["improvement_threshold=0.02"],
        out_dir=str(tmp_path / "report"),
    )
    return Path(result["reports"]["html"]), result


MARKS_INSIDE_JS = """
(() => {
  const svg = document.querySelector('svg[data-chart=auc]').getBoundingClientRect();
  return [...document.querySelectorAll('svg[data-chart=auc] .marker')].filter(m => {
    const r = m.getBoundingClientRect();
    return r.left < svg.left || r.right > svg.right || r.top < svg.top || r.bottom > svg.bottom;
  }).length;
})()
"""


def test_backtest_report_renders(backtest_page: tuple[Path, dict]) -> None:
    page, result = backtest_page
    names = [p["name"] for p in result["policies"]]
    decided = sum(
        1
        for p in result["policies"]
        for s in p["steps"]
        if (s["cycle"] or {}).get("status") in ("promoted", "rejected", "inconclusive")
    )
    with open_page(page, width=1150) as tab:
        lines = tab.evaluate(
            "[...document.querySelectorAll('path.policy-line')].map(p => "
            "[p.dataset.policy, p.getTotalLength()])"
        )
        assert [name for name, _ in lines] == names  # a line for every policy
        assert all(length > 100 for _, length in lines), lines
        kinds = tab.evaluate(
            "[...document.querySelectorAll('svg[data-chart=auc] .marker')].map(m => m.dataset.kind)"
        )
        assert len(kinds) >= decided > 0, (kinds, decided)  # every decision marked
        assert {"forced"} <= set(kinds), kinds  # retrain always forces its candidates
        assert tab.evaluate(MARKS_INSIDE_JS) == 0
        titles = tab.evaluate(
            "[...document.querySelectorAll('svg[data-chart=auc] .marker title')].length"
        )
        assert titles == len(kinds)  # each mark says what it is on hover
        rows = tab.evaluate("document.querySelectorAll('#summary tr').length")
        assert rows == 1 + len(names)
        assert tab.evaluate("document.querySelectorAll('#drift tr').length") == 1 + 4
        assert tab.evaluate(OVERFLOW_JS) == []
        _not_blank(tab.screenshot(scale=0.25))
