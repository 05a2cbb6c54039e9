"""A model's weekly retraining loop, simulated through the code path the flow uses (issue 23).

Scores are binormal and calibrated (:mod:`model.gate.simulation`): every model's latent score
on a row is √ρ·u + √(1 − ρ)·e + μ·y, with u the row's difficulty shared by all models and e the
model's own noise, so any two models correlate by ρ within a class; a model's score is its
posterior P(y = 1 | latent) at the true prevalence, and its AUC is Φ(μ/√2).

Each weekly cycle a batch of fresh test rows arrives (their batch id ``date=…``), a candidate is
scored on every test row, and the decision goes through the flow's own functions:
:func:`model.cycle.evaluation.inputs_from_history` reads the level's evidence from a real
registry history (``history.jsonl`` in a temporary folder), ``ModelComparator.compare_scores``
decides, :func:`model.cycle.evaluation.record_comparison` writes the ``compared`` event the
next cycle reads. Production stays unchanged unless promoted, so the recent rows (the batches
production was not trained on) accumulate as they do in the flow; a promotion makes the
candidate production, trained on every batch so far.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import stats

from model.cycle.evaluation import inputs_from_history, record_comparison
from model.gate.comparator import ModelComparator
from model.gate.evidence import BASE
from model.registry import ModelRegistry

AUC = 0.775
RHO = 0.6
PREVALENCE = 0.3
ROWS = 1500
THRESHOLD = 0.005
ALPHA = 0.05


def mu_of(auc: float) -> float:
    return math.sqrt(2.0) * float(stats.norm.ppf(auc))


def gate(**kw: object) -> ModelComparator:
    """The flow's default gate (T = 0.005, calibration and whole-holdout guardrails), with the
    fewest bootstrap resamples it accepts (the AUC decision does not use them)."""
    options: dict[str, object] = {
        "improvement_threshold": THRESHOLD,
        "significance_level": ALPHA,
        "n_bootstrap": 20,
        "n_jobs": 1,
    }
    options.update(kw)
    return ModelComparator(**options)  # type: ignore[arg-type]


@dataclass
class Loop:
    """One model's test rows and its production, with a registry history on disk."""

    rng: np.random.Generator
    root: Path
    base_rows: int = ROWS
    production_auc: float = AUC
    y: np.ndarray = field(init=False)
    u: np.ndarray = field(init=False)
    parts: list[tuple[str, int]] = field(init=False)  # (batch id, rows), oldest first
    production: np.ndarray = field(init=False)  # production's own noise on each row
    seen: set[str] = field(init=False)  # batches production was trained on
    week: int = 0
    versions: int = 1

    def __post_init__(self) -> None:
        self.registry = ModelRegistry(self.root)
        self.y = np.empty(0, np.int8)
        self.u = np.empty(0)
        self.production = np.empty(0)
        self.parts = []
        self.seen = {BASE}
        self._rows(self.base_rows, BASE)

    def _rows(self, n: int, name: str) -> None:
        n_pos = round(PREVALENCE * n)
        self.y = np.r_[self.y, np.ones(n_pos, np.int8), np.zeros(n - n_pos, np.int8)]
        self.u = np.r_[self.u, self.rng.normal(size=n)]
        self.production = np.r_[self.production, self.rng.normal(size=n)]
        self.parts.append((name, n))

    @property
    def batch(self) -> np.ndarray:
        """The batch id of every test row."""
        names, counts = zip(*self.parts, strict=True)
        return np.repeat(np.array(names, dtype=object), counts)

    def new_batch(self, n: int = ROWS) -> str:
        """A week's fresh test rows (``date=w0001``…)."""
        self.week += 1
        name = f"date=w{self.week:04d}"
        self._rows(n, name)
        return name

    def scores(self, noise: np.ndarray, auc: float) -> np.ndarray:
        mu = mu_of(auc)
        latent = math.sqrt(RHO) * self.u + math.sqrt(1 - RHO) * noise + mu * self.y
        prior = math.log(PREVALENCE / (1 - PREVALENCE))
        return 1.0 / (1.0 + np.exp(-(mu * latent - mu * mu / 2 + prior)))

    def recent(self) -> np.ndarray | None:
        """Rows from batches production was not trained on (None when there are none)."""
        unseen = [name not in self.seen for name, _ in self.parts]
        mask = np.repeat(np.array(unseen), [n for _, n in self.parts])
        return mask if mask.any() else None

    def cycle_at_fixed_level(self, comparator: ModelComparator, candidate_auc: float) -> str:
        """:meth:`cycle` with no evidence accounting: every decision at the comparator's
        stated level (the reference the accounting is measured against)."""
        return self.cycle(comparator, candidate_auc, accounting=False)

    def cycle(
        self,
        comparator: ModelComparator,
        candidate_auc: float,
        threshold: float | None = None,
        accounting: bool = True,
    ) -> str:
        """One cycle: a candidate scored on every test row, decided and recorded as the flow
        does; PROMOTE makes it production (trained on every batch so far)."""
        noise = self.rng.normal(size=self.y.size)
        sc = self.scores(noise, candidate_auc)
        sb = self.scores(self.production, self.production_auc)
        inputs = inputs_from_history(self.registry.history(), self.batch, self.recent())
        result = comparator.compare_scores(
            self.y,
            sb,
            sc,
            candidate_threshold=0.5 if threshold is None else threshold,
            **(inputs.kwargs() if accounting else {"recent": inputs.recent}),
        )
        self.versions += 1
        record_comparison(self.registry, result, f"v{self.versions:04d}", "v0001")
        if result.decision == "PROMOTE":
            self.production, self.production_auc = noise, candidate_auc
            self.seen = {name for name, _ in self.parts}
        return result.decision


