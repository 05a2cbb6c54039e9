"""Candidate sweeps: K training configurations from a small grid or random search
(:class:`SweepSpec`), and the winner chosen on the validation split only
(:func:`choose_winner`).

Plain Python: the Prefect/Dask wiring that trains the candidates in parallel is
``flows/sweep.py``. Nothing here reads a test split: a candidate's score is the validation AUC
its training recorded in ``model.json`` (``metrics.validation``), so only the winner ever
reaches the promotion gate's holdout.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from model.errors import RetrainError
from model.threads import usable_cpus

SWEPT = ("hidden_sizes", "learning_rate", "dropout", "weight_decay")
"""The training parameters a sweep may vary, in the order the grid enumerates them."""
MAX_CANDIDATES = 64


class SweepError(RetrainError):
    """A sweep could not pick a winner (every candidate's validation AUC is undefined)."""


Widths = Annotated[list[Annotated[int, Field(ge=1, le=65_536)]], Field(min_length=1, max_length=16)]

WidthsList = Annotated[list[Widths], Field(min_length=1, max_length=16)]
Rates = Annotated[list[Annotated[float, Field(gt=0.0, le=10.0)]], Field(min_length=1)]
Dropouts = Annotated[list[Annotated[float, Field(ge=0.0, lt=1.0)]], Field(min_length=1)]
Decays = Annotated[list[Annotated[float, Field(ge=0.0, le=1.0)]], Field(min_length=1)]


class SweepSpec(BaseModel):
    """A sweep over training parameters: each listed value set is searched, the others keep
    the run's value. ``grid``: every combination (at most ``max_candidates`` of them);
    ``random``: ``max_candidates`` distinct combinations drawn with ``seed``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    hidden_sizes: WidthsList | None = None
    learning_rate: Rates | None = None
    dropout: Dropouts | None = None
    weight_decay: Decays | None = None
    search: Literal["grid", "random"] = "grid"
    max_candidates: Annotated[int, Field(ge=1, le=MAX_CANDIDATES)] = 4
    seed: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = None
    workers: Annotated[int, Field(ge=1, le=256)] | None = None
    """Dask workers of the LocalCluster (default: min(K, CPU count)); ignored with an
    existing scheduler (``RETRAIN_DASK_ADDRESS``)."""

    @model_validator(mode="after")
    def _fits(self) -> SweepSpec:
        if not any(getattr(self, name) for name in SWEPT):
            raise ValueError(f"a sweep lists values for at least one of {', '.join(SWEPT)}")
        size = self.grid_size()
        if self.search == "grid" and size > self.max_candidates:
            raise ValueError(
                f"the grid has {size} combinations, more than max_candidates="
                f"{self.max_candidates}; raise max_candidates or use search='random'"
            )
        return self

    def grid_size(self) -> int:
        return math.prod(len(getattr(self, name) or [None]) for name in SWEPT)


@dataclass(frozen=True)
class Candidate:
    """One configuration of a sweep: its number (1-based) and the parameters it changes."""

    number: int
    overrides: dict[str, Any]

    def params(self, base: dict[str, Any]) -> dict[str, Any]:
        """The full training parameters: the run's ``base`` with this candidate's values."""
        return {**base, **self.overrides}


def candidates(spec: SweepSpec, seed: int) -> list[Candidate]:
    """The sweep's configurations, in a fixed order: the grid's (product order of
    :data:`SWEPT`) or ``max_candidates`` distinct ones drawn from it with ``spec.seed`` (else
    ``seed``). Only the listed parameters appear in a candidate's overrides."""
    axes = [(name, getattr(spec, name)) for name in SWEPT if getattr(spec, name)]
    combos = list(itertools.product(*(values for _, values in axes)))
    if spec.search == "random" and len(combos) > spec.max_candidates:
        rng = random.Random(spec.seed if spec.seed is not None else seed)
        combos = [combos[i] for i in sorted(rng.sample(range(len(combos)), spec.max_candidates))]
    out = []
    for number, combo in enumerate(combos, start=1):
        overrides = {name: _plain(value) for (name, _), value in zip(axes, combo, strict=True)}
        out.append(Candidate(number, overrides))
    return out


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, list | tuple) else value


