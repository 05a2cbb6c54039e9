"""Drift of one categorical column: chi-square test, PSI and Jensen–Shannon distance.

Chi-square test of homogeneity over the levels, PSI and Jensen–Shannon distance (base 2,
in [0, 1]); levels unseen in the reference are counted. Counts come from ``pd.factorize``
codes and ``np.bincount``, chunk by chunk (:class:`LevelCounts`): a column read in record
batches gives the counts, the levels and their order of the whole column in memory.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from model.drift.numeric import psi_of
from model.drift.results import FeatureDrift

MAX_LEVELS_SHOWN = 20

_MISSING_LEVEL = "<missing>"


def _key(level: Any) -> Any:
    """Normalise numpy scalars so equal levels compare and hash equal."""
    return level.item() if isinstance(level, np.generic) else level


class LevelCounts:
    """Counts per level of a column, added chunk by chunk: the levels in order of first
    appearance (a categorical's categories in their order, unused ones counted 0), as
    ``pd.factorize`` of the whole column gives them; missing values counted apart."""

    def __init__(self) -> None:
        self.levels: list[Any] = []
        self.counts: list[int] = []
        self.missing = 0
        self.rows = 0
        self._index: dict[Any, int] = {}

    @classmethod
    def of(cls, series: pd.Series) -> LevelCounts:
        counts = cls()
        counts.add(series)
        return counts

    def add(self, series: pd.Series) -> None:
        if isinstance(series.dtype, pd.CategoricalDtype):
            codes = np.asarray(series.cat.codes, dtype=np.int64)
            uniques: list[Any] = list(series.cat.categories)
        else:
            codes, u = pd.factorize(series, use_na_sentinel=True)
            uniques = list(u)
        chunk = np.bincount(codes[codes >= 0], minlength=len(uniques))
        self._add_levels(uniques, chunk.tolist())
        self.missing += int(codes.size - chunk.sum())
        self.rows += int(codes.size)

    def merge(self, later: LevelCounts) -> None:
        """Add the counts of the part of the column that follows (say counted on a Dask
        worker): the levels stay in order of first appearance over the whole column."""
        self._add_levels(later.levels, later.counts)
        self.missing += later.missing
        self.rows += later.rows

    def _add_levels(self, levels: list[Any], counts: list[int]) -> None:
        for level, count in zip(levels, counts, strict=True):
            i = self._index.setdefault(_key(level), len(self.levels))
            if i == len(self.levels):
                self.levels.append(level)
                self.counts.append(0)
            self.counts[i] += count

    def arrays(self) -> tuple[np.ndarray, list[Any]]:
        """Counts and levels, missing values as one extra last level when present."""
        counts = np.array(self.counts, dtype=np.int64)
        if self.missing:
            return np.append(counts, self.missing), [*self.levels, _MISSING_LEVEL]
        return counts, list(self.levels)


def categorical_drift(name: str, ref: pd.Series, cur: pd.Series) -> FeatureDrift:
    """Drift of one categorical column held in memory."""
    return counts_drift(name, LevelCounts.of(ref), LevelCounts.of(cur))


def counts_drift(name: str, ref: LevelCounts, cur: LevelCounts) -> FeatureDrift:
    """Drift of one categorical column from both sides' level counts."""
    r_counts, r_levels = ref.arrays()
    c_counts, c_levels = cur.arrays()
    keep = r_counts > 0
    r_counts = r_counts[keep]
    r_levels = [lvl for lvl, k in zip(r_levels, keep, strict=True) if k]
    index = {_key(lvl): i for i, lvl in enumerate(r_levels)}
    levels = list(r_levels)
    cur_aligned = np.zeros(len(levels), dtype=np.int64)
    unseen: list[tuple[Any, int]] = []
    for lvl, cnt in zip(c_levels, c_counts, strict=True):
        if cnt == 0:
            continue
        i = index.get(_key(lvl))
        if i is None:
            unseen.append((lvl, int(cnt)))
        else:
            cur_aligned[i] += cnt
    unseen.sort(key=lambda x: -x[1])
    ref_all = np.concatenate([r_counts, np.zeros(len(unseen), dtype=np.int64)])
    cur_all = np.concatenate([cur_aligned, np.array([u[1] for u in unseen], dtype=np.int64)])
    levels += [u[0] for u in unseen]
    n, m = int(ref_all.sum()), int(cur_all.sum())
    stat, p = _chi2(ref_all, cur_all)
    p_ref, p_cur = ref_all / n, cur_all / m
    mid = 0.5 * (p_ref + p_cur)
    js = math.sqrt(max(0.5 * (_kl2(p_ref, mid) + _kl2(p_cur, mid)), 0.0))
    shown = np.argsort(-(p_ref + p_cur), kind="stable")[:MAX_LEVELS_SHOWN]
    missing_ref = _missing_share(r_levels, r_counts, ref.rows)
    missing_cur = _missing_share(c_levels, c_counts, cur.rows)
    return FeatureDrift(
        name=name,
        kind="categorical",
        test="chi2",
        statistic=stat,
        p_value=p,
        psi=psi_of(p_ref, p_cur),
        distance=min(js, 1.0),
        distance_name="jensen_shannon",
        reference_missing=missing_ref,
        current_missing=missing_cur,
        unseen_levels=len(unseen),
        unseen_share=sum(u[1] for u in unseen) / m,
        unseen_examples=[str(u[0]) for u in unseen[:5]],
        summary={"reference_levels": float(len(r_levels)), "current_levels": float(len(c_levels))},
        histogram={
            "levels": [str(levels[i]) for i in shown],
            "reference": [float(p_ref[i]) for i in shown],
            "current": [float(p_cur[i]) for i in shown],
        },
    )


def _missing_share(levels: list[Any], counts: np.ndarray, total: int) -> float:
    if levels and levels[-1] == _MISSING_LEVEL and total:
        return float(counts[-1]) / total
    return 0.0


def _kl2(p: np.ndarray, q: np.ndarray) -> float:
    nz = p > 0
    return float(np.sum(p[nz] * np.log2(p[nz] / q[nz])))


def _chi2(ref: np.ndarray, cur: np.ndarray) -> tuple[float, float]:
    """Chi-square test of homogeneity of a 2 x K table (levels with any count)."""
    table = np.vstack([ref, cur]).astype(np.float64)
    table = table[:, table.sum(axis=0) > 0]
    k = table.shape[1]
    if k < 2:
        return 0.0, 1.0
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    stat = float(np.sum((table - expected) ** 2 / expected))
    return stat, float(stats.chi2.sf(stat, k - 1))
