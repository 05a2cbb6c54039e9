"""Binary-classification metrics over ``(y_true, scores, threshold)``, weighted and vectorized.

Every metric is computed from one sorted index per model (:class:`RankIndex`), so the
same code gives the point estimate (unit weights, float64) and a whole chunk of bootstrap
resamples at once (a ``(k, n)`` matrix of multinomial counts, float32). With rows sorted
by score, the weighted AUC is

    sum over positives of w × (weighted negatives with a lower score + ½ × tied) / (W+ × W−),

computed with cumulative sums over the sorted order, ties grouped by equal score; average
precision uses the same cumulative weighted true/false positives; threshold metrics come
from weighted confusion counts. Thresholded predictions are ``score >= threshold``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from model.gate import kernels

#: Reported metrics, in report order.
METRICS: tuple[str, ...] = (
    "accuracy",
    "precision",
    "recall",
    "f1",
    "auc",
    "log_loss",
    "average_precision",
    "brier",
)
#: Direction of "better" per metric.
HIGHER_IS_BETTER: Mapping[str, bool] = {
    "accuracy": True,
    "precision": True,
    "recall": True,
    "f1": True,
    "auc": True,
    "log_loss": False,
    "average_precision": True,
    "brier": False,
}
#: Lab spellings accepted for metric names.
ALIASES: Mapping[str, str] = {
    "roc_auc": "auc",
    "logloss": "log_loss",
    "ap": "average_precision",
    "pr_auc": "average_precision",
    "brier_score": "brier",
    "f1_score": "f1",
}
THRESHOLD_METRICS: tuple[str, ...] = ("accuracy", "precision", "recall", "f1")
RANK_METRICS: tuple[str, ...] = ("auc", "average_precision")
LOSS_METRICS: tuple[str, ...] = ("log_loss", "brier")

_EPS = float(np.finfo(np.float64).eps)  # scikit-learn's clipping for float64 log loss


def canonical_metric(name: str) -> str | None:
    """The canonical spelling of a metric name, or None when unknown."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    return key if key in HIGHER_IS_BETTER else None


