"""The gate's statistics on a torch device (CUDA when one is lent): the Poisson bootstrap of
:mod:`model.gate.resample` and DeLong's placements of :mod:`model.gate.stats`.

The same numbers as the CPU path, computed another way:

- each resample's weight of each row is the same pure function of ``(key, row)`` as
  :func:`model.gate.kernels._weight` (SplitMix64 of a counter, then a Poisson(1) count from
  the same 16-bit table), in int64 tensor arithmetic: multiplication and addition wrap modulo
  2^64 as uint64's do, and right shifts are made logical by a mask. The weights are equal,
  bit for bit (a test compares them with :func:`model.gate.kernels.reference_weights`);
- pass 1 (the confusion counts, the loss sums, each resample's class totals) is a matrix
  product per class over row chunks; pass 2 (AUC and average precision) sums each tie group's
  weighted positives and negatives with ``index_add_`` and carries the counts below a group
  with a cumulative sum, chunk to chunk, a tie group never split between chunks.

Every sum of integer-valued terms (weights, confusion counts, the AUC's half-integer
products) is exact in float64 whatever the order, so the threshold metrics and the AUC are
equal to the CPU path's bit for bit. The log loss, Brier and average-precision sums add
fractions in another order (blocks on a GPU, rows in order on the CPU): they agree to about
1e-13 of the value, far below any margin a decision reads, and the decisions are the same (the
tests compare both paths, decision by decision). The rows' scores themselves are the models'
scores, computed where the models serve them (the CPU); only the statistics move.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from model.errors import ComparisonInputError
from model.gate.resample import ArrayRows, Rows, improvements, row_columns

ELEMENTS = 1 << 24
"""Resamples × rows per chunk on the device (a 128 MiB float64 weight matrix)."""


def _signed(value: int) -> int:
    """A uint64 constant as the int64 with the same bits."""
    return value - (1 << 64) if value >= 1 << 63 else value


_GAMMA = _signed(0x9E3779B97F4A7C15)
_MIX1 = _signed(0xBF58476D1CE4E5B9)
_MIX2 = _signed(0x94D049BB133111EB)


def resolve(device: str) -> torch.device | None:
    """The torch device the gate's statistics run on, or None for the CPU kernels."""
    if device == "cpu":
        return None
    available = torch.cuda.is_available()
    if device == "cuda" and not available:
        raise ComparisonInputError("device 'cuda' requested for the gate but CUDA is not available")
    return torch.device("cuda") if available else None


