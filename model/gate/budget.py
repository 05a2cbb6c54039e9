"""The error budget of a model's family of comparisons: how much α comparison k may spend.

Every comparison of a candidate with production tests "is the candidate better?" again, on the
same stable holdout or on new rows. A gate that tests each comparison at α promotes a
no-better candidate, over K cycles, with probability up to 1 − (1 − α)^K (46 % at α = 0.05,
K = 12). So α is a budget for the model's whole family of comparisons: comparison k (k = 1, 2,
…, counted since the family began, whatever rows it used) tests at

    α_k = α · 6 / (π² k²),        Σ_{k≥1} α_k = α.

By the union bound, the probability that any comparison of the family promotes a candidate
whose true gain does not exceed the threshold is at most Σ α_k = α — for every number of
cycles, and whatever the dependence between comparisons (shared holdout rows, candidates
trained on overlapping data). This is alpha spending with a convergent series (Bonferroni over
an infinite family; see e.g. Foster & Stine 2008, "α-investing", for the family view, and
Javanmard & Montanari 2018 for LORD, the online FDR alternative that controls mFDR only).
Early comparisons get the most: α_1 = 0.608 α, α_2 = 0.152 α, α_12 = 0.0042 α.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

SERIES = "alpha * 6 / (pi^2 * k^2)"


def alpha_for(k: int, alpha: float) -> float:
    """The level comparison ``k`` (1-based) of a family with budget ``alpha`` tests at."""
    if k < 1:
        raise ValueError(f"holdout_uses must be >= 1, got {k}")
    return alpha * 6.0 / (math.pi**2 * k * k)


def spent(k: int, alpha: float) -> float:
    """The budget spent by comparisons 1..k together (always below ``alpha``)."""
    return sum(alpha_for(i, alpha) for i in range(1, k + 1))


RESET_EVENT = "gate_reset"
"""History event that starts a new family (an explicit, recorded user action)."""
EVALUATION_EVENT = "challenger_evaluated"
"""One look of a challenger's sequential evaluation on live labels; all the looks of one
evaluation (same ``evaluation`` id) are one comparison of the family: together they spend its
α_k (:mod:`model.live.sequential`)."""


def comparisons_so_far(events: Iterable[Mapping[str, Any]]) -> int:
    """Comparisons that spent α since the family began (the last ``gate_reset``).

    A ``compared`` event spent α when it records ``alpha_spent`` > 0, or — written before
    the budget existed — when it had a baseline (a comparison without production tests
    nothing). A sequential evaluation of a challenger counts once, from its first look
    (``challenger_evaluated`` events sharing one ``evaluation`` id).
    """
    count = 0
    seen: set[str] = set()
    for event in events:
        kind = event.get("event")
        if kind == RESET_EVENT:
            count = 0
        elif kind == EVALUATION_EVENT:
            evaluation = str(event.get("evaluation"))
            if evaluation not in seen:
                seen.add(evaluation)
                count += 1
        elif kind == "compared":
            spent_here = event.get("alpha_spent")
            if spent_here is None:
                count += bool(event.get("baseline") or event.get("baseline_version"))
            else:
                count += float(spent_here) > 0
    return count


def next_comparison(events: Iterable[Mapping[str, Any]]) -> int:
    """``holdout_uses`` for the next comparison of the model whose history is ``events``."""
    return comparisons_so_far(events) + 1
