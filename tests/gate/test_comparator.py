"""The promotion gate: decisions, the lab's compatibility, bad input, calibration, the CLI."""

from __future__ import annotations

import argparse
import json
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from model.errors import ComparisonInputError
from model.gate.cli import main
from model.gate.comparator import EXIT_CODES, ModelComparator

FEATURES = ["x1", "x2"]


@dataclass
class StandIn:
    """A loaded model's surface: predict_proba(df), decision_threshold, spec, identity."""

    column: str
    decision_threshold: float = 0.5
    spec: Any = field(default_factory=lambda: SimpleNamespace(features=FEATURES, target="target"))
    version: str | None = None
    path: str | None = None
    sha256: str | None = None
    metadata: dict = field(default_factory=dict)

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        return df[self.column].to_numpy()


def holdout(seed: int, n: int, mu_b: float, mu_c: float, rho: float = 0.5) -> pd.DataFrame:
    """Half positives; paired binormal scores as probabilities (AUC = Phi(mu / sqrt 2))."""
    rng = np.random.default_rng(seed)
    y = np.r_[np.ones(n // 2, int), np.zeros(n - n // 2, int)]
    noise = rng.multivariate_normal([0, 0], [[1, rho], [rho, 1]], size=n)
    return pd.DataFrame(
        {
            "x1": rng.normal(size=n),
            "x2": rng.normal(size=n),
            "score_b": 1 / (1 + np.exp(-(mu_b * y + noise[:, 0] - mu_b / 2))),
            "score_c": 1 / (1 + np.exp(-(mu_c * y + noise[:, 1] - mu_c / 2))),
            "target": y,
        }
    )


BASE = StandIn("score_b", version="v0001", path="/models/v0001", sha256="a" * 64)
CAND = StandIn("score_c", version="v0002", path="/models/v0002", sha256="b" * 64)


def should_promote_model(results):
    """The lab's example policy, written against the lab's result keys."""
    return (
        results["improvements"]["auc"]["absolute_improvement"] > 0.02
        and results["improvements"]["f1"]["absolute_improvement"] > 0
        and results["improvements"]["precision"]["absolute_improvement"] > -0.05
        and results["improvements"]["recall"]["absolute_improvement"] > -0.05
        and results["statistical_significance"]["significant"]
    )


def comparator(**kw: Any) -> ModelComparator:
    kw.setdefault("improvement_threshold", 0.02)
    kw.setdefault("n_bootstrap", 200)
    kw.setdefault("random_state", 7)
    return ModelComparator(**kw)


def test_no_production_model_promotes() -> None:
    df = holdout(0, 400, 1.0, 1.0)
    result = comparator().compare(None, CAND, df)
    assert result.decision == "PROMOTE" and result.exit_code == 0
    assert "no production model" in result.reasons[0]
    assert result.to_dict()["baseline"] is None
    from sklearn.metrics import roc_auc_score

    expected = roc_auc_score(df["target"], df["score_c"])
    assert result.metrics["auc"].candidate == pytest.approx(expected, abs=1e-12)
    assert result.metrics["auc"].baseline is None and result.n_bootstrap == 0


def test_clear_improvement_promotes_with_lab_keys() -> None:
    df = holdout(1, 3000, 0.8, 1.5)
    result = comparator().compare(BASE, CAND, df)
    assert result.decision == "PROMOTE", result.reasons
    assert result.test == "delong" and result.p_value is not None and result.p_value < 1e-6
    d = result.to_dict()
    assert d["candidate"] == {
        "version": "v0002",
        "path": "/models/v0002",
        "sha256": "b" * 64,
        "decision_threshold": 0.5,
    }
    assert d["metrics"]["auc"]["ci_low"] > 0
    assert d["improvements"]["auc"]["absolute_improvement"] == pytest.approx(
        d["new_metrics"]["auc"] - d["baseline_metrics"]["auc"]
    )
    rel = d["improvements"]["auc"]["relative_improvement"]
    assert rel == pytest.approx(100 * (d["new_metrics"]["auc"] / d["baseline_metrics"]["auc"] - 1))
    assert d["should_promote"] is True
    # the lab's example runs unchanged on the dict form and on the result itself
    assert should_promote_model(d) is True
    assert should_promote_model(result) is True
    assert should_promote_model(json.loads(json.dumps(d))) is True


def test_worse_candidate_is_rejected() -> None:
    df = holdout(2, 3000, 1.4, 0.9)
    result = comparator().compare(BASE, CAND, df)
    assert result.decision == "REJECT" and result.exit_code == 3
    assert result.improvement is not None and result.improvement < 0
    assert any("shown not to reach the threshold 0.0200" in r for r in result.reasons)
    assert result.upper_bound is not None and result.upper_bound < result.threshold_absolute
    assert should_promote_model(result.to_dict()) is False


def test_too_few_of_a_class_is_inconclusive_never_promote() -> None:
    df = holdout(3, 80, 0.5, 3.0)  # 40 positives: a huge gain, but too little evidence
    result = comparator().compare(BASE, CAND, df)
    assert result.decision == "INCONCLUSIVE", result.reasons
    assert result.exit_code == 4
    assert (
        "too little evidence" in result.reasons[0] and "at least 100 of each" in result.reasons[0]
    )
    assert comparator(min_class_count=20).compare(BASE, CAND, df).decision == "PROMOTE"


def test_interval_containing_the_threshold_is_inconclusive_with_the_rows_that_would_decide() -> (
    None
):
    df = holdout(5, 3000, 1.0, 1.12)
    result = comparator().compare(BASE, CAND, df)
    assert result.lower_bound is not None and result.upper_bound is not None
    assert result.lower_bound < 0.02 < result.upper_bound
    assert result.decision == "INCONCLUSIVE"
    assert result.samples_needed is not None and result.samples_needed > 3000
    assert f"about {result.samples_needed:,} rows would decide" in result.reasons[0]
    # the lab's lenient rule promotes the same evidence (gain >= T, p(gain > 0) < alpha)
    assert result.improvement is not None and result.improvement >= 0.02
    assert comparator(rule="lab").compare(BASE, CAND, df).decision == "PROMOTE"


def test_adequate_holdout_without_improvement_is_rejected_not_inconclusive() -> None:
    df = holdout(4, 20_000, 1.0, 1.0)
    result = comparator(n_bootstrap=50).compare(BASE, CAND, df)
    assert result.upper_bound is not None and result.upper_bound < result.threshold_absolute
    assert result.decision == "REJECT"


def test_guardrail_breach_rejects_and_names_the_metric() -> None:
    df = holdout(6, 3000, 0.8, 1.5)
    cautious = StandIn("score_c", decision_threshold=0.8)  # far fewer positives predicted
    result = comparator(guardrails={"recall": 0.01, "log_loss": 0.05}).compare(BASE, cautious, df)
    assert result.decision == "REJECT"
    drop = -result.metrics["recall"].improvement  # type: ignore[operator]
    assert result.reasons[0].startswith(
        f"Guardrail recall breached: shown worse by more than 0.0100 (worse by {drop:.4f}, "
        "interval ["
    )
    harm = comparator(guardrails={"recall": 0.01}, guardrail_mode="harm").compare(
        BASE, cautious, df
    )
    assert harm.reasons[0].startswith(
        f"Guardrail recall breached: worse by more than 0.0100 shown (worse by {drop:.4f}, "
        "Holm-adjusted p = "
    )
    breached = {g.metric for g in result.guardrails if g.breached}
    assert breached == {"recall"}
    relaxed = comparator(guardrails={"log_loss": 0.05}).compare(BASE, cautious, df)
    assert relaxed.decision == "PROMOTE"
    # a lower-is-better guardrail reads the right way round: log loss fell, so "better by"
    ll = relaxed.metrics["log_loss"]
    assert ll.absolute_change is not None and ll.absolute_change < 0
    assert f"(better by {-ll.absolute_change:.4f}" in relaxed.guardrails[0].describe()
    assert relaxed.guardrails[0].describe().startswith("Guardrail log_loss ok")
    # the text report marks each guardrail line with the right sign
    from model.gate import report

    text = report.to_text(result)
    assert "  ✗ Guardrail recall breached" in text
    assert "  ✓ Guardrail log_loss ok" in text


def test_non_inferiority_guardrails_require_evidence() -> None:
    df = holdout(7, 3000, 0.8, 1.5)
    both = {"recall": 0.01}
    # recall clearly better: no breach either way
    for mode in ("harm", "non_inferiority"):
        assert comparator(guardrails=both, guardrail_mode=mode).compare(
            BASE, CAND, df
        ).decision == ("PROMOTE")
    # recall slightly worse (about -0.013, margin 0.01): not significantly worse than the
    # margin (harm mode passes), but non-inferiority (the default) is not shown either, so
    # the candidate cannot be promoted
    close = StandIn("score_c", decision_threshold=0.58)
    harm = comparator(guardrails=both, guardrail_mode="harm").compare(BASE, close, df)
    assert harm.decision == "PROMOTE"
    assert -0.02 < harm.guardrails[0].improvement < -0.01
    shown = comparator(guardrails=both).compare(BASE, close, df)
    assert shown.guardrail_mode == "non_inferiority"
    assert shown.decision == "INCONCLUSIVE"
    assert "Guardrail recall not shown" in shown.reasons[1]


def test_policy_requires_every_listed_metric_to_improve() -> None:
    df = holdout(9, 3000, 0.8, 1.5)
    ok = comparator(policy={"auc": 0.02, "f1": 0.0}).compare(BASE, CAND, df)
    assert ok.decision == "PROMOTE"
    assert [c.metric for c in ok.policy] == ["auc", "f1"]
    strict_policy = comparator(policy={"auc": 0.02, "f1": 0.5}).compare(BASE, CAND, df)
    assert strict_policy.decision == "REJECT"
    assert any("f1" in r for r in strict_policy.reasons)


def test_other_primary_metrics_and_relative_threshold() -> None:
    df = holdout(10, 3000, 0.8, 1.5)
    result = comparator(primary_metric="log_loss", threshold_type="relative").compare(
        BASE, CAND, df
    )
    assert result.test == "paired-normal"
    base_ll = result.metrics["log_loss"].baseline
    assert base_ll is not None
    assert result.threshold_absolute == pytest.approx(0.02 * base_ll)
    assert result.metrics["log_loss"].improvement == pytest.approx(
        base_ll - result.metrics["log_loss"].candidate
    )
    assert result.decision == "PROMOTE"
    # the reason states the real values (log loss went down) and the improvement
    m = result.metrics["log_loss"]
    assert result.reasons[0].startswith(
        f"LOG_LOSS improvement {m.improvement:+.4f} ({m.baseline:.4f} → {m.candidate:.4f}, "
        "lower is better)"
    )
    f1 = comparator(primary_metric="f1", improvement_threshold=0.01).compare(BASE, CAND, df)
    assert f1.test == "bootstrap-normal" and f1.decision == "PROMOTE"
    assert f1.se == pytest.approx(f1.population.bootstrap["sd"]["f1"])  # type: ignore[index]


def test_identical_results_under_a_seed() -> None:
    df = holdout(11, 1500, 1.0, 1.2)
    a = comparator(random_state=3).compare(BASE, CAND, df).to_dict()
    b = comparator(random_state=3).compare(BASE, CAND, df).to_dict()
    c = comparator(random_state=4).compare(BASE, CAND, df).to_dict()
    a.pop("created_at"), b.pop("created_at"), c.pop("created_at")
    assert a == b
    assert a["bootstrap_deltas"] != c["bootstrap_deltas"]


def test_lab_alias_for_significance_level() -> None:
    assert ModelComparator(statistical_significance_threshold=0.01).significance_level == 0.01
    with pytest.raises(ComparisonInputError, match="disagree"):
        ModelComparator(significance_level=0.05, statistical_significance_threshold=0.01)


def test_compare_scores_accepts_precomputed_arrays() -> None:
    df = holdout(12, 1000, 0.8, 1.5)
    y = df["target"].to_numpy()
    result = comparator().compare_scores(y, df["score_b"].to_numpy(), df["score_c"].to_numpy())
    assert result.decision == "PROMOTE"
    assert result.n_test == 1000 and result.n_positive == 500
    assert len(result.bootstrap_deltas) == 200
    assert set(result.curves) == {"baseline", "candidate"}


# ---------------------------------------------------------------------------- bad input


def test_feature_specs_that_differ_are_rejected() -> None:
    df = holdout(13, 200, 1.0, 1.0)
    other = StandIn("score_c", spec=SimpleNamespace(features=["x1", "x3"], target="target"))
    with pytest.raises(ComparisonInputError, match=r"feature specs differ.*x2.*x3"):
        comparator().compare(BASE, other, df)


def test_test_data_missing_a_feature_is_rejected() -> None:
    df = holdout(14, 200, 1.0, 1.0).drop(columns=["x2"])
    with pytest.raises(ComparisonInputError, match="x2"):
        comparator().compare(BASE, CAND, df)


def test_missing_target_is_rejected() -> None:
    df = holdout(14, 200, 1.0, 1.0).drop(columns=["target"])
    with pytest.raises(ComparisonInputError, match="target"):
        comparator().compare(BASE, CAND, df)


def test_one_class_test_set_is_inconclusive_not_an_error() -> None:
    df = holdout(15, 200, 1.0, 1.0)
    df["target"] = 1
    result = comparator().compare(BASE, CAND, df)
    assert result.decision == "INCONCLUSIVE"
    assert "200 positives and 0 negatives" in result.reasons[0]
    df.loc[0, "target"] = 0  # one negative: still too few to test
    assert comparator().compare(BASE, CAND, df).decision == "INCONCLUSIVE"
    # no production model: nothing blocks the first one
    assert comparator().compare(None, CAND, df).decision == "PROMOTE"


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_scores_are_rejected(bad: float) -> None:
    df = holdout(16, 200, 1.0, 1.0)
    df.loc[5, "score_c"] = bad
    with pytest.raises(ComparisonInputError, match=r"candidate.*NaN or infinite.*row 5"):
        comparator().compare(BASE, CAND, df)


def test_scores_outside_unit_interval_are_rejected() -> None:
    df = holdout(16, 200, 1.0, 1.0)
    df.loc[3, "score_b"] = 1.5
    with pytest.raises(ComparisonInputError, match=r"baseline.*\[0, 1\]"):
        comparator().compare(BASE, CAND, df)


def test_empty_test_set_is_rejected() -> None:
    df = holdout(17, 200, 1.0, 1.0).iloc[:0]
    with pytest.raises(ComparisonInputError, match="empty"):
        comparator().compare(BASE, CAND, df)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"primary_metric": "gini"}, "unknown metric 'gini'"),
        ({"improvement_threshold": -0.1}, "improvement_threshold"),
        ({"improvement_threshold": 1.5}, "improvement_threshold"),
        ({"improvement_threshold": float("nan")}, "improvement_threshold"),
        ({"significance_level": 0.0}, "significance_level"),
        ({"significance_level": 0.7}, "significance_level"),
        ({"statistical_significance_threshold": 1.0}, "significance_level"),
        ({"threshold_type": "percent"}, "threshold_type"),
        ({"guardrails": {"recall": -0.01}}, "guardrail margin"),
        ({"guardrails": {"speed": 0.01}}, "unknown metric 'speed'"),
        ({"policy": {"f2": 0.0}}, "unknown metric 'f2'"),
        ({"n_bootstrap": 5}, "n_bootstrap"),
        ({"test": "delong", "primary_metric": "f1"}, "DeLong"),
    ],
)
def test_bad_settings_are_rejected(kwargs: dict, message: str) -> None:
    with pytest.raises(ComparisonInputError, match=message):
        ModelComparator(**kwargs)