def weights(keys: torch.Tensor, rows: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """``(k, n)`` float64 Poisson(1) weights of ``rows`` (int64) in the resamples ``keys``
    (int64 holding the uint64 keys' bits): :func:`model.gate.kernels._weight`, on tensors."""
    z = (rows >> 2).add_(1).mul_(_GAMMA)
    z = keys[:, None] + z[None, :]
    for shift, mix in ((30, _MIX1), (27, _MIX2)):
        z.bitwise_xor_((z >> shift).bitwise_and_((1 << (64 - shift)) - 1)).mul_(mix)
    z.bitwise_xor_((z >> 31).bitwise_and_((1 << 33) - 1))
    z = (z >> ((rows & 3) * 16)[None, :]).bitwise_and_(0xFFFF)
    return table[z]


def device_deltas(
    rows: Rows,
    keys: np.ndarray,
    table: np.ndarray,
    baseline_threshold: float,
    candidate_threshold: float,
    device: torch.device,
) -> np.ndarray:
    """:func:`model.gate.resample.poisson_deltas` computed on ``device``: the same
    ``(len(keys), len(METRICS))`` improvements."""
    on = _On(device, keys, table)
    total = torch.zeros((2, 5, on.k), dtype=torch.float64, device=device)
    for start, y, sb, sc in rows.row_chunks():
        cols = row_columns(y, sb, sc, baseline_threshold, candidate_threshold)
        for a in range(0, y.size, on.span):
            b = min(a + on.span, y.size)
            w = on.weights(torch.arange(start + a, start + b, device=device))
            y_t = on.tensor(y[a:b].astype(np.float64))[:, None]
            c_t = on.tensor(cols[a:b])
            total[1] += (c_t * y_t).T @ w.T  # a row of the other class adds exact zeros
            total[0] += (c_t * (1.0 - y_t)).T @ w.T
    totals = (total[1, 4], total[0, 4])
    auc, ap = {}, {}
    for model in (0, 1):
        auc[model], ap[model] = _sweep(on, _whole_groups(_sorted(rows, model, on)), totals)
    return improvements(total.cpu().numpy(), auc, ap)


class _On:
    """The resamples' keys and the Poisson table on the device, and the chunk size."""

    def __init__(self, device: torch.device, keys: np.ndarray, table: np.ndarray) -> None:
        self.device = device
        bits = np.ascontiguousarray(keys, dtype=np.uint64).view(np.int64)
        self.keys = torch.from_numpy(bits).to(device)
        self.table = torch.from_numpy(np.asarray(table, dtype=np.float64)).to(device)
        self.k = int(bits.size)
        self.span = max(1, ELEMENTS // max(1, self.k))

    def weights(self, rows: torch.Tensor) -> torch.Tensor:
        return weights(self.keys, rows, self.table)

    def tensor(self, values: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(values)).to(self.device)


Chunk = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
"""(rows (int64), scores (float64), y (int8)) on the device, in ascending score order."""


def _sorted(rows: Rows, model: int, on: _On) -> Iterator[Chunk]:
    """Model ``model``'s rows in ascending score order, in chunks of about ``on.span`` rows:
    sorted on the device when they are in memory, else as the rows' own sorted chunks."""
    if isinstance(rows, ArrayRows):
        labels = on.tensor(rows.y)
        ordered, order = torch.sort(on.tensor(rows.scores[model]))
        for a in range(0, rows.size, on.span):
            ids = order[a : a + on.span]
            yield ids, ordered[a : a + on.span], labels[ids]
        return
    for row_ids, scores, y in rows.sorted_chunks(model):
        for a in range(0, row_ids.size, on.span):
            b = a + on.span
            ids = on.tensor(row_ids[a:b].astype(np.int64))
            yield ids, on.tensor(scores[a:b]), on.tensor(y[a:b])


def _whole_groups(chunks: Iterator[Chunk]) -> Iterator[Chunk]:
    """The same rows in chunks that never split a tie group: the last group of each chunk is
    held back and joins the next one."""
    held: Chunk | None = None
    for chunk in chunks:
        if chunk[1].numel() == 0:
            continue
        if held is not None:
            chunk = tuple(torch.cat((h, c)) for h, c in zip(held, chunk, strict=True))  # type: ignore[assignment]
        scores = chunk[1]
        cut = int(torch.searchsorted(scores, scores[-1:], right=False)[0])
        if cut > 0:
            yield tuple(part[:cut] for part in chunk)  # type: ignore[misc]
        held = tuple(part[cut:] for part in chunk)  # type: ignore[assignment]
    if held is not None:
        yield held


def _sweep(
    on: _On, chunks: Iterator[Chunk], totals: tuple[torch.Tensor, torch.Tensor]
) -> tuple[np.ndarray, np.ndarray]:
    """Each resample's weighted AUC (negatives below + ½ tied) and average precision of one
    model, over its rows in ascending score order (chunks of whole tie groups)."""
    total_pos, total_neg = totals
    zeros = torch.zeros(on.k, dtype=torch.float64, device=on.device)
    neg_below, pos_below, auc, ap = zeros.clone(), zeros.clone(), zeros.clone(), zeros.clone()
    for ids, scores, y in chunks:
        w = on.weights(ids)
        starts = torch.ones(scores.numel(), dtype=torch.bool, device=on.device)
        starts[1:] = scores[1:] != scores[:-1]
        group = torch.cumsum(starts, 0) - 1
        n_groups = int(group[-1]) + 1
        pos = y == 1
        d_tp = zeros.new_zeros((on.k, n_groups)).index_add_(1, group[pos], w[:, pos])
        d_fp = zeros.new_zeros((on.k, n_groups)).index_add_(1, group[~pos], w[:, ~pos])
        below_n = neg_below[:, None] + (torch.cumsum(d_fp, 1) - d_fp)
        below_p = pos_below[:, None] + (torch.cumsum(d_tp, 1) - d_tp)
        auc += (d_tp * (below_n + 0.5 * d_fp)).sum(1)
        tp = total_pos[:, None] - below_p
        ap += (d_tp * (tp / torch.clamp(tp + total_neg[:, None] - below_n, min=1.0))).sum(1)
        neg_below += d_fp.sum(1)
        pos_below += d_tp.sum(1)
    auc = auc / (total_pos * total_neg)
    ap = ap / total_pos
    return auc.cpu().numpy(), ap.cpu().numpy()


def placements(
    scores: np.ndarray, is_pos: np.ndarray, device: torch.device
) -> tuple[float, torch.Tensor, torch.Tensor]:
    """:func:`model.gate.stats._placements` on ``device``: the AUC and the placements V10 of
    the positives and V01 of the negatives (one sort)."""
    s = torch.from_numpy(np.ascontiguousarray(scores, dtype=np.float64)).to(device)
    pos = torch.from_numpy(np.ascontiguousarray(is_pos, dtype=np.bool_)).to(device)
    m = int(pos.sum())
    n = pos.numel() - m
    xs, order = torch.sort(s)
    _, sizes = torch.unique_consecutive(xs, return_counts=True)
    ends = torch.cumsum(sizes, 0)
    starts = ends - sizes
    cum_pos = torch.cat((sizes.new_zeros(1), torch.cumsum(pos[order].to(torch.int64), 0)))
    pos_before = cum_pos[starts]
    pos_in = cum_pos[ends] - pos_before
    neg_before, neg_in = starts - pos_before, sizes - pos_in
    mid_all = (starts + ends + 1).double() / 2.0
    v_pos = (mid_all - (pos_before.double() + (pos_in + 1).double() / 2.0)) / n
    v_neg = 1.0 - (mid_all - (neg_before.double() + (neg_in + 1).double() / 2.0)) / m
    v = torch.empty_like(s)
    v[order] = torch.where(
        pos[order], v_pos.repeat_interleave(sizes), v_neg.repeat_interleave(sizes)
    )
    return float(v[pos].mean()), v[pos], v[~pos]


def delong_parts(
    y: np.ndarray, sb: np.ndarray, sc: np.ndarray, device: torch.device
) -> tuple[float, float, np.ndarray]:
    """Both AUCs and the 2×2 covariance ``S10/m + S01/n`` of DeLong's test, on ``device``
    (:func:`model.gate.stats.delong_from` finishes the test)."""
    is_pos = np.asarray(y) == 1
    m, n = int(is_pos.sum()), int(is_pos.size - is_pos.sum())
    a_b, vp_b, vn_b = placements(sb, is_pos, device)
    a_c, vp_c, vn_c = placements(sc, is_pos, device)
    s = torch.cov(torch.stack((vp_b, vp_c))) / m + torch.cov(torch.stack((vn_b, vn_c))) / n
    return a_b, a_c, s.cpu().numpy()
