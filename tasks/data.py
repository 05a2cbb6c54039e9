"""Prefect task over the data layer: prepare the splits a cycle trains and tests on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import get_run_logger, task

from model.cluster import data_executor, with_engine
from model.cycle.config import RetrainingConfig
from model.cycle.monitor import production_medians
from model.cycle.quarantine import set_aside_hint
from model.data import ALL_SOURCES, prepare
from model.data.schema import DEFAULT_MAX_IMPUTED_ROW_SHARE
from model.errors import DataValidationError
from model.settings import get_settings
from tasks._io import IO_RETRIES, IO_RETRY_DELAYS, retry_unless_bad_input
from tasks.faults import kill_point


@task(
    name="prepare_data",
    retries=IO_RETRIES,
    retry_delay_seconds=IO_RETRY_DELAYS,
    retry_condition_fn=retry_unless_bad_input,
)
def prepare_data(
    sources: list[str],
    target_column: str = "target",
    id_column: str | None = None,
    selection: str = ALL_SOURCES,
    roles: dict[str, list[str]] | None = None,
    max_imputed_row_share: float = DEFAULT_MAX_IMPUTED_ROW_SHARE,
    batch_root: str | None = None,
    data_engine: str | None = None,
) -> str:
    """Read ``sources``, validate, split stably and write the prepared folder; return its path.

    Retries cover transient IO only: bad input fails the same way on every try. ``roles``:
    declared ``categorical_columns``, ``numeric_columns`` and ``exclude`` lists. A feature a
    batch lacks or has all-missing is imputed with production's training median (schema
    changes, ``model.data.schema``), unless over ``max_imputed_row_share``. ``batch_root``:
    the incoming folder, whose sources are batches named by their name there.
    ``data_engine``: the model's (None: the environment's); on Dask, every pass over Parquet
    sources runs partition-parallel on the cluster (:mod:`model.cluster`).
    """
    logger = get_run_logger()
    settings = with_engine(get_settings(), data_engine)
    with data_executor(settings) as executor:
        manifest = prepare(
            [Path(s) for s in sources],
            settings.prepared_dir,
            target=target_column,
            id_column=id_column,
            selection=selection,
            categorical_columns=(roles or {}).get("categorical_columns", ()),
            numeric_columns=(roles or {}).get("numeric_columns", ()),
            exclude=(roles or {}).get("exclude", ()),
            learned_values=production_medians(settings),
            max_imputed_row_share=max_imputed_row_share,
            batch_root=batch_root,
            memory_budget=settings.memory_budget,
            executor=executor,
        )
    if manifest.preparation.get("engine") == "dask":
        logger.info("Prepared on Dask: every pass partition-parallel on the cluster's workers")
    if manifest.preparation.get("streamed"):
        logger.info(
            "Prepared in a stream of %d-row chunks within the memory budget of %d MiB",
            manifest.preparation["chunk_rows"],
            settings.memory_budget >> 20,
        )
    for change in manifest.schema_changes:
        logger.warning(
            "Schema change: %r %s in %s (%d rows), imputed with %r (%s)",
            change["column"],
            change["kind"].replace("_", "-"),
            change["source"],
            change["rows"],
            change["value"],
            change["value_from"],
        )
    kill_point("preparing")
    counts = {name: info.rows for name, info in manifest.splits.items()}
    logger.info("Prepared %s from %d source(s): %s", manifest.path, len(sources), counts)
    return str(manifest.path)


def prepare_cycle_data(cfg: RetrainingConfig, sources: dict[str, Any]) -> str:
    """The ``prepare_data`` task for one cycle: its base data (when any) then its batches, with
    the model's column roles and schema-change limit (``train-candidate`` and the sweep)."""
    paths = [*([sources["base"]] if sources["base"] else []), *sources["batches"]]
    try:
        return _prepare_cycle(cfg, sources, paths)
    except DataValidationError as exc:  # one failure, naming the command that sets it aside
        if not sources.get("incoming"):
            raise
        hint = set_aside_hint(exc, Path(sources["incoming"]), cfg.model_name)
        raise DataValidationError(hint) from exc


def _prepare_cycle(cfg: RetrainingConfig, sources: dict[str, Any], paths: list[str]) -> str:
    return prepare_data(
        paths,
        cfg.target_column,
        cfg.id_column,
        sources["selection"],
        roles={
            "categorical_columns": cfg.categorical_columns or [],
            "numeric_columns": cfg.numeric_columns or [],
            "exclude": cfg.exclude_columns or [],
        },
        max_imputed_row_share=cfg.max_imputed_row_share,
        batch_root=sources.get("incoming"),
        data_engine=cfg.data_engine,
    )
