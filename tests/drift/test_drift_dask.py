"""Drift on a Dask cluster (a ``LocalCluster`` of 2 worker processes): partition-parallel
passes (:mod:`model.drift.parallel`) against the single-machine streamed path on the same
files, report for report and file for file; errors raised on a worker reach the caller as
the same one-line error; the monitor's settings pick the engine."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator
from concurrent.futures import Executor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from test_drift_stream import monitor_scenario, write_parquet

from model.clock import at
from model.data import FeatureSpec
from model.drift import DriftSettings
from model.drift.files import write_reports
from model.drift.parallel import fragments
from model.drift.sources import ParquetSource
from model.drift.stream import ParquetSides, stream_drift
from model.errors import DataValidationError, SettingsError
from model.external import MIN_BUDGET

START = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
BUDGET = MIN_BUDGET * 4  # 256 KiB: fragments of 2,048 rows, runs of 16,384 values


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as local:
        yield local.scheduler_address


@pytest.fixture(scope="module")
def executor(cluster: str) -> Iterator[Executor]:
    from distributed import Client

    with Client(cluster) as client:
        yield client.get_executor()


def test_fragments_cover_every_row_group_once(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": np.arange(10_000.0)})
    folder = write_parquet(frame, tmp_path / "f", files=3, row_group=700)
    src = ParquetSource.layout(folder)
    parts = fragments(src, 2_048)
    assert [f.start for f in parts] == list(np.cumsum([0] + [f.rows for f in parts])[:-1])
    assert sum(f.rows for f in parts) == 10_000 and max(f.rows for f in parts) <= 2_048
    covered = [(f.file, g) for f in parts for g in f.row_groups]
    assert (
        len(covered)
        == len(set(covered))
        == sum(pq.ParquetFile(f).num_row_groups for f in src.files)
    )


def test_the_dask_report_is_the_single_machine_report(tmp_path: Path, executor: Executor) -> None:
    """The monitor's scenario (two batches, a schema change, text and coded categoricals,
    integers with missing values, the target, the model's sample), streamed here and on the
    cluster: the same report, and the same files written of it, byte for byte."""
    from test_drift_stream import _Scorer

    ref, parts, spec = monitor_scenario(tmp_path)
    settings = DriftSettings(max_model_rows=5_000, seed=3)
    names = {"reference_path": "ref", "current_path": ["b1", "b2"]}
    reports = {}
    for engine, pool in (("local", None), ("dask", executor)):
        scratch = tmp_path / f"scratch-{engine}"
        scratch.mkdir()
        with at(START):  # the report's created_at
            reports[engine] = stream_drift(
                ref,
                parts,
                spec,
                settings,
                memory_budget=BUDGET,
                model=_Scorer(),
                scratch_dir=scratch,
                executor=pool,
                **names,
            )
        assert not list(scratch.iterdir())  # the sorted runs are gone
    local, dask = reports["local"], reports["dask"]
    assert local.prediction is not None and local.schema_changes == {"is_premium": "all_missing"}
    assert json.dumps(dask.to_dict(), sort_keys=True) == json.dumps(local.to_dict(), sort_keys=True)
    files = {e: write_reports(r, tmp_path / e) for e, r in reports.items()}
    for kind, path in files["local"].items():  # drift.json, drift.md, drift.html
        assert files["dask"][kind].read_bytes() == path.read_bytes(), kind


def test_the_work_really_ran_on_the_workers(tmp_path: Path, executor: Executor) -> None:
    """Each pass handed fragments to the two worker processes, none ran here."""
    calls: list[str] = []

    class Counting(Executor):
        def map(self, fn, *iterables, **kwargs):  # type: ignore[no-untyped-def, override]
            calls.append(fn.__name__)
            return executor.map(fn, *iterables, **kwargs)

    frame = pd.DataFrame({"x": np.random.default_rng(1).normal(size=20_000), "c": ["a"] * 20_000})
    ref = write_parquet(frame, tmp_path / "r", files=2, row_group=1_000)
    cur = write_parquet(frame.assign(x=frame["x"] + 0.3), tmp_path / "c", files=1, row_group=1_000)
    sides = ParquetSides(ref, {"c": cur}, memory_budget=BUDGET, executor=Counting())
    assert calls == ["look_fragment", "look_fragment"]
    pids = executor.map(_pid, range(8))
    assert len(set(pids) - {os.getpid()}) == 2
    drift = sides.numeric("x", 10)
    assert drift.p_value < 1e-6 and calls[2:] == ["sort_fragment", "sort_fragment"]
    sides.categorical("c", as_text=True)
    assert "count_fragment" in calls[4:]


def _pid(_: int) -> int:
    import time

    time.sleep(0.2)
    return os.getpid()


@pytest.mark.parametrize(
    "values",
    [
        [1.0, 2.0, 3.0, 4.0, float("inf"), 6.0] * 700,  # an infinite number, a later fragment
        ["1", "2", "3", "4", "x", "5"] * 700,  # mostly numbers: mixed types
    ],
)
def test_a_workers_error_is_the_single_machine_error(
    tmp_path: Path, executor: Executor, values: list
) -> None:
    """The same one-line error, its row counted over the whole source, not the fragment."""
    values = [values[0]] * 3_000 + values
    ref = write_parquet(pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0]}), tmp_path / "r", 1, 2)
    bad = write_parquet(pd.DataFrame({"x": values}), tmp_path / "c", files=2, row_group=500)
    spec = FeatureSpec(numeric=["x"], categorical=[])
    errors = []
    for pool in (None, executor):
        with pytest.raises(DataValidationError) as error:
            stream_drift(ref, bad, spec, memory_budget=BUDGET, executor=pool)
        errors.append(str(error.value))
    assert errors[0] == errors[1]
    assert "row 3004" in errors[0]


def test_settings_pick_the_engine(
    tmp_path: Path, cluster: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RETRAIN_DASK_ADDRESS: the running scheduler; RETRAIN_DATA_ENGINE=dask alone: a
    LocalCluster for the call; neither: this process; a scheduler that does not answer:
    one line naming the variable."""
    from model import cluster as cluster_module
    from model.cluster import data_executor, with_engine
    from model.settings import Settings

    home = tmp_path / "home"
    local = Settings(home=home)
    assert not local.on_dask
    assert Settings(home=home, dask_address=cluster).on_dask  # the address alone: dask
    assert not Settings(home=home, dask_address=cluster, data_engine="local").on_dask
    assert with_engine(Settings(home=home, dask_address=cluster), "local").on_dask is False
    assert with_engine(local, "dask").on_dask and with_engine(local, None) is local
    with data_executor(local) as none:
        assert none is None
    with data_executor(Settings(home=home, dask_address=cluster)) as pool:
        assert pool is not None and len(set(pool.map(_pid, range(6)))) == 2
    with data_executor(Settings(home=home, data_engine="dask")) as pool:
        assert pool is not None and os.getpid() not in set(pool.map(_pid, range(4)))
    monkeypatch.setattr(cluster_module, "CONNECT_TIMEOUT_S", 2)
    with (
        pytest.raises(SettingsError, match=r"^RETRAIN_DASK_ADDRESS=tcp://127.0.0.1:9: no Dask"),
        data_executor(Settings(home=home, dask_address="tcp://127.0.0.1:9")),
    ):
        pass


