"""The Dask cluster the data passes run on, as a :class:`concurrent.futures.Executor`.

With ``RETRAIN_DATA_ENGINE=dask``, or ``RETRAIN_DASK_ADDRESS`` set and the engine not
``local`` (:attr:`model.settings.Settings.on_dask`; a model's ``data_engine`` key in
``retraining.toml`` overrides the variable in its flows: :func:`with_engine`), prepare's and
drift's passes over Parquet data run partition-parallel (:mod:`model.data.stream_parallel`,
:mod:`model.drift.parallel`) on the scheduler at
``RETRAIN_DASK_ADDRESS``, else on a ``distributed.LocalCluster`` started for the call and
closed after it. The domain code sees only an ``Executor`` (the client's
``get_executor()``): its ``map`` hands a function and its arguments to the workers and gives
the results back in order.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from concurrent.futures import Executor
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from model.errors import RetrainError, SettingsError

if TYPE_CHECKING:
    from model.settings import Settings

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 30
"""How long a client waits for the scheduler at ``RETRAIN_DASK_ADDRESS``."""


def with_engine(settings: Settings, engine: str | None) -> Settings:
    """``settings`` with a model's ``data_engine`` (None: the environment's) in force."""
    return settings if engine is None else settings.model_copy(update={"data_engine": engine})


def local_workers() -> int:
    """A LocalCluster's workers: one single-threaded process per core, at least 2, at most 8."""
    return max(2, min(8, os.cpu_count() or 2))


@contextmanager
def data_executor(settings: Settings) -> Iterator[Executor | None]:
    """The Dask workers the data passes run on, or None (this process) when Dask is not the
    data engine. A scheduler that does not answer is a one-line :class:`SettingsError`."""
    if not settings.on_dask:
        yield None
        return
    from distributed import Client, KilledWorker, LocalCluster
    from distributed.client import FutureCancelledError
    from distributed.comm.core import CommClosedError

    cluster: Any = None
    if settings.dask_address:
        where = f"RETRAIN_DASK_ADDRESS={settings.dask_address}"
        try:
            client = Client(settings.dask_address, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError, ValueError) as exc:
            raise SettingsError(f"{where}: no Dask scheduler answered ({_line(exc)})") from exc
        try:
            client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError) as exc:
            client.close()
            raise SettingsError(
                f"{where}: the scheduler has no worker (none joined in {CONNECT_TIMEOUT_S} s)"
            ) from exc
    else:
        where = f"a LocalCluster of {local_workers()} worker(s)"
        cluster = LocalCluster(
            n_workers=local_workers(),
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        )
        try:
            client = Client(cluster)
        except BaseException:
            cluster.close()
            raise
    logger.info("data passes run on Dask: %s", where)
    try:
        yield client.get_executor()
    except (CommClosedError, FutureCancelledError, KilledWorker) as exc:
        raise RetrainError(f"Dask ({where}) lost its work: {_line(exc)}") from exc
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