def worker_count(spec: SweepSpec, k: int, cpus: int | None = None) -> int:
    """Dask workers for ``k`` candidates: ``spec.workers``, else min(k, CPU count)."""
    cpus = cpus or usable_cpus()
    return max(1, spec.workers if spec.workers is not None else min(k, cpus))


def threads_per_candidate(workers: int, cpus: int | None = None) -> int:
    """Torch threads for each candidate so that the workers together use the CPUs once
    (one on 2 CPUs or fewer: ``model.threads``' rule for torch)."""
    cpus = cpus or usable_cpus()
    return 1 if cpus <= 2 else max(1, cpus // max(1, workers))


@dataclass
class CandidateResult:
    """A trained candidate: where it is and what its training measured on validation."""

    candidate: Candidate
    folder: str
    validation: dict[str, float] = field(default_factory=dict)
    best_epoch: int | None = None
    seconds: float | None = None

    @property
    def val_auc(self) -> float:
        auc = self.validation.get("auc")
        return float("nan") if auc is None else float(auc)

    @classmethod
    def from_folder(cls, candidate: Candidate, folder: str | Path) -> CandidateResult:
        """Read the candidate's ``model.json`` (validation metrics, best epoch, seconds)."""
        meta = json.loads((Path(folder) / "model.json").read_text(encoding="utf-8"))
        training = meta.get("training") or {}
        return cls(
            candidate,
            str(folder),
            dict((meta.get("metrics") or {}).get("validation") or {}),
            training.get("best_epoch"),
            training.get("seconds"),
        )


def choose_winner(results: list[CandidateResult]) -> CandidateResult:
    """The candidate with the highest validation AUC (ties: lower validation log loss, then
    the lower number). A candidate whose AUC is undefined never wins."""
    scored = [r for r in results if not math.isnan(r.val_auc)]
    if not scored:
        raise SweepError(
            f"sweep of {len(results)} candidate(s): no validation AUC is defined "
            "(the validation split holds one class?); no winner"
        )
    return min(
        scored,
        key=lambda r: (
            -r.val_auc,
            r.validation.get("log_loss", math.inf),
            r.candidate.number,
        ),
    )


def leaderboard_rows(
    results: list[CandidateResult], winner: CandidateResult, base: dict[str, Any]
) -> list[dict[str, Any]]:
    """One row per candidate: its configuration (every swept parameter, the run's value
    where it did not vary), validation metrics, best epoch and whether it won."""
    rows = []
    for r in sorted(results, key=lambda x: x.candidate.number):
        params = r.candidate.params(base)
        row: dict[str, Any] = {"candidate": r.candidate.number}
        for name in SWEPT:
            value = params.get(name)
            row[name] = list(value) if isinstance(value, list | tuple) else value
        for metric in ("auc", "log_loss", "average_precision", "accuracy"):
            value = r.validation.get(metric)
            row[f"val_{metric}"] = None if value is None else round(float(value), 6)
        row["best_epoch"] = r.best_epoch
        row["seconds"] = None if r.seconds is None else round(float(r.seconds), 2)
        row["winner"] = r is winner
        rows.append(row)
    return rows


def record_sweep(folder: str | Path, rows: list[dict[str, Any]], spec: SweepSpec) -> None:
    """Add the sweep (spec, every candidate's row, the rule) to the winner's ``model.json``,
    before it is registered; written to a temporary file and renamed."""
    path = Path(folder) / "model.json"
    meta = json.loads(path.read_text(encoding="utf-8"))
    meta["sweep"] = {
        "spec": spec.model_dump(),
        "chosen_on": "validation AUC (ties: validation log loss, then candidate number)",
        "winner": next(row["candidate"] for row in rows if row["winner"]),
        "candidates": rows,
    }
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(meta, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
