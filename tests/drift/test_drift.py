"""Drift detection: statistics against scipy, calibration, power, bad input, reports."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from model.data import FeatureSpec
from model.drift import (
    DriftReport,
    DriftSettings,
    detect_drift,
    drift_from_report_file,
    newest_batches,
    read_drift_report,
    write_reports,
)
from model.errors import DriftInputError, RetrainError

SPEC = FeatureSpec(
    numeric=["normal", "lognormal", "poisson", "uniform"],
    categorical=["colour", "size", "flag"],
)


def mixed(rows: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    """Numeric (continuous and tied) and categorical columns; ``shift`` moves all of them."""
    rng = np.random.default_rng(seed)
    colour_p = np.array([0.4, 0.3, 0.2, 0.1])
    if shift:
        colour_p = np.array([0.25, 0.25, 0.25, 0.25])
    return pd.DataFrame(
        {
            "normal": rng.normal(shift, 1.0, rows),
            "lognormal": rng.lognormal(4.5 + shift, 0.8, rows),
            "poisson": rng.poisson(3 + 2 * shift, rows),
            "uniform": rng.uniform(0, 1 + shift, rows),
            "colour": pd.Series(rng.choice(["red", "green", "blue", "grey"], rows, p=colour_p)),
            "size": pd.Series(rng.choice(["s", "m", "l"], rows), dtype="category"),
            "flag": rng.random(rows) < 0.3 + 0.4 * shift,
            "target": rng.integers(0, 2, rows),
        }
    )


# ----------------------------------------------------------------- statistics vs references


@pytest.mark.parametrize("tied", [False, True])
def test_numeric_statistics_match_scipy(tied: bool) -> None:
    rng = np.random.default_rng(3)
    if tied:
        a, b = rng.poisson(4, 30_000).astype(float), rng.poisson(4.1, 20_000).astype(float)
    else:
        a, b = rng.normal(0, 2, 30_000), rng.normal(0.05, 2, 20_000)
    a[:50] = np.nan  # missing values are left out of the tests and reported
    ref, cur = pd.DataFrame({"x": a}), pd.DataFrame({"x": b})
    f = detect_drift(ref, cur, FeatureSpec(numeric=["x"])).features["x"]
    a_ok = a[~np.isnan(a)]
    expected = stats.ks_2samp(a_ok, b)
    assert f.statistic == pytest.approx(expected.statistic, abs=1e-12)
    assert f.p_value == pytest.approx(expected.pvalue, rel=1e-3, abs=1e-12)
    w1 = stats.wasserstein_distance(a_ok, b)
    assert f.distance == pytest.approx(w1 / np.std(a_ok), rel=1e-9)
    assert f.reference_missing == pytest.approx(50 / 30_000)
    # PSI over decile bins of the reference, computed independently
    edges = np.unique(np.quantile(a_ok, np.arange(1, 10) / 10, method="inverted_cdf"))
    full = np.concatenate([[-np.inf], edges, [np.inf]])
    pr = np.histogram(a_ok, full)[0] / a_ok.size
    pc = np.histogram(b, full)[0] / b.size
    pr, pc = np.maximum(pr, 1e-4), np.maximum(pc, 1e-4)
    assert f.psi == pytest.approx(float(np.sum((pc - pr) * np.log(pc / pr))), rel=1e-9)


def test_categorical_statistics_match_scipy() -> None:
    rng = np.random.default_rng(4)
    ref = pd.DataFrame({"c": rng.choice(["a", "b", "c"], 5000, p=[0.5, 0.3, 0.2])})
    cur_values = rng.choice(["a", "b", "c", "new"], 3000, p=[0.4, 0.3, 0.2, 0.1]).astype(object)
    cur_values[:30] = None
    cur = pd.DataFrame({"c": cur_values})
    f = detect_drift(ref, cur, FeatureSpec(categorical=["c"])).features["c"]
    r_counts = ref["c"].value_counts()
    c_counts = cur["c"].value_counts(dropna=False)
    levels = ["a", "b", "c", "new", None]
    table = np.array(
        [
            [r_counts.get(k, 0) for k in levels[:4]] + [0],
            [c_counts.get(k, 0) for k in levels[:4]] + [int(cur["c"].isna().sum())],
        ]
    )
    chi = stats.chi2_contingency(table, correction=False)
    assert f.statistic == pytest.approx(chi.statistic, rel=1e-9)
    assert f.p_value == pytest.approx(chi.pvalue, rel=1e-6, abs=1e-300)
    js = jensenshannon(table[0] / table[0].sum(), table[1] / table[1].sum(), base=2)
    assert f.distance == pytest.approx(js, rel=1e-9)
    assert f.unseen_levels == 2  # "new" and the missing level
    assert f.unseen_share == pytest.approx((c_counts["new"] + 30) / 3000)
    assert f.current_missing == pytest.approx(30 / 3000)
    assert f.drifted


def test_holm_correction_matches_independent_formula() -> None:
    ref, cur = mixed(3000, 1), mixed(1000, 2, shift=0.05)
    report = detect_drift(ref, cur, SPEC)
    raw = np.array([f.p_value for f in report.features.values()])
    order = np.argsort(raw)
    k = raw.size
    holm = np.minimum(1, np.maximum.accumulate((k - np.arange(k)) * raw[order]))
    expected = np.empty(k)
    expected[order] = holm
    got = [f.p_value_adjusted for f in report.features.values()]
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    bonf = detect_drift(ref, cur, SPEC, DriftSettings(correction="bonferroni"))
    np.testing.assert_allclose(
        [f.p_value_adjusted for f in bonf.features.values()], np.minimum(1, raw * k)
    )


def test_spec_inferred_from_reference_when_not_given() -> None:
    """Without a spec: features from the reference's dtypes; target, id and date are not."""
    ref, cur = mixed(3000, 1), mixed(1000, 2, shift=0.5)
    for frame in (ref, cur):
        frame["id"] = np.arange(len(frame))
        frame["date"] = "2026-01-01"
    inferred = detect_drift(ref, cur)
    explicit = detect_drift(ref, cur, SPEC)
    assert list(inferred.features) == SPEC.features
    assert inferred.target is not None and inferred.target.name == "target"
    for name, f in explicit.features.items():
        assert inferred.features[name].to_dict() == f.to_dict()
    assert inferred.drifted_features == explicit.drifted_features