def test_signed_zeros_give_the_same_report(tmp_path: Path, executor: Executor) -> None:
    """-0.0 and 0.0 are one value: runs sorted per fragment order them as the whole column."""
    rng = np.random.default_rng(5)
    x = np.where(rng.random(30_000) < 0.5, -0.0, 0.0)
    x[rng.random(30_000) < 0.2] = 1.0
    frame = pd.DataFrame({"x": x})
    ref = write_parquet(frame, tmp_path / "r", files=3, row_group=1_000)
    cur = write_parquet(frame.sample(frac=1.0, random_state=1), tmp_path / "c", 2, 1_000)
    spec = FeatureSpec(numeric=["x"], categorical=[])
    reports = []
    for pool in (None, executor):
        with at(START):
            report = stream_drift(ref, cur, spec, memory_budget=BUDGET, executor=pool)
        reports.append(json.dumps(report.to_dict(), sort_keys=True))
    assert reports[0] == reports[1]


def test_a_scheduler_without_workers_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from distributed import LocalCluster

    from model import cluster as cluster_module
    from model.cluster import data_executor
    from model.settings import Settings

    monkeypatch.setattr(cluster_module, "CONNECT_TIMEOUT_S", 2)
    with LocalCluster(n_workers=0, processes=True, dashboard_address=None) as empty:
        settings = Settings(home=tmp_path, dask_address=empty.scheduler_address)
        with (
            pytest.raises(SettingsError, match=r"the scheduler has no worker"),
            data_executor(settings),
        ):
            pass
