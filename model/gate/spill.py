"""The holdout spilled to disk: the gate's statistics in bounded memory.

A holdout too large to score and measure in memory is scored chunk by chunk
(:class:`SpillWriter`): each chunk's labels and both models' scores are appended to one file
per column, read back as memory-mapped arrays a chunk at a time (:class:`SpilledRows`).
Every statistic of :func:`model.gate.measure.measure` is then computed over them in passes
whose memory is bounded by the budget, not by the rows:

- in row order: confusion counts, losses and their class-wise variance (merged chunk by
  chunk, Chan's formulas), McNemar's counts, the reliability bins;
- per model, in ascending score order (an external merge sort of (score, row, label)
  records, :func:`model.external.sort_to_file`): the AUC, average precision, curve
  points, and DeLong's placements, written by row range to bucket files and read back in
  row order, so both models' placements of each row meet for the covariance;
- the Poisson bootstrap (:mod:`model.gate.resample`), whose counter-based weights make it
  the same, bit for bit, as the in-memory one on the same rows.

What is equal to the in-memory path: the bootstrap, the placements, counts, curve points;
means and covariances are summed in another order (equal to about 1e-15, relatively).
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from model.errors import ComparisonInputError
from model.external import SortedFile, sort_to_file
from model.gate.bootstrap import BootstrapResult, _fresh_seed, bootstrap_deltas, ran_on
from model.gate.metrics import (
    HIGHER_IS_BETTER,
    METRICS,
    _downsample_index,
    row_losses,
    threshold_metrics,
)
from model.gate.resample import resample_keys
from model.gate.stats import McNemarResult, mcnemar_counts

RECORD = np.dtype([("score", "<f8"), ("row", "<i8"), ("y", "i1")])
"""A row in one model's score order: its score, its row number and its label."""

_COLUMNS = {"y": np.int8, "sb": np.float64, "sc": np.float64}
_BYTES_PER_ROW = 256
"""Working bytes per row of a pass (the chunk's columns, losses, records and temporaries):
a chunk holds ``budget // _BYTES_PER_ROW`` rows."""
MIN_CHUNK = 1024


class Moments:
    """Count, means and co-moments of vectors added in chunks (Chan et al.'s merge)."""

    def __init__(self, width: int) -> None:
        self.n = 0
        self.mean = np.zeros(width)
        self.m2 = np.zeros((width, width))

    def add(self, x: np.ndarray) -> None:
        nb = x.shape[0]
        if nb == 0:
            return
        mb = x.mean(axis=0)
        d = x - mb
        delta = mb - self.mean
        n = self.n + nb
        self.m2 += d.T @ d + np.outer(delta, delta) * (self.n * nb / n)
        self.mean += delta * (nb / n)
        self.n = n

    def cov(self) -> np.ndarray:
        """The sample covariance (n − 1 in the denominator)."""
        return self.m2 / max(self.n - 1, 1)