def test_errors_are_retrain_errors() -> None:
    from model.errors import RetrainError

    assert issubclass(ComparisonInputError, RetrainError)


# ---------------------------------------------------------------------------- calibration


@pytest.mark.slow
def test_equally_good_models_are_rarely_promoted() -> None:
    """Type I error at threshold 0: at most 18 of 200 (expected 10, binomial margin)."""
    promoted = 0
    gate = ModelComparator(improvement_threshold=0.0, n_bootstrap=50, random_state=1, n_jobs=1)
    for i in range(200):
        df = holdout(1000 + i, 1000, 1.0, 1.0)
        y = df["target"].to_numpy()
        r = gate.compare_scores(y, df["score_b"].to_numpy(), df["score_c"].to_numpy())
        promoted += r.decision == "PROMOTE"
    assert promoted <= 18, promoted


@pytest.mark.slow
def test_real_improvement_is_usually_promoted() -> None:
    """AUC 0.75 → 0.80 at 2,000 rows: promoted in at least 35 of 50 comparisons."""
    mu_b, mu_c = 0.6745 * np.sqrt(2), 0.8416 * np.sqrt(2)  # binormal AUCs 0.75 and 0.80
    promoted = 0
    gate = ModelComparator(n_bootstrap=50, random_state=1, n_jobs=1)
    for i in range(50):
        df = holdout(5000 + i, 2000, mu_b, mu_c)
        y = df["target"].to_numpy()
        r = gate.compare_scores(y, df["score_b"].to_numpy(), df["score_c"].to_numpy())
        promoted += r.decision == "PROMOTE"
    assert promoted >= 35, promoted


