"""Drift of production's data when it is too large to read whole.

The monitor (:mod:`model.cycle.monitor`) reads the reference and the batches whole while
their in-memory drift would fit in ``settings.memory_budget``; past it, and when they are
Parquet, it streams them here (:mod:`model.drift.stream`: the same report, in about the
budget; with Dask as the data engine, :mod:`model.cluster`, always, partition-parallel on
the cluster's workers, their sorted runs in ``<home>/.scratch``), and the label-free
estimate uses as many rows as the model's sample, drawn at random.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from model.cluster import data_executor
from model.drift import DriftReport, DriftSettings
from model.drift.detect import drift_of
from model.drift.sources import in_memory_size
from model.drift.stream import ParquetSides

if TYPE_CHECKING:
    import pandas as pd

    from model.data import FeatureSpec
    from model.settings import Settings

logger = logging.getLogger(__name__)

IN_MEMORY_FACTOR = 6
"""The in-memory drift's peak memory over its data's size in pandas as
:func:`model.drift.stream.in_memory_size` estimates it (measured: 5.3 on the bench's numbers
and integer codes, 2.1 on text, numbers and codes): drift streams when that product passes
the budget."""


def streamed_size(settings: Settings, sources: Sequence[Path]) -> int | None:
    """The in-memory drift's estimated peak (bytes) when it would not fit in
    ``settings.memory_budget`` (or Dask is the data engine) and the sources are Parquet (then
    drift streams them), else None (read whole)."""
    size = in_memory_size(sources)
    if size is None or (size * IN_MEMORY_FACTOR <= settings.memory_budget and not settings.on_dask):
        return None
    return size * IN_MEMORY_FACTOR


def streamed_drift(
    settings: Settings,
    ref_path: Path,
    batches: Mapping[str, Path],
    spec: FeatureSpec,
    drift_settings: DriftSettings | None,
    scorer: Any,
    model_info: dict[str, Any] | None,
    names: tuple[str, list[str]],
) -> tuple[DriftReport, dict[str, pd.DataFrame]]:
    """Drift of data too large to read whole, streamed in ``settings.memory_budget``
    (:mod:`model.drift.stream`), and, with a model, the rows (by batch) the label-free
    estimate uses: as many as the model's sample, drawn at random."""
    logger.info(
        "drift: %s and %d batch(es) are streamed within the memory budget of %d MiB",
        ref_path,
        len(batches),
        settings.memory_budget >> 20,
    )
    with data_executor(settings) as executor:
        scratch = settings.home / ".scratch" if executor is not None else None
        if scratch is not None:
            scratch.mkdir(parents=True, exist_ok=True)  # the workers' sorted runs: shared
        sides = ParquetSides(
            ref_path,
            batches,
            memory_budget=settings.memory_budget,
            scratch_dir=scratch,
            executor=executor,
        )
        report = drift_of(
            sides,
            spec,
            drift_settings,
            model=scorer,
            paths=([names[0]], names[1]),
            model_info=model_info,
        )
    if executor is not None:
        report.current["engine"] = "dask"
    if scorer is None:
        return report, {}
    ds = drift_settings or DriftSettings()
    return report, sides.sample_parts(ds.max_model_rows, ds.seed + 1)
