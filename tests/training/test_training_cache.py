"""The training cache (model.training.cache): identical training inputs train once; the reused
candidate is the same network, re-stamped for the run that reuses it."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from model import clock
from model.data import prepare
from model.data.demo import make_customers
from model.settings import Settings, working_root
from model.training import TrainParams, TrainResult, train_prepared
from model.training.cache import reused, train_or_reuse, training_key

PARAMS = TrainParams(num_epochs=2, batch_size=256, patience=None, device="cpu")


@pytest.fixture
def prepared_twice(tmp_path: Path) -> tuple[Path, Path]:
    """The same rows prepared in two working roots (two policies' scratch roots)."""
    data = tmp_path / "rows.parquet"
    make_customers(1_500, seed=5).to_parquet(data)
    one = prepare([data], tmp_path / "a" / "prepared", target="target").path
    two = prepare([data], tmp_path / "b" / "prepared", target="target").path
    return one, two


def _counting(prepared: Path, out: Path, calls: list[int]) -> object:
    def run() -> tuple[Path, TrainResult]:
        calls.append(1)
        return train_prepared(prepared, out, PARAMS, extra_metadata={"training_reason": "first"})

    return run


def test_identical_inputs_train_once(tmp_path: Path, prepared_twice: tuple[Path, Path]) -> None:
    one, two = prepared_twice
    cache = tmp_path / "cache"
    calls: list[int] = []
    assert training_key(one, PARAMS) == training_key(two, PARAMS)
    with working_root(tmp_path / "a"), clock.at(dt.datetime(2024, 2, 1, tzinfo=dt.UTC)):
        first, result = train_or_reuse(
            cache, one, tmp_path / "out1", PARAMS, _counting(one, tmp_path / "out1", calls)
        )
    assert result is not None and len(calls) == 1
    with working_root(tmp_path / "b"), clock.at(dt.datetime(2024, 6, 1, tzinfo=dt.UTC)):
        second, again = train_or_reuse(
            cache,
            two,
            tmp_path / "out2",
            PARAMS,
            _counting(two, tmp_path / "out2", calls),
            extra_metadata={"training_reason": "second"},
        )
    assert again is None and len(calls) == 1  # reused, not trained
    assert (first / "model.pt").read_bytes() == (second / "model.pt").read_bytes()
    meta1 = json.loads((first / "model.json").read_text())
    meta2 = json.loads((second / "model.json").read_text())
    assert meta1["trained_at"].startswith("2024-02-01") and not reused(meta1)
    assert meta2["trained_at"].startswith("2024-06-01") and reused(meta2)
    assert meta2["training_reason"] == "second"
    assert meta2["training"] == meta1["training"]  # what the training cost, once
    assert meta2["data_manifest"]["path"] == Settings(home=tmp_path / "b").relative(two)
    assert meta2["sha256"] == meta1["sha256"]


def test_other_parameters_train_again(tmp_path: Path, prepared_twice: tuple[Path, Path]) -> None:
    one, _ = prepared_twice
    other = TrainParams(num_epochs=2, batch_size=128, patience=None, device="cpu")
    assert training_key(one, PARAMS) != training_key(one, other)
    calls: list[int] = []
    cache = tmp_path / "cache"
    with working_root(tmp_path / "a"):
        train_or_reuse(cache, one, tmp_path / "o1", PARAMS, _counting(one, tmp_path / "o1", calls))

        def run_other() -> tuple[Path, TrainResult]:
            calls.append(2)
            return train_prepared(one, tmp_path / "o2", other)

        _, result = train_or_reuse(cache, one, tmp_path / "o2", other, run_other)
    assert result is not None and calls == [1, 2]
    assert sorted(p.name for p in cache.iterdir() if p.is_dir()) == sorted(
        [training_key(one, PARAMS), training_key(one, other)]  # type: ignore[list-item]
    )