class SpillWriter:
    """Appends checked chunks of (labels, baseline scores, candidate scores) to a folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        # held open across writes; closed by close() or abort()
        self.files = {name: open(self.folder / f"{name}.bin", "wb") for name in _COLUMNS}  # noqa: SIM115
        self.size = 0
        self.positives = 0

    def write(self, y: np.ndarray, sb: np.ndarray, sc: np.ndarray) -> None:
        for name, values in (("y", y), ("sb", sb), ("sc", sc)):
            np.ascontiguousarray(values, dtype=_COLUMNS[name]).tofile(self.files[name])
        self.size += int(y.size)
        self.positives += int(np.count_nonzero(y))

    def close(self, budget: int) -> SpilledRows:
        for f in self.files.values():
            f.close()
        return SpilledRows(self.folder, self.size, self.positives, budget)

    def abort(self) -> None:
        for f in self.files.values():
            f.close()
        shutil.rmtree(self.folder, ignore_errors=True)


class SpilledRows:
    """:class:`model.gate.resample.Rows` over a spilled folder, in chunks of about
    ``budget`` bytes of working memory."""

    def __init__(self, folder: Path, size: int, positives: int, budget: int) -> None:
        self.folder = Path(folder)
        self.size = size
        self.positives = positives
        self.negatives = size - positives
        self.budget = budget
        self.chunk = max(MIN_CHUNK, budget // _BYTES_PER_ROW)
        self._sorted: dict[int, SortedFile] = {}

    def _read(self, name: str, a: int, b: int) -> np.ndarray:
        """Rows ``a:b`` of one column: mapped, copied, unmapped (the pages leave the
        process with the map)."""
        mapped = np.memmap(self.folder / f"{name}.bin", dtype=_COLUMNS[name], mode="r")
        try:
            return np.array(mapped[a:b])
        finally:
            mapped._mmap.close()  # type: ignore[attr-defined]

    def row_chunks(self) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
        for a in range(0, self.size, self.chunk):
            b = min(a + self.chunk, self.size)
            yield a, self._read("y", a, b), self._read("sb", a, b), self._read("sc", a, b)

    def sorted_file(self, model: int) -> SortedFile:
        """Model ``model``'s rows as records sorted by score (sorted once, on first use)."""
        if model not in self._sorted:
            name = ("sb", "sc")[model]

            def records() -> Iterator[np.ndarray]:
                for a in range(0, self.size, self.chunk):
                    b = min(a + self.chunk, self.size)
                    rec = np.empty(b - a, dtype=RECORD)
                    rec["score"] = self._read(name, a, b)
                    rec["row"] = np.arange(a, b)
                    rec["y"] = self._read("y", a, b)
                    yield rec

            path = self.folder / f"sorted-{name}.bin"
            self._sorted[model] = sort_to_file(records(), path, self.budget // 2, RECORD)
            self._sorted[model].block = self.chunk
        return self._sorted[model]

    def sorted_chunks(self, model: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        for rec in self.sorted_file(model).blocks():
            yield rec["row"], rec["score"], rec["y"]


# ------------------------------------------------------------------ passes in score order


@dataclass
class Groups:
    """A chunk of complete tie groups of one model, ascending: per row its label and row;
    per group its score, positives and negatives, and those strictly below it."""

    rows: np.ndarray
    y: np.ndarray
    group: np.ndarray  # per row: its group's index within the chunk
    first: int  # the chunk's first group's index among all groups
    score: np.ndarray
    pos_in: np.ndarray
    neg_in: np.ndarray
    pos_below: np.ndarray
    neg_below: np.ndarray


def tie_groups(rows: SpilledRows, model: int) -> Iterator[Groups]:
    """Model ``model``'s rows in ascending score order, a chunk of complete tie groups at a
    time (a group cut by a chunk's end is carried into the next chunk)."""
    carry = np.empty(0, dtype=RECORD)
    pos_below = neg_below = 0
    first = 0
    blocks = rows.sorted_file(model).blocks()
    while True:
        block = next(blocks, None)
        rec = carry if block is None else np.concatenate((carry, block))
        if rec.size == 0:
            return
        s = rec["score"]
        starts = np.flatnonzero(s[1:] != s[:-1]) + 1
        cut = rec.size if block is None or starts.size == 0 else int(starts[-1])
        if block is not None and starts.size == 0:
            carry = rec  # one group so far: its end is in a later block
            continue
        done, carry = rec[:cut], rec[cut:]
        starts = starts[starts < cut]
        group = np.zeros(cut, dtype=np.int64)
        group[starts] = 1
        np.cumsum(group, out=group)
        y = done["y"].astype(np.int64)
        pos_in = np.bincount(group, weights=y).astype(np.int64)
        neg_in = np.bincount(group).astype(np.int64) - pos_in
        pos_before = pos_below + np.cumsum(pos_in) - pos_in
        neg_before = neg_below + np.cumsum(neg_in) - neg_in
        yield Groups(
            rows=done["row"],
            y=done["y"],
            group=group,
            first=first,
            score=done["score"][np.r_[0, starts]],
            pos_in=pos_in,
            neg_in=neg_in,
            pos_below=pos_before,
            neg_below=neg_before,
        )
        pos_below += int(pos_in.sum())
        neg_below += int(neg_in.sum())
        first += pos_in.size
        if block is None:
            return


@dataclass
class RankSummary:
    """One model's rank statistics from a pass in score order."""

    auc: float
    average_precision: float
    groups: int  # distinct scores


def placements_pass(rows: SpilledRows, model: int, buckets: int, span: int) -> RankSummary:
    """One pass in score order: the AUC, average precision and number of tie groups, and
    DeLong's placement of every row (V10 for positives, V01 for negatives, the in-memory
    formulas), appended as (row, placement) to ``buckets`` files by row range of ``span``."""
    m, n = rows.positives, rows.negatives
    auc_sum = ap_sum = 0.0
    groups = 0
    paths = [_bucket(rows, model, p) for p in range(buckets)]
    for p in paths:
        p.write_bytes(b"")
    for g in tie_groups(rows, model):
        neg_half = g.neg_below + 0.5 * g.neg_in
        auc_sum += float(np.dot(g.pos_in, neg_half))
        tp = m - g.pos_below
        fp = n - g.neg_below
        has = g.pos_in > 0
        ap_sum += float(np.dot(g.pos_in[has], tp[has] / np.maximum(tp[has] + fp[has], 1)))
        groups += g.pos_in.size
        v_pos = neg_half / n
        v_neg = 1.0 - (g.pos_below + 0.5 * g.pos_in) / m
        v = np.where(g.y == 1, v_pos[g.group], v_neg[g.group])
        which = g.rows // span
        order = np.argsort(which, kind="stable")
        bounds = np.searchsorted(which[order], np.arange(buckets + 1))
        for b in range(buckets):
            pick = order[bounds[b] : bounds[b + 1]]
            if pick.size:
                with open(paths[b], "ab") as f:
                    pair = np.empty(pick.size, dtype=[("row", "<i8"), ("v", "<f8")])
                    pair["row"], pair["v"] = g.rows[pick], v[pick]
                    pair.tofile(f)
    return RankSummary(auc_sum / (m * n), ap_sum / m, groups)


def _bucket(rows: SpilledRows, model: int, p: int) -> Path:
    return rows.folder / f"placements-{model}-{p}.bin"


def delong_spilled(
    rows: SpilledRows,
) -> tuple[tuple[float, float], np.ndarray, tuple[RankSummary, RankSummary]]:
    """DeLong's AUCs and their 2×2 covariance over spilled rows (the same placements as in
    memory; :func:`model.gate.stats.delong_from` makes the test), with both models' rank
    summaries."""
    m, n = rows.positives, rows.negatives
    if m < 2 or n < 2:
        raise ValueError("DeLong's test needs at least two positives and two negatives")
    span = rows.chunk
    buckets = max(1, math.ceil(rows.size / span))
    ranks = tuple(placements_pass(rows, model, buckets, span) for model in (0, 1))
    pos, neg = Moments(2), Moments(2)
    for p in range(buckets):
        a, b = p * span, min((p + 1) * span, rows.size)
        v = np.empty((b - a, 2))
        for model in (0, 1):
            path = _bucket(rows, model, p)
            pair = np.fromfile(path, dtype=[("row", "<i8"), ("v", "<f8")])
            v[pair["row"] - a, model] = pair["v"]
            path.unlink()
        y = rows._read("y", a, b) == 1
        pos.add(v[y])
        neg.add(v[~y])
    s = pos.cov() / m + neg.cov() / n
    return (float(pos.mean[0]), float(pos.mean[1])), s, ranks  # type: ignore[return-value]


def curve_pass(rows: SpilledRows, model: int, groups: int, max_points: int) -> dict:
    """ROC and precision-recall points at the distinct thresholds the in-memory
    :func:`model.gate.metrics.curve_points` keeps (descending group ``d`` is point d + 1)."""
    keep = _downsample_index(groups + 1, max_points)
    want = np.sort(groups - keep[keep > 0])  # ascending indexes of the kept groups
    tps, fps = np.empty(want.size), np.empty(want.size)
    for g in tie_groups(rows, model):
        idx = np.arange(g.first, g.first + g.pos_in.size)
        hit = np.searchsorted(want, idx)
        found = (hit < want.size) & (want[np.minimum(hit, want.size - 1)] == idx)
        where = hit[found]
        tps[where] = rows.positives - g.pos_below[found]
        fps[where] = rows.negatives - g.neg_below[found]
    tps, fps = tps[::-1], fps[::-1]  # descending order, as the kept points
    n_pos, n_neg = float(rows.positives), float(rows.negatives)
    fpr = np.r_[0.0, fps / n_neg] if keep[0] == 0 else fps / n_neg
    tpr = np.r_[0.0, tps / n_pos] if keep[0] == 0 else tps / n_pos
    precision = np.r_[1.0, tps / (tps + fps)] if keep[0] == 0 else tps / (tps + fps)
    return {
        "roc": {"fpr": fpr.round(5).tolist(), "tpr": tpr.round(5).tolist()},
        "pr": {"recall": tpr.round(5).tolist(), "precision": precision.round(5).tolist()},
    }


# ------------------------------------------------------------------ the pass in row order


@dataclass
class RowStats:
    """What a pass in row order gives: counts, losses and their class-wise moments."""

    n: int = 0
    n_pos: int = 0
    predicted: dict[str, list[int]] = field(default_factory=lambda: {"b": [0, 0], "c": [0, 0]})
    loss_sums: np.ndarray = field(default_factory=lambda: np.zeros((2, 2)))  # model × (ll, br)
    loss_moments: tuple[Moments, Moments] = field(default_factory=lambda: (Moments(2), Moments(2)))
    only_b: int = 0  # McNemar: only the baseline right
    only_c: int = 0
    bins: np.ndarray = field(default_factory=lambda: np.zeros((2, 3, 10)))  # rows, Σs, Σy
    identical: bool = True
    changed: int = 0


def row_pass(rows: SpilledRows, tb: float, tc: float) -> RowStats:
    out = RowStats()
    edges = np.linspace(0.0, 1.0, 11)
    for _, y, sb, sc in rows.row_chunks():
        out.n += y.size
        out.n_pos += int(np.count_nonzero(y))
        pos = y == 1
        pb, pc = sb >= tb, sc >= tc
        for key, pred in (("b", pb), ("c", pc)):
            out.predicted[key][0] += int(np.count_nonzero(pred & pos))
            out.predicted[key][1] += int(np.count_nonzero(pred & ~pos))
        losses = [row_losses(y, s) for s in (sb, sc)]
        for i, (ll, br) in enumerate(losses):
            out.loss_sums[i] += (ll.sum(), br.sum())
        d = np.column_stack((losses[0][0] - losses[1][0], losses[0][1] - losses[1][1]))
        out.loss_moments[0].add(d[~pos])
        out.loss_moments[1].add(d[pos])
        ok_b, ok_c = pb == pos, pc == pos
        out.only_b += int(np.count_nonzero(ok_b & ~ok_c))
        out.only_c += int(np.count_nonzero(~ok_b & ok_c))
        for i, s in enumerate((sb, sc)):
            which = np.clip(np.searchsorted(edges, s, side="right") - 1, 0, 9)
            out.bins[i, 0] += np.bincount(which, minlength=10)
            out.bins[i, 1] += np.bincount(which, weights=s, minlength=10)
            out.bins[i, 2] += np.bincount(which, weights=y.astype(np.float64), minlength=10)
        out.identical = out.identical and bool(np.array_equal(sb, sc))
        out.changed += int(np.count_nonzero(pb != pc))
    return out


@dataclass
class SpilledMeasure:
    """Everything :func:`model.gate.measure.measure` needs, computed over spilled rows."""

    stats: RowStats
    metrics: tuple[dict[str, float], dict[str, float]]  # baseline, candidate
    boot: BootstrapResult | None
    delong_s: np.ndarray  # DeLong's 2×2 covariance of the AUCs
    delong_aucs: tuple[float, float]
    losses: dict[str, tuple[float, float]]
    mcnemar: McNemarResult
    curves: tuple[dict, dict]


def measure_spilled(
    rows: SpilledRows,
    tb: float,
    tc: float,
    *,
    n_bootstrap: int,
    seed: int | None,
    n_jobs: int | None = None,
    max_curve_points: int = 200,
    bootstrap: bool = True,
    device: Any = None,
) -> SpilledMeasure:
    """Every statistic of the gate over spilled rows (each class needs two rows or more;
    ``bootstrap=False``: all but the bootstrap, for a candidate measured alone; ``device``: a
    torch device for the bootstrap, :mod:`model.gate.device`)."""
    if min(rows.positives, rows.negatives) < 2:
        raise ComparisonInputError("a spilled comparison needs two rows of each class")
    stats = row_pass(rows, tb, tc)
    aucs, cov, ranks = delong_spilled(rows)
    n_pos, n_neg = stats.n_pos, stats.n - stats.n_pos
    metrics = []
    for i, (key, rank) in enumerate(zip(("b", "c"), ranks, strict=True)):
        tp, fp = stats.predicted[key]
        thr = threshold_metrics(np.array([tp]), np.array([fp]), n_pos, n_neg)
        m = {name: float(v[0]) for name, v in thr.items()}
        m.update(
            auc=rank.auc,
            average_precision=rank.average_precision,
            log_loss=float(stats.loss_sums[i, 0] / stats.n),
            brier=float(stats.loss_sums[i, 1] / stats.n),
        )
        metrics.append({name: m[name] for name in METRICS})
    mb, mc = metrics
    boot = None
    if bootstrap:
        seed = _fresh_seed() if seed is None else int(seed)
        keys = resample_keys(seed, n_bootstrap)
        deltas = bootstrap_deltas(rows, keys, (tb, tc), n_jobs, device)
        improvements = {k: (mc[k] - mb[k]) * (1 if HIGHER_IS_BETTER[k] else -1) for k in METRICS}
        boot = BootstrapResult(
            improvements,
            {name: deltas[:, j] for j, name in enumerate(METRICS)},
            n_bootstrap,
            seed,
            scheme="poisson",
            device=ran_on(device),
        )
    losses = {}
    for j, name in enumerate(("log_loss", "brier")):
        var = sum(mo.n * mo.cov()[j, j] for mo in stats.loss_moments if mo.n > 1)
        mean = sum(mo.n * mo.mean[j] for mo in stats.loss_moments) / stats.n
        losses[name] = (float(mean), math.sqrt(var) / stats.n)
    curves = tuple(
        curve_pass(rows, model, ranks[model].groups, max_curve_points) for model in (0, 1)
    )
    return SpilledMeasure(
        stats=stats,
        metrics=(mb, mc),
        boot=boot,
        delong_s=cov,
        delong_aucs=aucs,
        losses=losses,
        mcnemar=mcnemar_counts(stats.only_b, stats.only_c, "greater"),
        curves=curves,  # type: ignore[arg-type]
    )