# ----------------------------------------------------------------- calibration and power


def test_same_distribution_rarely_flagged() -> None:
    """100 seeded pairs from one distribution: each feature and the data set flagged ≤ 11."""
    raw = DriftSettings(correction="none", psi_threshold=0.0, distance_threshold=0.0)
    flags = dict.fromkeys(SPEC.features, 0)
    raw_flags = dict.fromkeys(SPEC.features, 0)
    dataset = raw_dataset = 0
    for seed in range(100):
        ref, cur = mixed(2000, 1000 + seed), mixed(800, 5000 + seed)
        report = detect_drift(ref, cur, SPEC)
        # the p-values alone (no correction, no effect floor) must be valid tests at 5 %
        raw_report = detect_drift(ref, cur, SPEC, raw)
        for name in SPEC.features:
            flags[name] += report.features[name].drifted
            raw_flags[name] += raw_report.features[name].drifted
        dataset += report.dataset_drift
        raw_dataset += raw_report.dataset_drift
    assert max(flags.values()) <= 11, flags
    assert max(raw_flags.values()) <= 11, raw_flags
    assert dataset <= 11
    assert raw_dataset <= 11


def test_shifted_data_flagged_and_only_shifted_features() -> None:
    ref = mixed(3000, 1)
    cur = mixed(1000, 2, shift=0.5)
    cur["size"] = mixed(1000, 3)["size"]  # left unshifted
    report = detect_drift(ref, cur, SPEC)
    assert report.dataset_drift
    assert set(report.drifted_features) == set(SPEC.features) - {"size"}
    assert report.drift_share == pytest.approx(6 / 7)


def test_demo_drift_flags_the_shifted_features() -> None:
    demo = pytest.importorskip("model.data.demo")
    spec = FeatureSpec(numeric=list(demo.DEMO_NUMERIC), id_column="id")
    base = demo.make_customers(10_000, 42)
    drifted = demo.make_customers(2_000, 42, drift=0.5, batch=1)
    same = demo.make_customers(2_000, 42, drift=0.0, batch=2)
    report = detect_drift(base, drifted, spec)
    shifted = {k for k, v in demo.DRIFT_RECIPE.items() if k != "target" and "unchanged" not in v}
    assert shifted == set(demo.DEMO_NUMERIC) - {"region", "category_preference"}
    assert report.dataset_drift
    assert set(report.drifted_features) == shifted
    assert report.target is not None  # labels on both sides: the target is compared too
    quiet = detect_drift(base, same, spec)
    assert not quiet.dataset_drift
    assert quiet.drifted_features == []


