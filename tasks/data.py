"""Prefect task over the data layer: prepare the splits a cycle trains and tests on."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task

from model.data import ALL_SOURCES, prepare
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
) -> str:
    """Read ``sources``, validate, split stably and write the prepared folder; return its path.

    Retries cover transient IO only: bad input fails the same way on every try.
    """
    logger = get_run_logger()
    settings = get_settings()
    manifest = prepare(
        [Path(s) for s in sources],
        settings.prepared_dir,
        target=target_column,
        id_column=id_column,
        selection=selection,
    )
    kill_point("preparing")
    counts = {name: info.rows for name, info in manifest.splits.items()}
    logger.info("Prepared %s from %d source(s): %s", manifest.path, len(sources), counts)
    return str(manifest.path)