# ---------------------------------------------------------------------------- CLI


@pytest.fixture
def fake_artifact(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """model.training.artifact stand-in: a model 'path' names the score column it reads."""
    module = types.ModuleType("model.training.artifact")

    def load_model(path: str) -> StandIn:
        name = Path(path).name
        if name == "boom":
            raise RuntimeError("disk on fire")
        return StandIn(name, path=str(path), version=name)

    module.load_model = load_model  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "model.training.artifact", module)
    return module


def run_cli(tmp_path: Path, df: pd.DataFrame, *extra: str) -> tuple[int, Path]:
    data = tmp_path / "test.csv"
    df.to_csv(data, index=False)
    out = tmp_path / "out" / "comparison.json"
    argv = ["--test-data", str(data), "--output", str(out), "--n-bootstrap", "100", *extra]
    return main(argv), out


def test_cli_promote_writes_reports(
    tmp_path: Path, fake_artifact: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    html = tmp_path / "report.html"
    code, out = run_cli(
        tmp_path,
        holdout(20, 2000, 0.8, 1.5),
        "--baseline", "m/score_b", "--new", "m/score_c", "--metric", "auc",
        "--threshold", "0.02", "--seed", "5", "--html", str(html),
    )  # fmt: skip
    assert code == 0
    text = capsys.readouterr().out
    assert "PROMOTION DECISION: PROMOTE" in text
    report = json.loads(out.read_text())
    assert report["decision"] == "PROMOTE" and report["seed"] == 5
    assert report["candidate"]["version"] == "score_c"
    assert html.read_text().startswith("<!DOCTYPE html>")


def test_cli_exit_codes(tmp_path: Path, fake_artifact: Any) -> None:
    worse = holdout(21, 2000, 1.5, 0.8)
    args = ("--baseline", "m/score_b", "--new", "m/score_c")
    assert run_cli(tmp_path, worse, *args)[0] == EXIT_CODES["REJECT"] == 3
    small = holdout(3, 80, 1.0, 1.2)
    assert run_cli(tmp_path, small, *args)[0] == EXIT_CODES["INCONCLUSIVE"] == 4
    assert run_cli(tmp_path, small, "--new", "m/score_c")[0] == 0  # no production model
    assert run_cli(tmp_path, small, *args, "--metric", "speed")[0] == 2
    assert run_cli(tmp_path, small, "--baseline", "m/boom", "--new", "m/score_c")[0] == 1
    assert main(["--new", "m/score_c", "--test-data", str(tmp_path / "missing.csv")]) == 2


def test_cli_report_path_that_cannot_be_written_is_bad_input(
    tmp_path: Path, fake_artifact: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "t.csv"
    holdout(23, 400, 1.0, 1.2).to_csv(data, index=False)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    for out in ("/proc/nope/x.json", str(blocker / "x.json")):
        code = main(["--new", "m/score_c", "--test-data", str(data), "--output", out])
        err = capsys.readouterr().err
        assert code == 2, err
        assert err.startswith(f"error: cannot write the report '{out}'") and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "t.csv"]  # nothing left


def test_retrain_compare_shares_the_cli(tmp_path: Path, fake_artifact: Any) -> None:
    from model.cli import compare

    parser = argparse.ArgumentParser()
    compare.register(parser.add_subparsers(dest="command"))
    data = tmp_path / "t.csv"
    holdout(22, 1000, 1.5, 0.8).to_csv(data, index=False)
    args = parser.parse_args(
        ["compare", "--baseline", "m/score_b", "--new", "m/score_c", "--test-data", str(data),
         "--n-bootstrap", "50", "--strict", "--guardrail", "recall=0.01"]
    )  # fmt: skip
    assert args.func(args) == 3
    bad = parser.parse_args(
        ["compare", "--new", "m/score_c", "--test-data", str(data), "--guardrail", "recall"]
    )
    assert bad.func(bad) == 2