def test_trivial_shift_in_huge_sample_not_flagged() -> None:
    rng = np.random.default_rng(5)
    ref = pd.DataFrame({"x": rng.normal(0, 1, 400_000)})
    cur = pd.DataFrame({"x": rng.normal(0.03, 1, 400_000)})
    f = detect_drift(ref, cur, FeatureSpec(numeric=["x"])).features["x"]
    assert f.p_value < 1e-10  # significant ...
    assert not f.drifted  # ... but immaterial
    assert f.psi < 0.1 and f.distance < 0.1


def test_dataset_threshold_and_share_are_distinct() -> None:
    ref, cur = mixed(3000, 1), mixed(1000, 2)
    cur["normal"] = cur["normal"] + 1.0
    cur["poisson"] = cur["poisson"] + 3
    report = detect_drift(ref, cur, SPEC)
    assert report.drift_share == pytest.approx(2 / 7)
    assert not report.dataset_drift
    low = detect_drift(ref, cur, SPEC, DriftSettings(dataset_drift_threshold=0.25))
    assert low.dataset_drift
    assert low.to_dict()["settings"]["dataset_drift_threshold"] == 0.25


class CountingModel:
    def __init__(self) -> None:
        self.rows: list[int] = []

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        self.rows.append(len(df))
        return 1 / (1 + np.exp(-df["normal"].to_numpy()))


def test_prediction_drift_on_a_bounded_sample() -> None:
    model = CountingModel()
    ref, cur = mixed(3000, 1), mixed(2500, 2, shift=0.5)
    report = detect_drift(ref, cur, SPEC, DriftSettings(max_model_rows=1000), model=model)
    assert model.rows == [1000, 1000]
    assert report.prediction is not None and report.prediction.drifted
    assert report.to_dict()["prediction"]["kind"] == "numeric"
    no_model = detect_drift(ref, cur, SPEC)
    assert no_model.prediction is None


def test_target_drift_only_with_labels_on_both_sides() -> None:
    ref, cur = mixed(2000, 1), mixed(1000, 2)
    assert detect_drift(ref, cur, SPEC).target is not None
    report = detect_drift(ref, cur.drop(columns="target"), SPEC)
    assert report.target is None
    assert report.to_dict()["target"] is None


# ----------------------------------------------------------------- bad input


def test_bad_input_raises_drift_input_error() -> None:
    ref, cur = mixed(200, 1), mixed(100, 2)
    with pytest.raises(DriftInputError, match=r"reference.*missing.*colour"):
        detect_drift(ref.drop(columns="colour"), cur, SPEC)
    with pytest.raises(DriftInputError, match="no rows"):
        detect_drift(ref, cur.iloc[:0], SPEC)
    wrong = cur.assign(normal=cur["normal"].astype(str))
    with pytest.raises(DriftInputError, match=r"'normal' has different types"):
        detect_drift(ref, wrong, SPEC, current_path="batch.parquet")
    nulls = ref.assign(uniform=np.nan)
    with pytest.raises(DriftInputError, match=r"reference: column 'uniform' has only missing"):
        detect_drift(nulls, cur, SPEC)
    with pytest.raises(DriftInputError, match="numeric in the feature spec"):
        detect_drift(ref, cur, FeatureSpec(numeric=["colour"]))
    assert issubclass(DriftInputError, RetrainError)


def test_read_drift_report_validates(tmp_path: Path) -> None:
    with pytest.raises(DriftInputError, match="not found"):
        read_drift_report(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DriftInputError, match="not valid JSON"):
        read_drift_report(bad)
    for content, match in [
        ([1, 2], "JSON object"),
        ({"drift_share": 0.7}, "dataset_drift"),
        ({"dataset_drift": "yes"}, "dataset_drift"),
        ({"dataset_drift": True, "drift_share": 1.5}, "drift_share"),
        ({"dataset_drift": True, "drifted_features": "age"}, "drifted_features"),
    ]:
        bad.write_text(json.dumps(content))
        with pytest.raises(DriftInputError, match=match):
            read_drift_report(bad)
    external = tmp_path / "external.json"
    external.write_text(json.dumps({"dataset_drift": True, "drift_share": 0.6, "tool": "x"}))
    data = read_drift_report(external)
    assert data["dataset_drift"] is True and data["tool"] == "x"
    summary = drift_from_report_file(external)
    assert summary == {
        "dataset_drift": True,
        "drift_share": 0.6,
        "drifted_features": [],
        "report_path": str(external),
        "source": "file",
        "schema_changes": {},
    }


