"""``prepare`` on a Dask cluster (a ``LocalCluster`` of 2 worker processes): every streamed
pass partition-parallel (:mod:`model.data.stream_parallel`) against the same preparation in
one process and reading whole: the same split files byte for byte, the same manifest and
content hash, the same one-line errors, nothing left behind."""

from __future__ import annotations

import filecmp
import json
import os
from collections.abc import Iterator
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from test_stream_prepare import BREAKS, TINY, _error, _frame, _write, schema_change_sources

from model.data import prepare
from model.data.manifest import Manifest
from model.data.split import SPLITS


@pytest.fixture(scope="module")
def executor() -> Iterator[Executor]:
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client.get_executor()


class Counting(Executor):
    """The cluster's executor, counting what it is handed and from which worker it came."""

    def __init__(self, inner: Executor) -> None:
        self.inner = inner
        self.calls: list[str] = []

    def map(self, fn, *iterables, **kwargs):  # type: ignore[no-untyped-def, override]
        self.calls.append(fn.__name__)
        return self.inner.map(fn, *iterables, **kwargs)

    def submit(self, fn, *args, **kwargs) -> Future:  # type: ignore[no-untyped-def, override]
        self.calls.append(fn.__name__)
        return self.inner.submit(fn, *args, **kwargs)


def _three(sources: list[Path], out: Path, pool: Executor, **kw: Any) -> list[Manifest]:
    """Read whole, streamed here, streamed on the cluster."""
    return [
        prepare(sources, out / "whole", **kw),
        prepare(sources, out / "local", memory_budget=TINY, **kw),
        prepare(sources, out / "dask", memory_budget=TINY, executor=pool, **kw),
    ]


def _assert_same(manifests: list[Manifest]) -> None:
    whole, local, dask = manifests
    assert dask.preparation == {**local.preparation, "engine": "dask"}
    dicts = []
    for m in manifests:
        d = m.to_dict()
        d.pop("created_at"), d.pop("preparation", None)
        dicts.append(json.dumps(d, sort_keys=True))
    assert dicts[0] == dicts[1] == dicts[2]
    assert whole.sha256 == local.sha256 == dask.sha256
    for name in SPLITS:
        assert filecmp.cmp(local.split_path(name), dask.split_path(name), shallow=False), name
        assert filecmp.cmp(whole.split_path(name), dask.split_path(name), shallow=False), name
    left = [p.name for p in dask.path.parent.iterdir() if p.name != dask.path.name]
    assert left == []  # no scratch: codes, keys, pieces all gone
    assert sorted(p.name for p in dask.path.iterdir()) == sorted(
        p.name for p in local.path.iterdir()
    )


@pytest.mark.parametrize("with_id", [False, True])
def test_one_file_on_the_cluster_is_the_same_folder(
    tmp_path: Path, executor: Executor, with_id: bool
) -> None:
    src = _write(_frame(9000, 1, with_id=with_id), tmp_path / "data.parquet")
    pool = Counting(executor)
    manifests = _three([src], tmp_path, pool)
    _assert_same(manifests)
    assert {"x", "counts", "city"} <= set(manifests[2].imputation)  # medians were taken
    passes = set(pool.calls)
    assert {"count_part", "scan_part", "median_counts_part", "median_scan_part"} <= passes
    assert pool.calls.count("write_part") >= 3  # one per fragment: 9,000 rows, 3,000 a group


def test_the_work_runs_in_the_worker_processes(executor: Executor) -> None:
    pids = set(executor.map(_pid, range(8)))
    assert len(pids) == 2 and os.getpid() not in pids


def _pid(_: int) -> int:
    import time

    time.sleep(0.2)
    return os.getpid()


def test_a_time_split_on_the_cluster_is_the_same_folder(tmp_path: Path, executor: Executor) -> None:
    src = _write(_frame(7000, 2), tmp_path / "data.parquet")
    manifests = _three([src], tmp_path, executor, timestamp_column="when", time_split=True)
    _assert_same(manifests)
    assert manifests[2].split["method"] == "time"


