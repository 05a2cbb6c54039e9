"""Metrics against scikit-learn and published values (pROC's aSAH data)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fakes import ASAH
from sklearn import metrics as skm

from model.gate.metrics import (
    HIGHER_IS_BETTER,
    METRICS,
    RankIndex,
    canonical_metric,
    compute_metrics,
    curve_points,
    improvement,
    pr_points,
    relative_change,
    roc_points,
    threshold_metrics,
)


def sklearn_metrics(y, s, threshold, w=None) -> dict[str, float]:
    pred = (s >= threshold).astype(int)
    return {
        "accuracy": skm.accuracy_score(y, pred, sample_weight=w),
        "precision": skm.precision_score(y, pred, sample_weight=w, zero_division=0),
        "recall": skm.recall_score(y, pred, sample_weight=w),
        "f1": skm.f1_score(y, pred, sample_weight=w, zero_division=0),
        "auc": skm.roc_auc_score(y, s, sample_weight=w),
        "log_loss": skm.log_loss(y, s, sample_weight=w),
        "average_precision": skm.average_precision_score(y, s, sample_weight=w),
        "brier": skm.brier_score_loss(y, s, sample_weight=w),
    }


def make_data(seed: int, n: int, ties: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.35).astype(int)
    s = 1 / (1 + np.exp(-(y * 1.2 + rng.normal(size=n) - 0.6)))
    if ties:
        s = np.round(s, 1)  # many ties within and across classes, including 0.0 and 1.0
    return y, s


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.77])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_metric_equals_sklearn(seed: int, threshold: float, ties: bool) -> None:
    y, s = make_data(seed, 700, ties)
    ours = compute_metrics(y, s, threshold)
    ref = sklearn_metrics(y, s, threshold)
    assert list(ours) == list(METRICS)
    for name in METRICS:
        assert ours[name] == pytest.approx(ref[name], abs=1e-12), name


def test_no_positive_predictions_gives_zero_precision_like_sklearn() -> None:
    y, s = make_data(3, 200, False)
    ours = compute_metrics(y, s * 0.5, 0.9)
    assert ours["precision"] == 0.0 and ours["f1"] == 0.0
    assert ours["recall"] == 0.0


@pytest.mark.parametrize("ties", [False, True])
def test_weighted_metrics_equal_sklearn_sample_weight(ties: bool) -> None:
    """The bootstrap path: integer counts in float32, several resamples at once."""
    y, s = make_data(4, 500, ties)
    rng = np.random.default_rng(5)
    pos, neg = s[y == 1], s[y == 0]
    index = RankIndex.build(pos, neg, 0.5)
    w_pos = rng.multinomial(pos.size, np.full(pos.size, 1 / pos.size), size=3).astype(np.float32)
    w_neg = rng.multinomial(neg.size, np.full(neg.size, 1 / neg.size), size=3).astype(np.float32)
    auc, ap = index.rank_metrics(w_pos, w_neg)
    tp = w_pos @ index.pred_pos.astype(np.float32)
    fp = w_neg @ index.pred_neg.astype(np.float32)
    thr = threshold_metrics(tp, fp, pos.size, neg.size)
    y_sorted = np.r_[np.ones(pos.size, int), np.zeros(neg.size, int)]
    s_sorted = np.r_[pos, neg]
    for r in range(3):
        w = np.r_[w_pos[r], w_neg[r]].astype(np.float64)
        ref = sklearn_metrics(y_sorted, s_sorted, 0.5, w)
        assert auc[r] == pytest.approx(ref["auc"], abs=1e-7)
        assert ap[r] == pytest.approx(ref["average_precision"], abs=1e-7)
        for name in ("accuracy", "precision", "recall", "f1"):
            assert thr[name][r] == pytest.approx(ref[name], abs=1e-12), name


@pytest.mark.skipif(not ASAH.exists(), reason="shared aSAH data set not present")
def test_asah_aucs_match_published_proc_values() -> None:
    """pROC's aSAH data: AUC(s100b) = 0.7314, AUC(wfns) = 0.8237, AUC(ndka) = 0.6119 (4 digits)."""
    df = pd.read_csv(ASAH)
    y = (df["outcome"] == "Poor").to_numpy().astype(int)
    published = {"s100b": 0.7314, "wfns": 0.8237, "ndka": 0.6119}
    for column, auc in published.items():
        assert compute_metrics(y, df[column].to_numpy(), 0.5)["auc"] == pytest.approx(auc, abs=1e-4)


def test_metric_names_and_directions() -> None:
    assert canonical_metric("AUC") == "auc"
    assert canonical_metric("roc_auc") == "auc"
    assert canonical_metric("logloss") == "log_loss"
    assert canonical_metric("nope") is None
    assert not HIGHER_IS_BETTER["log_loss"] and not HIGHER_IS_BETTER["brier"]
    assert improvement("log_loss", 0.50, 0.45) == pytest.approx(0.05)
    assert improvement("auc", 0.80, 0.78) == pytest.approx(-0.02)
    assert relative_change(0.8, 0.84) == pytest.approx(0.05)
    assert relative_change(0.0, 0.1) is None


@pytest.mark.parametrize("ties", [False, True])
def test_curve_points_equal_sklearn_curves(ties: bool) -> None:
    y, s = make_data(7, 3000, ties)
    curves = curve_points(y, s, max_points=10**6)
    fpr, tpr, _ = skm.roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(curves["roc"]["fpr"], fpr.round(5))
    np.testing.assert_allclose(curves["roc"]["tpr"], tpr.round(5))
    precision, recall, _ = skm.precision_recall_curve(y, s)
    np.testing.assert_allclose(curves["pr"]["precision"], precision[::-1].round(5))
    np.testing.assert_allclose(curves["pr"]["recall"], recall[::-1].round(5))


def test_curve_points_are_downsampled_and_span_the_unit_square() -> None:
    y, s = make_data(6, 20_000, False)
    roc = roc_points(y, s, max_points=100)
    pr = pr_points(y, s, max_points=100)
    assert len(roc["fpr"]) <= 100 and len(pr["recall"]) <= 100
    assert roc["fpr"][0] == 0.0 and roc["tpr"][-1] == 1.0
    assert max(pr["recall"]) == 1.0
