"""Exact order statistics of columns too large to hold, in a few passes over the data.

A radix selection over 64-bit keys that sort as the values do (:func:`float_keys`,
:func:`int_keys`). Each statistic starts with no known leading bits. A pass over the data
counts, for each statistic still open, the keys that share its known bits by their next
:data:`STEP` bits, and narrows the statistic to the one bucket that holds its rank. Once the
keys of its bucket fit in ``cap`` values, the next pass keeps them and the statistic is
picked among them (``np.partition``); once all 64 bits are known, the key is the value. So
at most four counting passes and one collecting pass, usually two in all, each holding
65,536 counters per open statistic, or at most ``cap`` values.

:func:`order_statistics` takes a callable that reads the data again at each call (a pass)
and yields, chunk by chunk, each column's keys: the prepared data's medians and a time
split's cuts use it (:mod:`model.data.stream_prepare`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np

STEP = 16
"""Bits a counting pass resolves (65,536 buckets per open statistic)."""
_SIGN = np.uint64(1 << 63)

Passes = Callable[[], Iterable[Mapping[str, np.ndarray]]]
"""Reads the data once per call: chunks of ``{column: keys}`` (uint64), in any sizes."""


def float_keys(values: np.ndarray) -> np.ndarray:
    """uint64 keys in the order of float64 ``values`` (no NaN): the sign bit set for
    non-negative numbers, every bit flipped for negative ones."""
    bits = np.ascontiguousarray(values, dtype=np.float64).view(np.uint64)
    return np.where(bits & _SIGN, ~bits, bits | _SIGN)


def key_floats(keys: np.ndarray) -> np.ndarray:
    """The float64 values of :func:`float_keys`' keys."""
    keys = np.asarray(keys, dtype=np.uint64)
    return np.where(keys & _SIGN, keys ^ _SIGN, ~keys).view(np.float64)


def int_keys(values: np.ndarray) -> np.ndarray:
    """uint64 keys in the order of int64 ``values``."""
    return np.ascontiguousarray(values, dtype=np.int64).view(np.uint64) ^ _SIGN


def key_ints(keys: np.ndarray) -> np.ndarray:
    """The int64 values of :func:`int_keys`' keys."""
    return (np.asarray(keys, dtype=np.uint64) ^ _SIGN).view(np.int64)


@dataclass
class _Open:
    """One statistic being narrowed: its rank among the keys with ``prefix`` as their
    leading ``bits`` bits, and how many keys have it (None: not counted yet)."""

    rank: int
    prefix: int = 0
    bits: int = 0
    count: int | None = None

    def matching(self, keys: np.ndarray) -> np.ndarray:
        if self.bits == 0:
            return keys
        return keys[(keys >> np.uint64(64 - self.bits)) == np.uint64(self.prefix)]

    def bucket(self, keys: np.ndarray) -> np.ndarray:
        """The next ``STEP`` bits of ``keys`` (those with the prefix)."""
        shift = np.uint64(64 - self.bits - STEP)
        return ((keys >> shift) & np.uint64((1 << STEP) - 1)).astype(np.intp)


Stat = tuple[str, int]
"""A statistic: its column and its rank."""
Group = tuple[str, int, int]
"""Statistics narrowed to one bucket: their column, known leading bits and their number."""
Scan = Callable[
    [dict[Stat, "_Open"], set[Group]],
    tuple[dict[Stat, np.ndarray], dict[Group, list[np.ndarray]]],
]
"""One pass: ``(counting, groups) -> (histograms, kept keys)`` (see :func:`scan`)."""


def scan(
    chunks: Iterable[Mapping[str, np.ndarray]], counting: dict[Stat, _Open], groups: set[Group]
) -> tuple[dict[Stat, np.ndarray], dict[Group, list[np.ndarray]]]:
    """One pass over ``chunks``: for each counting statistic, the histogram of its keys'
    next bits; for each group, the keys it keeps. Passes over parts of the data (say on Dask
    workers) add their histograms and concatenate their kept keys."""
    hists = {s: np.zeros(1 << STEP, dtype=np.int64) for s in counting}
    kept: dict[Group, list[np.ndarray]] = {g: [] for g in groups}
    for chunk in chunks:
        for name, keys in chunk.items():
            keys = np.asarray(keys, dtype=np.uint64)
            if keys.size == 0:
                continue
            for g, pieces in kept.items():
                if g[0] == name:
                    pieces.append(_Open(0, g[1], g[2]).matching(keys))
            for s, o in counting.items():
                if s[0] == name:
                    hists[s] += np.bincount(o.bucket(o.matching(keys)), minlength=1 << STEP)
    return hists, kept


def order_statistics(
    passes: Passes, wanted: Mapping[str, Iterable[int]], cap: int, scanner: Scan | None = None
) -> dict[str, dict[int, int]]:
    """``{column: {k: key}}``: the key of rank ``k`` (0-based, ascending) of each column's
    keys, for every ``k`` in ``wanted[column]``, each in ``[0, n)`` for the column's ``n``
    keys. ``cap``: the most keys a collecting pass holds per statistic. ``scanner``: makes a
    pass its own way (default: :func:`scan` of ``passes()``)."""
    found: dict[str, dict[int, int]] = {name: {} for name in wanted}
    open_: dict[Stat, _Open] = {(name, k): _Open(int(k)) for name, ks in wanted.items() for k in ks}
    while open_:
        counting = {s: o for s, o in open_.items() if o.count is None or o.count > cap}
        # statistics narrowed to one bucket share what they keep (a median's two middles)
        groups = {(s[0], o.prefix, o.bits) for s, o in open_.items() if s not in counting}
        if scanner is None:
            hists, kept = scan(passes(), counting, groups)
        else:
            hists, kept = scanner(counting, groups)
        for g, pieces in kept.items():
            keys = np.concatenate(pieces) if pieces else np.empty(0, np.uint64)
            mine = [
                s for s, o in open_.items() if s not in counting and (s[0], o.prefix, o.bits) == g
            ]
            ranks = sorted({open_[s].rank for s in mine})
            if ranks and not 0 <= ranks[0] <= ranks[-1] < keys.size:
                raise ValueError(f"ranks {ranks} of {g[0]!r} are outside its {keys.size} keys")
            picked = np.partition(keys, ranks) if ranks else keys
            for s in mine:
                found[s[0]][s[1]] = int(picked[open_.pop(s).rank])
        for s, hist in hists.items():
            o = open_[s]
            cum = np.cumsum(hist)
            if not 0 <= o.rank < int(cum[-1]):
                raise ValueError(f"rank {s[1]} of {s[0]!r} is outside its {int(cum[-1])} keys")
            b = int(np.searchsorted(cum, o.rank, side="right"))
            o.rank -= int(cum[b - 1]) if b else 0
            o.prefix = (o.prefix << STEP) | b
            o.bits += STEP
            o.count = int(hist[b])
            if o.bits == 64:  # every bit known: the key itself
                found[s[0]][s[1]] = o.prefix
                del open_[s]
    return found