# ----------------------------------------------------------------- reports and helpers


def test_write_reports_json_markdown_html(tmp_path: Path) -> None:
    ref, cur = mixed(2000, 1), mixed(1000, 2, shift=0.5)
    report = detect_drift(
        ref, cur, SPEC, reference_path="ref.parquet", current_path=["b1.parquet", "b2.parquet"]
    )
    paths = write_reports(report, tmp_path / "out")
    assert {p.name for p in paths.values()} == {"drift.json", "drift.md", "drift.html"}
    data = json.loads(paths["json"].read_text())
    for key in ("reference", "current", "features", "drift_share", "dataset_drift", "settings"):
        assert key in data
    assert data["reference"] == {"paths": ["ref.parquet"], "rows": 2000}
    assert data["current"]["paths"] == ["b1.parquet", "b2.parquet"]
    assert data["drifted_features"] == report.drifted_features
    for f in data["features"].values():
        assert {"kind", "test", "statistic", "p_value", "psi", "distance", "drifted"} <= set(f)
    assert data["features"]["colour"]["test"] == "chi2"
    assert data["features"]["normal"]["test"] == "ks"
    md = paths["md"].read_text()
    assert "| normal | numeric | ks |" in md and "Dataset drift detected" in md
    page = paths["html"].read_text()
    assert "http" not in page and "<script" not in page
    # a reader of the page alone can tell which data were compared, and by what rule
    assert "ref.parquet (2,000 rows)" in page and "b1.parquet, b2.parquet (1,000 rows)" in page
    assert "holm-corrected p-value" in page
    assert page.count("<svg") == len([f for f in report.features.values() if f.drifted]) + (
        1 if report.target is not None and report.target.drifted else 0
    )
    assert isinstance(report, DriftReport)
    assert math.isclose(data["drift_share"], report.drift_share)


def test_newest_batches(tmp_path: Path) -> None:
    root = tmp_path / "incoming"
    assert newest_batches(root) == []
    for day in ("2026-01-03", "2026-01-01", "2026-01-02"):
        (root / f"date={day}").mkdir(parents=True)
        (root / f"date={day}" / "part-0.parquet").write_bytes(b"x")
    (root / "date=2026-01-09").mkdir()  # empty: not a batch yet
    (root / "notes").mkdir()
    assert newest_batches(root) == [root / "date=2026-01-03"]
    assert newest_batches(root, n=2) == [root / "date=2026-01-02", root / "date=2026-01-03"]
    assert len(newest_batches(root, n=10)) == 3


def test_cli_drift(settings, tmp_path: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from model.cli import main

    ref, cur = tmp_path / "ref.parquet", tmp_path / "cur.parquet"
    mixed(2000, 1).to_parquet(ref, index=False)
    mixed(1000, 2, shift=0.5).to_parquet(cur, index=False)
    out = tmp_path / "report"
    code = main(["drift", "--reference", str(ref), "--current", str(cur), "--out", str(out)])
    assert code == 0
    assert (out / "drift.json").is_file() and (out / "drift.html").is_file()
    assert "Dataset drift detected" in capsys.readouterr().out
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    from prefect.settings import PREFECT_API_URL, temporary_settings

    # no server, even when a flow test's session harness has set one for the session
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        assert main(["drift", "--reference", str(ref), "--current", str(cur), "--emit"]) == 2
    assert "PREFECT_API_URL" in capsys.readouterr().err
    assert (
        main(["drift", "--reference", str(tmp_path / "nope.parquet"), "--current", str(cur)]) == 2
    )
    assert main(["drift"]) == 0  # no production model: nothing to compare, not an error
    assert "not computed" in capsys.readouterr().out


def test_html_table_keeps_column_names_as_the_data_spells_them() -> None:
    rng = np.random.default_rng(3)
    ref = pd.DataFrame(
        {"credit_score": rng.normal(0, 1, 500), "is_premium": rng.integers(0, 2, 500)}
    )
    cur = pd.DataFrame(
        {"credit_score": rng.normal(2, 1, 500), "is_premium": rng.integers(0, 2, 500)}
    )
    page = detect_drift(ref, cur, FeatureSpec(numeric=["credit_score", "is_premium"])).to_html()
    assert "<td>credit_score</td>" in page and "<td>is_premium</td>" in page
    assert "credit-score" not in page
