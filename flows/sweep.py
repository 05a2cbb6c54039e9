"""Candidate sweeps on Dask: the ``train-candidates`` subflow of ``retraining`` when the run
has a ``sweep``.

It prepares the data once, trains the sweep's K configurations
(:func:`model.cycle.sweep.candidates`) as ``train_model`` tasks in parallel through
``DaskTaskRunner`` (``prefect-dask``): on a ``distributed.LocalCluster`` started for the
sweep, or on the scheduler at ``RETRAIN_DASK_ADDRESS``. The winner is chosen on the
validation split only (:func:`model.cycle.sweep.choose_winner`), gets the sweep's table in
its ``model.json`` and is the only candidate registered, so only it reaches the gate.

The Dask workers report to the parent's Prefect API: without ``PREFECT_API_URL`` each worker
process would start its own ephemeral server (measured 47.7 s vs 7.4 s for 4 small
configurations). ``distributed`` and ``prefect_dask`` are imported only here, only when a
sweep runs: K = 1 (no sweep) pays no Dask start-up.
"""

from __future__ import annotations

import contextlib
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.settings import PREFECT_API_URL, temporary_settings

from model.cycle.config import RetrainingConfig
from model.cycle.sweep import (
    CandidateResult,
    SweepSpec,
    candidates,
    choose_winner,
    leaderboard_rows,
    record_sweep,
    threads_per_candidate,
    worker_count,
)
from model.errors import ParameterError
from model.registry import ModelRegistry
from model.settings import get_settings, model_scope
from tasks.data import prepare_cycle_data
from tasks.registry import register_model
from tasks.training import train_model

SWEEP_KEY = "sweep-leaderboard"
"""Artifact key base (``sweep-leaderboard-<model>``): every candidate of the last sweep."""


def parent_api_url() -> str | None:
    """The Prefect API this process uses: ``PREFECT_API_URL``, else the running ephemeral
    server's (the one this process started), else None."""
    url = PREFECT_API_URL.value()
    if url:
        return str(url)
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    return server.api_url if server.running else None


PRE_SPAWN_ENVIRON = "distributed.nanny.pre-spawn-environ"


@contextlib.contextmanager
def worker_environment() -> Iterator[None]:
    """Dask's nanny starts each worker with ``MALLOC_TRIM_THRESHOLD_=65536`` (to hand freed
    memory back to the OS early). PyTorch allocates and frees a batch's tensors hundreds of
    times a second: with that setting every epoch of a worker took 1.65 s where the same
    training in a plain process took 0.98 s (1M rows, 64-32, batch 512; measured here). The
    workers this starts keep glibc's default instead; the thread caps stay."""
    import dask
    import distributed  # noqa: F401  (its configuration defaults, the nanny's included)

    environ = dict(dask.config.get(PRE_SPAWN_ENVIRON, default={}) or {})
    environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    with dask.config.set({PRE_SPAWN_ENVIRON: environ}):
        yield


def task_runner(spec: SweepSpec, k: int, api_url: str | None) -> Any:
    """The sweep's ``DaskTaskRunner``: :func:`dask_runner` with
    :func:`~model.cycle.sweep.worker_count` workers."""
    return dask_runner(worker_count(spec, k), api_url)


def dask_runner(workers: int, api_url: str | None) -> Any:
    """A ``DaskTaskRunner``: on ``RETRAIN_DASK_ADDRESS``, else a LocalCluster of ``workers``
    single-threaded processes whose environment carries ``PREFECT_API_URL`` (no dashboard: no
    fixed port to collide on). The sweep's candidates and a backtest's policies run on it."""
    from prefect_dask import DaskTaskRunner

    address = get_settings().dask_address
    if address:
        return DaskTaskRunner(address=address)
    env = {"PREFECT_API_URL": api_url} if api_url else {}
    return DaskTaskRunner(
        cluster_class="distributed.LocalCluster",
        cluster_kwargs={
            "n_workers": workers,
            "threads_per_worker": 1,
            "processes": True,
            "dashboard_address": None,
            "env": env,
        },
    )


