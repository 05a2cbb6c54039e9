"""The level of a decision, from the rows it is decided on: evidence is accounted by rows.

A promotion decision is made on test rows, and each row belongs to the batch it arrived in
(the prepared split's provenance column ``__batch__``; :data:`BASE` for rows of the base
data). The rows of a batch never change their split, so a batch's test rows are the same rows
in every later cycle. What a decision may spend depends on how often *its* rows have already
decided something, not on how many comparisons the model has had:

- **Fresh rows.** A decision whose rows include at least one batch that no earlier decision
  used is a new experiment and tests at the full level α. That includes the accumulating
  window of recent rows (the batches production has not been trained on: older ones plus the
  newest), which is how the flow collects evidence while production stays unchanged.
- **Reused rows.** A decision on rows that all decided something before (a forced retrain with
  no new batch, the stable holdout deciding again) pays for the reuse: the j-th decision on
  exactly the same batches tests at

      α_j = α · 6 / (π² j²)        (j ≥ 2: α_2 = 0.0076, α_3 = 0.0034, α_12 = 0.00021 at α = 0.05)

  and a decision on a new combination of batches that were all used before counts as j = 2.

**Guarantee.** Each decision's primary test has level at most α (fresh) or α_j (reused):
P(promote | true gain ≤ T) ≤ α for every decision, at any age of the model. Over the whole
life of one set of rows, the decisions on it promote a no-better candidate with probability at
most α + Σ_{j≥2} α_j = α (2 − 6/π²) < 1.4 α (union bound, any dependence between them). New
batches are new experiments, each with its own α; nothing decays with the model's age.

A decision that tests nothing (no production model, identical scores, too few of a class,
no variability, too few changed predictions) spends nothing and uses no rows: it is recorded
with ``alpha_spent = 0`` and the reason, and later decisions do not count it.

Pure functions over the history's events (plain dicts), no IO.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

BASE = "base"
"""The batch id of rows that came from the base data (no incoming batch)."""
REUSE_SERIES = "alpha * 6 / (pi^2 * j^2) for the j-th decision on the same rows (j >= 2)"
DECISION_EVENT = "compared"


def alpha_for(uses: int, alpha: float) -> float:
    """The level of the ``uses``-th decision on the same rows: α for the first (fresh rows),
    α·6/(π²·uses²) after."""
    if isinstance(uses, bool) or not isinstance(uses, int) or uses < 1:
        raise ValueError(f"uses must be an integer >= 1, got {uses!r}")
    return alpha if uses == 1 else alpha * 6.0 / (math.pi**2 * uses * uses)


def lifetime_bound(alpha: float) -> float:
    """What all decisions on one set of rows may spend together: α (2 − 6/π²)."""
    return alpha * (2.0 - 6.0 / math.pi**2)


@dataclass(frozen=True)
class Evidence:
    """The rows a decision is made on, by batch, and the level that follows."""

    batches: tuple[str, ...]  # sorted batch ids of the decision's rows
    new_batches: tuple[str, ...]  # those no earlier decision used
    uses: int  # j: this decision's number among decisions on exactly these rows
    alpha: float  # the model's significance level α
    source: str = "history"  # "history": counted from the registry; "given": set by a caller

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
            return (
                f"{len(self.new_batches)} of its {len(self.batches)} batch(es) decided nothing "
                f"before ({shown}): fresh rows, full level α = {self.alpha:g}"
            )
        return (
            f"every batch of its rows decided before; decision {self.uses} on these rows: "
            f"α·6/(π²·{self.uses}²) = {self.level:.3g}"
        )

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
        }


def given(uses: int, alpha: float) -> Evidence:
    """Evidence a caller states (``retrain compare --holdout-uses``): no history consulted."""
    alpha_for(uses, alpha)  # checks uses
    return Evidence((), (), uses, alpha, "given")


def earlier_decisions(events: Iterable[Mapping[str, Any]]) -> list[frozenset[str]]:
    """The batch sets of the history's decisions that spent α (oldest first).

    A ``compared`` event counts when it records its ``evidence`` (the batches of its rows) and
    spent something; an event written before evidence was recorded names no rows and is not
    counted (its decision was charged to the old lifetime budget instead).
    """
    out = []
    for ev in events:
        if ev.get("event") != DECISION_EVENT:
            continue
        evidence = ev.get("evidence")
        if not isinstance(evidence, Mapping) or not evidence.get("batches"):
            continue
        if float(ev.get("alpha_spent") or 0.0) <= 0.0:
            continue
        out.append(frozenset(str(b) for b in evidence["batches"]))
    return out


def evidence_for(
    batches: Iterable[str], earlier: Sequence[frozenset[str]], alpha: float
) -> Evidence:
    """The evidence of a decision on rows from ``batches``, given the batch sets of the earlier
    decisions that spent α."""
    mine = frozenset(str(b) for b in batches)
    if not mine:
        raise ValueError("a decision needs rows from at least one batch")
    used = frozenset().union(*earlier) if earlier else frozenset()
    new = sorted(mine - used)
    same = sum(1 for s in earlier if s == mine)
    uses = 1 if new else max(2, same + 1)
    return Evidence(tuple(sorted(mine)), tuple(new), uses, alpha)


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
    "earlier_decisions",
    "evidence_for",
    "given",
    "lifetime_bound",
]
