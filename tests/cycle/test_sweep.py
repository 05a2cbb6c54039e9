"""Sweep candidates and the winner rule (plain Python, no Dask, no torch)."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pytest
from pydantic import ValidationError

from model.cycle.sweep import (
    Candidate,
    CandidateResult,
    SweepError,
    SweepSpec,
    candidates,
    choose_winner,
    leaderboard_rows,
    record_sweep,
    threads_per_candidate,
    worker_count,
)


def test_grid_is_every_combination_in_product_order() -> None:
    spec = SweepSpec(
        hidden_sizes=[[8], [16, 8]],
        learning_rate=[0.1, 0.01],
        dropout=[0.0, 0.3],
        max_candidates=8,
    )
    got = [c.overrides for c in candidates(spec, seed=0)]
    expected = [
        {"hidden_sizes": list(h), "learning_rate": lr, "dropout": d}
        for h, lr, d in itertools.product([[8], [16, 8]], [0.1, 0.01], [0.0, 0.3])
    ]
    assert got == expected
    assert [c.number for c in candidates(spec, 0)] == list(range(1, 9))


def test_a_grid_larger_than_max_candidates_is_refused() -> None:
    with pytest.raises(ValidationError, match="the grid has 8 combinations"):
        SweepSpec(learning_rate=[0.1, 0.2], dropout=[0.1, 0.2], weight_decay=[0, 1e-4])
    with pytest.raises(ValidationError, match="at least one of"):
        SweepSpec(search="random")


def test_random_search_draws_distinct_combinations_reproducibly() -> None:
    spec = SweepSpec(
        learning_rate=[0.1, 0.03, 0.01, 0.003],
        dropout=[0.0, 0.2, 0.4],
        search="random",
        max_candidates=5,
        seed=3,
    )
    first = [tuple(sorted(c.overrides.items())) for c in candidates(spec, seed=99)]
    assert len(first) == 5 == len(set(first))
    assert first == [tuple(sorted(c.overrides.items())) for c in candidates(spec, seed=1)]
    universe = set(itertools.product([0.1, 0.03, 0.01, 0.003], [0.0, 0.2, 0.4]))
    assert {(dict(c)["learning_rate"], dict(c)["dropout"]) for c in first} <= universe
    other = SweepSpec(**{**spec.model_dump(), "seed": None})
    draws = {tuple(map(str, candidates(other, seed=s))) for s in range(20)}
    assert len(draws) > 1  # without spec.seed, the run's seed decides


def test_winner_is_the_best_validation_auc_ties_by_log_loss_then_number() -> None:
    def result(number: int, auc: float, loss: float = 0.5) -> CandidateResult:
        return CandidateResult(Candidate(number, {}), f"c{number}", {"auc": auc, "log_loss": loss})

    results = [result(1, 0.80), result(2, 0.85, 0.6), result(3, 0.85, 0.4), result(4, math.nan)]
    assert choose_winner(results).candidate.number == 3
    assert choose_winner([result(2, 0.9), result(1, 0.9)]).candidate.number == 1
    with pytest.raises(SweepError, match="no validation AUC"):
        choose_winner([result(1, math.nan)])


def test_rows_and_model_json_record_every_candidate(tmp_path: Path) -> None:
    spec = SweepSpec(learning_rate=[0.1, 0.01])
    base = {"hidden_sizes": (64, 32), "learning_rate": 0.01, "dropout": 0.2, "weight_decay": 0.0}
    results = [
        CandidateResult(c, "x", {"auc": auc, "log_loss": 0.3}, 4, 1.5)
        for c, auc in zip(candidates(spec, 0), (0.7, 0.9), strict=True)
    ]
    rows = leaderboard_rows(results, results[1], base)
    assert [(r["learning_rate"], r["hidden_sizes"], r["winner"]) for r in rows] == [
        (0.1, [64, 32], False),
        (0.01, [64, 32], True),
    ]
    (tmp_path / "model.json").write_text(json.dumps({"metrics": {}}))
    record_sweep(tmp_path, rows, spec)
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["sweep"]["winner"] == 2 and meta["sweep"]["candidates"] == rows
    assert meta["metrics"] == {}


def test_workers_and_threads_share_the_cpus() -> None:
    assert worker_count(SweepSpec(learning_rate=[0.1, 0.2, 0.3]), 3, cpus=2) == 2
    assert worker_count(SweepSpec(learning_rate=[0.1], workers=3), 1, cpus=2) == 3
    assert threads_per_candidate(2, cpus=2) == 1
    assert threads_per_candidate(1, cpus=2) == 1  # torch on 2 CPUs: one thread (model.threads)
    assert threads_per_candidate(2, cpus=16) == 8