@flow(name="sweep-candidates")
def train_all(
    prepared_dir: str,
    out_root: str,
    params: list[dict[str, Any]],
    extra_metadata: dict[str, Any],
    model_name: str,
) -> list[str]:
    """Train every configuration as a ``train_model`` task on this flow's task runner (Dask);
    return their model folders in order."""
    futures = [
        train_model.submit(
            prepared_dir,
            str(Path(out_root) / f"candidate-{number}"),
            p,
            extra_metadata=extra_metadata,
            model_name=f"{model_name}-candidate-{number}",
        )
        for number, p in enumerate(params, start=1)
    ]
    return [f.result() for f in futures]


@task(name="publish_sweep_leaderboard")
def publish_sweep_leaderboard(rows: list[dict[str, Any]], model_name: str) -> None:
    """The sweep's candidates, their configuration and validation metrics, as a table."""
    create_table_artifact(
        rows,
        key=f"{SWEEP_KEY}-{model_name}",
        description="Candidates of the last sweep: configuration and validation metrics; the "
        "winner (highest validation AUC) is the only one registered and compared",
    )


@flow(name="train-candidates", flow_run_name="train-candidates-{trigger[primary]}")
def train_candidates(
    config: dict[str, Any],
    trigger: dict[str, Any],
    sources: dict[str, Any],
    out_dir: str | None = None,
) -> dict[str, Any]:
    """Prepare data → train the sweep's candidates on Dask → register the winner. Returns
    version, prepared folder and the sweep's rows, like ``train-candidate``."""
    cfg = RetrainingConfig(**config)
    if cfg.sweep is None:
        raise ParameterError("train-candidates: parameter sweep is not set (use train-candidate)")
    spec = cfg.sweep
    with model_scope(cfg.model_name):
        settings = get_settings()
        logger = get_run_logger()
        from prefect.runtime import flow_run

        run_id = str(flow_run.root_flow_run_id) if flow_run.id else None
        prepared = prepare_cycle_data(cfg, sources)
        out = Path(out_dir or settings.runs_dir / (run_id or uuid.uuid4().hex)) / "sweep"
        base = cfg.train_params()
        todo = candidates(spec, cfg.seed)
        workers = worker_count(spec, len(todo))
        # a LocalCluster shares this machine's CPUs; a remote scheduler's workers choose their
        # own (model.threads: Dask sets OMP_NUM_THREADS=1 there, one thread per worker process)
        threads = None if settings.dask_address else threads_per_candidate(workers)
        params = [{"num_threads": threads, **c.params(base)} for c in todo]
        why = {
            "trigger": trigger["primary"],
            "reasons": trigger["reasons"],
            "drift_report_path": trigger.get("drift_report_path"),
            "sources": sources,
            "flow_run_id": run_id,
        }
        api_url = parent_api_url()
        logger.info(
            "sweep: %d candidate(s) (%s search) on %s, %s thread(s) each; Prefect API %s",
            len(todo),
            spec.search,
            settings.dask_address or f"a LocalCluster of {workers} worker(s)",
            threads or "default",
            api_url or "none",
        )
        started = time.monotonic()
        try:
            runner = task_runner(spec, len(todo), api_url)
            # the tasks carry this settings context to the workers: the parent's API, not theirs
            # the model scope (a context variable) does not reach the Dask workers: everything
            # model-specific a candidate needs is passed explicitly (folders, model name)
            api = {PREFECT_API_URL: api_url} if api_url else {}
            with temporary_settings(api), worker_environment():
                folders = train_all.with_options(task_runner=runner)(
                    prepared, str(out), params, {"training_reason": why}, cfg.model_name
                )
            results = [
                CandidateResult.from_folder(c, f) for c, f in zip(todo, folders, strict=True)
            ]
            winner = choose_winner(results)
            rows = leaderboard_rows(results, winner, base)
            record_sweep(winner.folder, rows, spec)
            version = register_model(winner.folder, reason=why, run_id=run_id)
        finally:  # the registry holds the winner's copy; the others are not kept
            shutil.rmtree(out, ignore_errors=True)
        publish_sweep_leaderboard(rows, cfg.model_name)
        logger.info(
            "sweep: candidate %d of %d won on validation AUC %.4f (%.1f s); registered %s at %s",
            winner.candidate.number,
            len(todo),
            winner.val_auc,
            time.monotonic() - started,
            version,
            ModelRegistry(settings.models_dir).version_path(version),
        )
        return {"version": version, "prepared_dir": prepared, "sweep": rows}