def test_batches_with_schema_changes_on_the_cluster_are_the_same_folder(
    tmp_path: Path, executor: Executor
) -> None:
    """A batch without a feature, one with a feature all missing, a folder of two files
    whose types differ, extra columns: several sources, each cut into fragments."""
    sources, incoming = schema_change_sources(tmp_path)
    manifests = _three(
        sources,
        tmp_path,
        executor,
        batch_root=incoming,
        learned_values={"x": 0.25},
        max_imputed_row_share=0.5,
    )
    _assert_same(manifests)
    kinds = {(c["column"], c["kind"]) for c in manifests[2].schema_changes}
    assert kinds == {("x", "missing"), ("counts", "all_missing")}


@pytest.mark.parametrize("break_it", BREAKS)
def test_bad_data_on_the_cluster_is_the_same_error(
    tmp_path: Path, executor: Executor, break_it: Any
) -> None:
    """The error of a later fragment, its row numbered over the whole source."""
    src = _write(break_it(_frame(6000, 7)), tmp_path / "bad.parquet", 1000)
    whole = _error(lambda: prepare([src], tmp_path / "w"))
    dask = _error(lambda: prepare([src], tmp_path / "d", memory_budget=TINY, executor=executor))
    assert dask == whole
    left = tmp_path / "d"
    assert not left.exists() or not list(left.iterdir())  # nothing left behind


def test_id_gaps_and_uncombinable_sources_are_the_same_errors(
    tmp_path: Path, executor: Executor
) -> None:
    df = _frame(5000, 8, with_id=True)
    df["id"] = df["id"].astype("Int64")
    df.loc[4321, "id"] = pd.NA
    ids = _write(df, tmp_path / "ids.parquet", 1000)
    a, b = _frame(3000, 12), _frame(2000, 13)
    a["big"], b["big"] = np.int64(2**60 + 1), 1.5
    clash = [_write(a, tmp_path / "a.parquet"), _write(b, tmp_path / "b.parquet")]
    for sources, kw in (([ids], {}), ([ids], {"time_split": True}), (clash, {"exclude": ["big"]})):
        whole = _error(lambda s=sources, k=kw: prepare(s, tmp_path / "w", **k))
        dask = _error(
            lambda s=sources, k=kw: prepare(
                s, tmp_path / "d", memory_budget=TINY, executor=executor, **k
            )
        )
        assert dask == whole


def test_awkward_names_and_many_labels_are_the_single_machine_answers(
    tmp_path: Path, executor: Executor
) -> None:
    """A feature named as the pieces' codes column gives the same folder; duplicate column
    names and a target of 2,000 labels over several fragments give the same one line."""
    df = _frame(6000, 21)
    df["__split_code__"] = np.arange(6000) % 3
    src = _write(df, tmp_path / "codes.parquet", 1000)
    _assert_same(_three([src], tmp_path / "a", executor))

    import pyarrow as pa
    import pyarrow.parquet as pq

    dup = tmp_path / "dup.parquet"
    table = pa.table({"x": [1.0, 2.0], "target": [0, 1]})
    pq.write_table(table.append_column("x", pa.array([3.0, 4.0])), dup)
    many = _write(_frame(6000, 22).assign(target=np.arange(6000) % 2000), tmp_path / "m.parquet")
    for sources in ([dup], [many]):
        local = _error(lambda s=sources: prepare(s, tmp_path / "l", memory_budget=TINY))
        dask = _error(
            lambda s=sources: prepare(s, tmp_path / "d", memory_budget=TINY, executor=executor)
        )
        assert dask == local
    assert "more than 1001 distinct values" in local


def test_a_failed_write_on_the_cluster_leaves_nothing(
    tmp_path: Path, executor: Executor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The split writer fails (a full disk) while the workers' pieces wait: the error is one
    line, and neither the folder nor the pieces' files are left."""
    from model.errors import DataValidationError

    src = _write(_frame(9000, 23), tmp_path / "d.parquet", 1000)

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("model.data.stream_prepare.SplitWriter.write", full)
    with pytest.raises(DataValidationError, match="No space left on device"):
        prepare([src], tmp_path / "out", memory_budget=TINY, executor=executor)
    assert list((tmp_path / "out").iterdir()) == []
