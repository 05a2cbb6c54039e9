"""The level of a decision, from the rows it is decided on: evidence is accounted by rows.

A promotion decision is made on test rows, and each row belongs to the batch it arrived in
(the prepared split's provenance column ``__batch__``; the base data is one batch, named by its
content). The rows of a batch never change their split, so a batch's test rows are the same rows
in every later cycle. What a decision may spend depends on how often *its* rows have already
decided something, not on how many comparisons the model has had:

- **Fresh rows.** A decision whose rows include new rows — from batches no earlier decision
  used — with at least ``min_class_count`` positives and negatives (enough to decide on their
  own) is a new experiment and tests at the full level α. That includes the accumulating window
  of recent rows (the batches production has not been trained on: older ones plus a newest one
  of a real batch's size), which is how the flow collects evidence while production stays
  unchanged.
- **Reused rows.** Any other decision pays for the reuse: with j = 1 + the largest number of
  earlier decisions any of its batches took part in, it tests at

      α_j = α · 6 / (π² j²)        (j ≥ 2: α_2 = 0.0076, α_3 = 0.0034, α_12 = 0.00021 at α = 0.05)

  — a forced retrain with no new batch, the stable holdout deciding again, or a holdout that a
  handful of new rows would otherwise make look new.

**Guarantee.** Each decision's primary test has level at most α (fresh) or α_j (reused):
P(promote | true gain ≤ T) ≤ α for every decision, at any age of the model. The reused decisions
a batch's rows take part in test at strictly increasing j ≥ 2 (each of them raises the batch's
count), so together they promote a no-better candidate with probability at most
Σ_{j≥2} α_j = α (1 − 6/π²) < 0.4 α (union bound, any dependence); the fresh decisions it takes
part in are each a new experiment at α, each with new rows enough to decide on their own.
Nothing decays with the model's age.

A decision that tests nothing (no production model, identical scores, too few of a class,
no variability, too few changed predictions) spends nothing and uses no rows: it is recorded
with ``alpha_spent = 0`` and the reason, and later decisions do not count it. A challenger's
evaluation on live labels is a decision too: once it spends α, the labelled batches its rows
reached ``incoming/`` as count as used.

Pure functions over the history's events (plain dicts), no IO.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

BASE = "base"
"""The batch id of rows that came from the base data (no incoming batch)."""
REUSE_SERIES = (
    "alpha * 6 / (pi^2 * j^2), j = 1 + the most earlier decisions any of its batches took part "
    "in, unless its new rows hold min_class_count of each class (then fresh: alpha)"
)
DECISION_EVENT = "compared"
LIVE_EVENT = "challenger_evaluated"


def alpha_for(uses: int, alpha: float) -> float:
    """The level of the ``uses``-th decision on the same rows: α for the first (fresh rows),
    α·6/(π²·uses²) after."""
    if isinstance(uses, bool) or not isinstance(uses, int) or uses < 1:
        raise ValueError(f"uses must be an integer >= 1, got {uses!r}")
    return alpha if uses == 1 else alpha * 6.0 / (math.pi**2 * uses * uses)


def reuse_bound(alpha: float) -> float:
    """What the reused decisions a batch's rows take part in may spend together:
    Σ_{j≥2} α·6/(π²j²) = α (1 − 6/π²)."""
    return alpha * (1.0 - 6.0 / math.pi**2)


@dataclass(frozen=True)
class Evidence:
    """The rows a decision is made on, by batch, and the level that follows."""

    batches: tuple[str, ...]  # sorted batch ids of the decision's rows
    new_batches: tuple[str, ...]  # those no earlier decision used
    uses: int  # j: 1 when fresh, else 1 + the most decisions any of its batches took part in
    alpha: float  # the model's significance level α
    source: str = "history"  # "history": counted from the registry; "given": set by a caller
    batch_uses: tuple[tuple[str, int], ...] = ()  # earlier decisions per batch
    new_rows: tuple[int, int] = (0, 0)  # positives and negatives among the new batches' rows

    @property
    def fresh(self) -> bool:
        return self.uses == 1

    @property
    def level(self) -> float:
        return alpha_for(self.uses, self.alpha)

    def describe(self) -> str:
        """One line for the reports: why this level."""
        if self.source == "given":
            if self.fresh:
                return f"rows no earlier decision used: full level α = {self.alpha:g}"
            return f"decision {self.uses} on these rows: α·6/(π²·{self.uses}²) = {self.level:.3g}"
        if self.fresh:
            shown = ", ".join(self.new_batches[:3]) + (" …" if len(self.new_batches) > 3 else "")
            pos, neg = self.new_rows
            return (
                f"{len(self.new_batches)} of its {len(self.batches)} batch(es) decided nothing "
                f"before ({shown}; {pos} positives, {neg} negatives): fresh rows, full level "
                f"α = {self.alpha:g}"
            )
        why = (
            "every batch of its rows decided before"
            if not self.new_batches
            else f"its new rows ({self.new_rows[0]} positives, {self.new_rows[1]} negatives) "
            "are too few to decide alone"
        )
        return f"{why}; reused rows, j = {self.uses}: α·6/(π²·{self.uses}²) = {self.level:.3g}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "batches": list(self.batches),
            "new_batches": list(self.new_batches),
            "uses": self.uses,
            "fresh": self.fresh,
            "alpha": self.alpha,
            "level": self.level,
            "rule": REUSE_SERIES,
            "source": self.source,
            "batch_uses": dict(self.batch_uses),
            "new_rows": {"positives": self.new_rows[0], "negatives": self.new_rows[1]},
        }


def given(uses: int, alpha: float) -> Evidence:
    """Evidence a caller states (``retrain compare --holdout-uses``): no history consulted."""
    alpha_for(uses, alpha)  # checks uses
    return Evidence((), (), uses, alpha, "given")


def earlier_decisions(events: Iterable[Mapping[str, Any]]) -> list[frozenset[str]]:
    """The batch sets of the history's decisions that spent α (oldest first).

    A ``compared`` event counts when it records its ``evidence`` (the batches of its rows) and
    spent something; an event written before evidence was recorded names no rows and is not
    counted (its decision was charged to the old lifetime budget instead). A challenger's
    evaluation on live labels counts once, with the labelled batches its looks recorded
    (``batches``), once it has spent α.
    """
    out: list[frozenset[str]] = []
    live: dict[str, set[str]] = {}
    order: list[str] = []
    for ev in events:
        kind = ev.get("event")
        if kind == LIVE_EVENT and ev.get("batches") and float(ev.get("alpha_spent") or 0) > 0:
            key = str(ev.get("evaluation"))
            if key not in live:
                live[key] = set()
                order.append(key)
            live[key].update(str(b) for b in ev["batches"])
            continue
        if kind != DECISION_EVENT:
            continue
        evidence = ev.get("evidence")
        if not isinstance(evidence, Mapping) or not evidence.get("batches"):
            continue
        if float(ev.get("alpha_spent") or 0.0) <= 0.0:
            continue
        out.append(frozenset(str(b) for b in evidence["batches"]))
    return out + [frozenset(live[k]) for k in order]


def evidence_for(
    counts: Mapping[str, tuple[int, int]],
    earlier: Sequence[frozenset[str]],
    alpha: float,
    min_class_count: int = 100,
) -> Evidence:
    """The evidence of a decision whose rows come from the batches of ``counts`` (batch →
    (positives, negatives) among its rows), given the batch sets of the earlier decisions that
    spent α: fresh (α) when its new batches hold ``min_class_count`` of each class, else reused
    with j = 1 + the most earlier decisions any of its batches took part in."""
    mine = {str(b): (int(p), int(n)) for b, (p, n) in counts.items()}
    if not mine:
        raise ValueError("a decision needs rows from at least one batch")
    uses = {b: sum(1 for s in earlier if b in s) for b in mine}
    new = sorted(b for b, u in uses.items() if u == 0)
    new_rows = (sum(mine[b][0] for b in new), sum(mine[b][1] for b in new))
    fresh = bool(new) and min(new_rows) >= min_class_count
    j = 1 if fresh else 1 + max(uses.values())
    return Evidence(
        tuple(sorted(mine)),
        tuple(new),
        max(j, 1),
        alpha,
        batch_uses=tuple(sorted(uses.items())),
        new_rows=new_rows,
    )


def class_counts(batches: Sequence[str], y: Sequence[int]) -> dict[str, tuple[int, int]]:
    """Batch → (positives, negatives) among rows with batch ids ``batches`` and labels ``y``."""
    out: dict[str, list[int]] = {}
    for b, label in zip(batches, y, strict=True):
        counts = out.setdefault(str(b), [0, 0])
        counts[0 if int(label) == 1 else 1] += 1
    return {b: (c[0], c[1]) for b, c in out.items()}


def batch_ids(values: Sequence[Any]) -> list[str]:
    """Batch ids from a provenance column's values (None or NaN: the base data)."""
    out = []
    for v in values:
        missing = v is None or (isinstance(v, float) and math.isnan(v))
        out.append(BASE if missing else str(v))
    return out


__all__ = [
    "BASE",
    "REUSE_SERIES",
    "Evidence",
    "alpha_for",
    "batch_ids",
    "class_counts",
    "earlier_decisions",
    "evidence_for",
    "given",
    "reuse_bound",
]
