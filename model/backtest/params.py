"""The ``backtest`` flow's flat parameters, each typed and bounded so Prefect validates it and
builds the run form (``retrain backtest`` passes the same values)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

BacktestData = Annotated[
    str,
    Field(
        min_length=1,
        description="Dated history: a Parquet file, folder or CSV with a time column, or a "
        "folder of date=YYYY-MM-DD batches.",
    ),
]
TimeColumn = Annotated[
    str | None,
    Field(description="The column with each row's time (default: the date= partition)."),
]
Start = Annotated[
    str,
    Field(
        min_length=1,
        description="End of the start window (YYYY-MM-DD): the first production model is "
        "trained on the rows before it; the replay starts there.",
    ),
]
End = Annotated[str | None, Field(description="Replay rows before this date only (default: all).")]
Period = Annotated[
    Literal["day", "week", "month", "year"],
    Field(description="One batch per period (UTC; weeks from Monday): its cycle runs at its end."),
]
Baselines = Annotated[
    list[Literal["configured", "never", "always"]],
    Field(
        max_length=3,
        description="Policies to compare: the model's configured one, never retrain, retrain "
        "every batch and always promote.",
    ),
]
Variants = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=2_000)]],
    Field(
        max_length=20,
        description="More policies, each the configured one with KEY=VALUE changes "
        "(space-separated), e.g. 'improvement_threshold=0.01'.",
    ),
]
Workers = Annotated[
    int,
    Field(
        ge=1,
        le=64,
        description="Policies replayed at once: above 1, on Dask (a LocalCluster, or "
        "RETRAIN_DASK_ADDRESS).",
    ),
]
KeepScratch = Annotated[
    bool,
    Field(description="Keep each policy's scratch working root (registry, reports) after."),
]
OutDir = Annotated[
    str | None,
    Field(description="The report's folder (default: backtests/<model>/<run> in RETRAIN_HOME)."),
]
