"""A comparison over a holdout spilled to disk: scored in chunks (:func:`spill_holdout`),
decided by :func:`compare_spilled` exactly as :meth:`ModelComparator.compare_scores` decides,
with the statistics of :mod:`model.gate.spill` computed in bounded memory."""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from model.errors import ComparisonInputError
from model.gate.comparator import ModelComparator, population_of
from model.gate.decide import decide
from model.gate.inputs import check_specs, encode_target, score
from model.gate.measure import measure_spilled_rows, measure_spilled_untested
from model.gate.result import ComparisonResult, ModelInfo, Population
from model.gate.spill import SpilledRows, SpillWriter


@dataclass
class SpilledHoldout:
    """A scored holdout on disk: all its rows, the recent ones (those production was not
    trained on) as rows of their own, and each batch's (positives, negatives) among both."""

    rows: SpilledRows
    recent: SpilledRows | None
    counts: dict[str, tuple[int, int]]
    recent_counts: dict[str, tuple[int, int]]
    has_baseline: bool

    def remove(self) -> None:
        shutil.rmtree(self.rows.folder, ignore_errors=True)
        if self.recent is not None:
            shutil.rmtree(self.recent.folder, ignore_errors=True)


def spill_holdout(
    chunks: Iterable[tuple[pd.DataFrame, np.ndarray | None, Sequence[str]]],
    baseline: Any | None,
    candidate: Any,
    target: str,
    folder: Path,
    budget: int,
) -> SpilledHoldout:
    """Score each chunk of the holdout (a frame, its recent-rows mask or None, the batch of
    each row) with both models and spill it to ``folder``; nothing else is kept. Without a
    baseline, the candidate's scores stand in both columns (its metrics alone are used)."""
    writers: dict[str, SpillWriter | None] = {"all": SpillWriter(Path(folder) / "all")}
    writers["recent"] = None
    everything = writers["all"]
    assert everything is not None
    counts: dict[str, dict[str, list[int]]] = {"all": {}, "recent": {}}
    checked = False
    try:
        for frame, recent, batches in chunks:
            if not checked:
                check_specs(baseline, candidate, frame, target)
                checked = True
            y = encode_target(frame, target)
            sc = score(candidate, frame, "candidate")
            sb = sc if baseline is None else score(baseline, frame, "baseline")
            everything.write(y, sb, sc)
            _count(counts["all"], batches, y)
            if recent is not None and recent.any():
                recent_writer = writers["recent"]
                if recent_writer is None:
                    recent_writer = writers["recent"] = SpillWriter(Path(folder) / "recent")
                recent_writer.write(y[recent], sb[recent], sc[recent])
                _count(counts["recent"], np.asarray(batches, dtype=object)[recent], y[recent])
    except BaseException:
        for w in writers.values():
            if w is not None:
                w.abort()
        raise
    rows = everything.close(budget)
    if rows.size == 0:
        shutil.rmtree(rows.folder, ignore_errors=True)
        raise ComparisonInputError("the test set is empty (0 rows)")
    recent_writer = writers["recent"]
    recent_rows = None if recent_writer is None else recent_writer.close(budget)
    return SpilledHoldout(
        rows,
        recent_rows,
        {b: (c[0], c[1]) for b, c in counts["all"].items()},
        {b: (c[0], c[1]) for b, c in counts["recent"].items()},
        baseline is not None,
    )


def _count(into: dict[str, list[int]], batches: Sequence[str], y: np.ndarray) -> None:
    """Add each batch's positives and negatives among these rows."""
    ids = np.asarray(batches, dtype=object).astype(str)
    names, which = np.unique(ids, return_inverse=True)
    pos = np.bincount(which, weights=y, minlength=names.size).astype(np.int64)
    rows = np.bincount(which, minlength=names.size)
    for name, p, r in zip(names.tolist(), pos.tolist(), rows.tolist(), strict=True):
        c = into.setdefault(name, [0, 0])
        c[0] += p
        c[1] += r - p


def compare_spilled(
    gate: ModelComparator,
    holdout: SpilledHoldout,
    *,
    baseline_info: ModelInfo | None,
    candidate_info: ModelInfo,
    earlier: Sequence[frozenset[str]] | None = None,
) -> ComparisonResult:
    """``gate.compare_scores`` over a holdout spilled to disk (:mod:`model.gate.spill`): the
    same decision, the statistics computed in bounded memory. The batch counts stand for
    ``batches``; ``earlier`` as in :meth:`ModelComparator.compare`."""
    rows, recent = holdout.rows, holdout.recent
    tc = candidate_info.decision_threshold
    if baseline_info is None or not holdout.has_baseline:
        pop = measure_spilled_untested("holdout", rows, tc)
        evidence = gate._evidence_of(holdout.counts, earlier)
        result = gate._result(None, candidate_info, {"holdout": pop}, "holdout", None, evidence)
        decide(result)
        return result
    tb = baseline_info.decision_threshold
    recent_pos = 0 if recent is None else recent.positives
    recent_neg = 0 if recent is None else recent.negatives
    decided_on, notes = population_of(recent_pos, recent_neg, gate.min_class_count)
    counts = holdout.recent_counts if decided_on == "recent" else holdout.counts
    evidence = gate._evidence_of(counts, earlier)
    level = evidence.level
    deciding = recent if decided_on == "recent" else rows
    if deciding is None or min(deciding.positives, deciding.negatives) < 2:
        raise ComparisonInputError(
            f"the holdout's {decided_on} rows have too few of a class to compare "
            "(two positives and two negatives needed)"
        )
    thr = gate.improvement_threshold

    def null_of(baseline_metrics: dict[str, float]) -> float:
        nonlocal thr
        if gate.threshold_type == "relative":  # T·|baseline| on the deciding rows
            thr = gate.improvement_threshold * abs(baseline_metrics[gate.primary_metric])
        return 0.0 if gate.rule == "lab" else thr  # the lab's test is "gain > 0"

    populations: dict[str, Population] = {}
    on = gate.statistics_device()
    other = "holdout" if decided_on == "recent" else "recent"
    for name, part in ((decided_on, deciding), (other, rows if other == "holdout" else recent)):
        if part is None or min(part.positives, part.negatives) < 2:
            continue
        populations[name] = measure_spilled_rows(
            name,
            part,
            tb,
            tc,
            primary=gate.primary_metric,
            threshold=null_of if name == decided_on else (0.0 if gate.rule == "lab" else thr),
            level=level,
            n_bootstrap=gate.n_bootstrap,
            seed=gate.random_state,
            n_jobs=gate.n_jobs,
            device=on,
        )
    populations = {k: populations[k] for k in ("holdout", "recent") if k in populations}
    result = gate._result(baseline_info, candidate_info, populations, decided_on, thr, evidence)
    return gate._decided(result, notes)