def row_losses(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row log loss and squared error (float64)."""
    p = np.clip(scores.astype(np.float64), _EPS, 1.0 - _EPS)
    log_loss = -np.where(y == 1, np.log(p), np.log1p(-p))
    brier = (y - scores.astype(np.float64)) ** 2
    return log_loss, brier


@dataclass(frozen=True)
class RankIndex:
    """One model's scores split by class and sorted once.

    ``pos`` and ``neg`` are the scores of the positives and negatives in a canonical
    order shared by every model scored on the same rows; weights are given in that order.
    """

    pos_order: np.ndarray | None  # positives by descending score (None: already in order)
    neg_order: np.ndarray | None  # negatives by ascending score (None: already in order)
    group_last: np.ndarray  # position of the last positive of each tie group (sorted positives)
    neg_below: np.ndarray  # per group: number of negatives with a strictly lower score
    neg_at_or_below: np.ndarray  # per group: number of negatives with a lower or equal score
    pred_pos: np.ndarray  # positives predicted positive (canonical order)
    pred_neg: np.ndarray  # negatives predicted positive (canonical order)
    pos_ties: bool  # some positives share a score
    cross_ties: bool  # some positive shares a score with a negative
    neg_groups: np.ndarray  # per negative (canonical order): positive groups scoring above it
    pos_group: np.ndarray  # per sorted positive: its tie group (0 = highest score)
    pos_group_order: np.ndarray  # 0..n_pos-1 (the kernel's order when already sorted)

    @classmethod
    def build(cls, pos: np.ndarray, neg: np.ndarray, threshold: float) -> RankIndex:
        """Sort once (order among tied scores is irrelevant: ties are grouped)."""
        pos_order = _order(-pos)
        neg_order = _order(neg)
        pos_sorted = pos[pos_order]
        neg_sorted = neg[neg_order]
        group_last = np.append(np.flatnonzero(np.diff(pos_sorted) != 0), pos_sorted.size - 1)
        group_scores = pos_sorted[group_last]
        neg_below = np.searchsorted(neg_sorted, group_scores, side="left")
        neg_at_or_below = np.searchsorted(neg_sorted, group_scores, side="right")
        return cls(
            pos_order=None if _is_identity(pos_order) else pos_order,
            neg_order=None if _is_identity(neg_order) else neg_order,
            group_last=group_last,
            neg_below=neg_below,
            neg_at_or_below=neg_at_or_below,
            pred_pos=pos >= threshold,
            pred_neg=neg >= threshold,
            pos_ties=group_last.size < pos.size,
            cross_ties=bool(np.any(neg_at_or_below != neg_below)),
            neg_groups=group_last.size
            - np.searchsorted(group_scores[::-1], neg, side="right").astype(np.int64),
            pos_group=np.repeat(
                np.arange(group_last.size, dtype=np.int64), np.diff(group_last, prepend=-1)
            ),
            pos_group_order=np.arange(pos.size, dtype=np.int64),
        )

    def rank_metrics(
        self, w_pos: np.ndarray, w_neg: np.ndarray, compiled: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Weighted AUC and average precision for each row of ``(k, n)`` weight matrices.

        Weights must be whole numbers (counts); exact in float32 up to 2**24 rows. Without
        cross-class ties the compiled kernel (:mod:`model.gate.kernels`) computes the same
        numbers in two linear passes, without holding the GIL.
        """
        use_kernel = compiled and kernels.AVAILABLE and not self.cross_ties
        if use_kernel and w_pos.shape[1] and w_neg.shape[1]:
            order = self.pos_order if self.pos_order is not None else self.pos_group_order
            return kernels.rank_metrics(w_pos, w_neg, order, self.pos_group, self.neg_groups)
        wp = w_pos if self.pos_order is None else np.take(w_pos, self.pos_order, axis=1)
        k = wp.shape[0]
        tp = cumsum_rows(wp)  # weighted positives scoring >= each (sorted) positive
        if self.pos_ties:
            tp = np.take(tp, self.group_last, axis=1)
            d_tp = np.diff(tp, axis=1, prepend=np.zeros((k, 1), dtype=tp.dtype))
        else:
            d_tp = wp
        total_pos = tp[:, -1].astype(np.float64)
        if self.cross_ties or self.neg_order is None:  # sorted already: one scan is cheapest
            wn = w_neg if self.neg_order is None else np.take(w_neg, self.neg_order, axis=1)
            cum_neg = cumsum_rows(wn)  # cum_neg[:, j] = weight of the j + 1 lowest negatives
            total_neg = cum_neg[:, -1:].astype(np.float64)
            below = _prefix_at(cum_neg, self.neg_below)
            mid = below
            if self.cross_ties:
                mid = _prefix_at(cum_neg, self.neg_at_or_below)
                mid += below
                mid *= 0.5
        else:  # no gather of the negatives: scatter their weights onto the positive groups
            below, total_neg = self._negatives_below(w_neg)
            mid = below
        auc = np.einsum("ij,ij->i", d_tp, mid, dtype=np.float64) / (total_pos * total_neg[:, 0])
        # precision at each group: tp / (tp + negatives scoring >= group)
        denom = np.subtract(total_neg, below, out=mid if mid is not below else None)
        denom += tp
        np.maximum(denom, 1, out=denom)  # denom == 0 only where tp == 0 (counts are integers)
        np.divide(tp, denom, out=denom)
        ap = np.einsum("ij,ij->i", d_tp, denom, dtype=np.float64) / total_pos
        return auc, ap

    def _negatives_below(self, w_neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per row: the weight of negatives scoring below each positive group, and in all.

        Negative j counts for the ``neg_groups[j]`` groups scoring above it, so one weighted
        ``bincount`` over the groups and a suffix sum replace sorting the weights.
        """
        groups = self.group_last.size
        below = np.empty((w_neg.shape[0], groups), dtype=np.float64)
        total = np.empty((w_neg.shape[0], 1), dtype=np.float64)
        for row, out, tot in zip(w_neg, below, total, strict=True):
            per_group = np.bincount(self.neg_groups, weights=row, minlength=groups + 1)
            suffix = np.cumsum(per_group[::-1])[::-1]  # suffix[g] = weight of groups >= g
            out[:] = suffix[1:]
            tot[0] = suffix[0]
        return below, total


def _prefix_at(cum: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``cum`` summed over the first ``counts`` columns (0 where counts is 0), per row."""
    out = np.take(cum, np.maximum(counts - 1, 0), axis=1)
    zeros = counts == 0
    if zeros.any():
        out[:, zeros] = 0
    return out


def cumsum_rows(a: np.ndarray) -> np.ndarray:
    """Row-wise cumulative sum, one row at a time: numpy releases the GIL for 1-D scans
    (not for ``cumsum(axis=1)``), so bootstrap chunks scale across threads."""
    out = np.empty_like(a)
    for row, dest in zip(a, out, strict=True):
        np.cumsum(row, out=dest)
    return out


def _order(x: np.ndarray) -> np.ndarray:
    """Ascending order of ``x``; the identity when already sorted (no sort needed)."""
    if x.size < 2 or bool(np.all(x[1:] >= x[:-1])):
        return np.arange(x.size)
    return np.argsort(x)


def _is_identity(order: np.ndarray) -> bool:
    return bool(np.array_equal(order, np.arange(order.size)))


def threshold_metrics(
    tp: np.ndarray, fp: np.ndarray, n_pos: np.ndarray | float, n_neg: np.ndarray | float
) -> dict[str, np.ndarray]:
    """Accuracy, precision, recall, F1 from (weighted) confusion counts (zero_division=0)."""
    tp = np.asarray(tp, dtype=np.float64)
    fp = np.asarray(fp, dtype=np.float64)
    fn = n_pos - tp
    tn = n_neg - fp
    pred_pos = tp + fp
    f1_denom = 2 * tp + fp + fn
    return {
        "accuracy": (tp + tn) / (n_pos + n_neg),
        "precision": np.divide(tp, pred_pos, out=np.zeros_like(tp), where=pred_pos > 0),
        "recall": tp / n_pos,
        "f1": np.divide(2 * tp, f1_denom, out=np.zeros_like(tp), where=f1_denom > 0),
    }


def compute_metrics(y_true: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> dict:
    """All :data:`METRICS` for one model (float64, unit weights; equal to scikit-learn's)."""
    y = np.asarray(y_true).astype(np.int8)
    s = np.asarray(scores, dtype=np.float64)
    pos, neg = s[y == 1], s[y == 0]
    index = RankIndex.build(pos, neg, threshold)
    auc, ap = index.rank_metrics(np.ones((1, pos.size)), np.ones((1, neg.size)))
    out = {
        name: float(v[0])
        for name, v in threshold_metrics(
            np.array([index.pred_pos.sum()]), np.array([index.pred_neg.sum()]), pos.size, neg.size
        ).items()
    }
    log_loss, brier = row_losses(y, s)
    out.update(
        auc=float(auc[0]),
        log_loss=float(log_loss.mean()),
        average_precision=float(ap[0]),
        brier=float(brier.mean()),
    )
    return {name: out[name] for name in METRICS}


def improvement(metric: str, baseline: float, candidate: float) -> float:
    """candidate − baseline, sign flipped for lower-is-better metrics (positive = better)."""
    diff = candidate - baseline
    return diff if HIGHER_IS_BETTER[metric] else -diff


def relative_change(baseline: float, candidate: float) -> float | None:
    """(candidate − baseline) / |baseline|, or None when the baseline is 0."""
    return None if baseline == 0 else (candidate - baseline) / abs(baseline)


def curve_points(y_true: np.ndarray, scores: np.ndarray, max_points: int = 200) -> dict:
    """ROC and precision-recall curves at every distinct threshold (as scikit-learn's
    ``roc_curve(drop_intermediate=False)`` / ``precision_recall_curve``), downsampled."""
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-s)
    s_sorted, y_sorted = s[order], y[order]
    last = np.append(np.flatnonzero(s_sorted[1:] != s_sorted[:-1]), s.size - 1)
    tps = np.cumsum(y_sorted)[last].astype(np.float64)
    fps = (last + 1) - tps
    n_pos, n_neg = tps[-1], fps[-1]
    fpr = np.r_[0.0, fps / n_neg]
    tpr = np.r_[0.0, tps / n_pos]
    keep = _downsample_index(fpr.size, max_points)
    precision = np.r_[1.0, tps / (tps + fps)]  # recall ascending from (0, 1)
    recall = np.r_[0.0, tps / n_pos]
    keep_pr = _downsample_index(recall.size, max_points)
    return {
        "roc": {"fpr": fpr[keep].round(5).tolist(), "tpr": tpr[keep].round(5).tolist()},
        "pr": {
            "recall": recall[keep_pr].round(5).tolist(),
            "precision": precision[keep_pr].round(5).tolist(),
        },
    }


def roc_points(y_true: np.ndarray, scores: np.ndarray, max_points: int = 200) -> dict:
    """ROC curve (fpr, tpr), downsampled to about ``max_points`` points."""
    return curve_points(y_true, scores, max_points)["roc"]


def pr_points(y_true: np.ndarray, scores: np.ndarray, max_points: int = 200) -> dict:
    """Precision-recall curve, downsampled to about ``max_points`` points."""
    return curve_points(y_true, scores, max_points)["pr"]


def _downsample_index(n: int, max_points: int) -> np.ndarray:
    if n <= max_points:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_points).round().astype(np.int64))