def threshold_for_recall(mu: float, recall: float) -> float:
    """The decision threshold (a score) at which a calibrated binormal model of separation
    ``mu`` has this recall: P(score >= t | y = 1) = recall."""
    x_t = mu + float(stats.norm.ppf(1.0 - recall))  # latent cut among positives
    logit = mu * x_t - mu * mu / 2 + math.log(PREVALENCE / (1 - PREVALENCE))
    return 1.0 / (1.0 + math.exp(-logit))


def recall_at(mu: float, threshold: float) -> float:
    """The recall of a calibrated binormal model of separation ``mu`` at ``threshold``."""
    logit_t = math.log(threshold / (1 - threshold))
    x_t = (logit_t - math.log(PREVALENCE / (1 - PREVALENCE)) + mu * mu / 2) / mu
    return float(stats.norm.sf(x_t - mu))


def weekly(
    seed: int, root: Path, weeks: int, candidate_auc: float, stop_at_promotion: bool = False
) -> list[str]:
    """A new model's ``weeks`` weekly cycles, each with a fresh batch: the decisions."""
    loop = Loop(np.random.default_rng(seed), root)
    comparator = gate()
    out = []
    for _ in range(weeks):
        loop.new_batch()
        out.append(loop.cycle(comparator, candidate_auc))
        if stop_at_promotion and out[-1] == "PROMOTE":
            break
    return out


def aged(seed: int, root: Path, history: Path, weeks: int = 51) -> Loop:
    """A model a year old: ``history`` (the registry history of ``weeks`` weekly decisions,
    made through this loop) copied into a new registry, the same ``weeks`` batches of test rows,
    and a production trained on all of them (promoted at the last one)."""
    loop = Loop(np.random.default_rng(seed), root)
    for _ in range(weeks):
        loop.new_batch()
    loop.seen = {name for name, _ in loop.parts}
    loop.registry.root.mkdir(parents=True, exist_ok=True)
    (loop.registry.root / "history.jsonl").write_bytes(history.read_bytes())
    return loop


def year_of_history(root: Path, weeks: int = 51, seed: int = 2351) -> Path:
    """The history of ``weeks`` weekly decisions on equal candidates, written by the loop."""
    weekly(seed, root, weeks, AUC)
    return root / "history.jsonl"
