"""The flat parameters of the live flows (``challenger-evaluation``, ``post-promotion-watch``),
each typed and bounded so Prefect validates it and builds the run form; the flows gather them
into one :class:`model.live.outcome.LiveSettings`, which checks them again (one line each)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

LiveAlpha = Annotated[
    float,
    Field(
        gt=0.0,
        lt=0.5,
        description="Level of the challenger's evaluation: live labels are fresh rows, so the "
        "full alpha at any age of the model.",
    ),
]
WatchAlpha = Annotated[
    float,
    Field(
        gt=0.0,
        lt=0.5,
        description="Level of the rollback test at the edge of its null (new production worse "
        "by exactly the margin), where a rollback costs nothing.",
    ),
]
NMax = Annotated[
    int,
    Field(
        ge=10,
        le=10_000_000,
        description="Maximum labelled rows: the final decision is made there.",
    ),
]
LiveThreshold = Annotated[
    float,
    Field(
        ge=0.0,
        lt=1.0,
        description="AUC gain the challenger must be shown to exceed (the offline gate's "
        "guaranteed minimum gain: one promise on both paths).",
    ),
]
LiveMode = Annotated[
    Literal["shadow", "routed"],
    Field(
        description="shadow: both models scored every row (paired, recommended); routed: the "
        "rows each model served (unpaired, one row per entity)."
    ),
]
Spending = Annotated[
    Literal["obrien_fleming", "pocock"],
    Field(description="Alpha spending function over the information fraction n / n_max."),
]
LiveMinClassCount = Annotated[
    int,
    Field(
        ge=2,
        le=1_000_000,
        description="A look with fewer positives or negatives tests nothing and spends nothing.",
    ),
]
LabelWindowHours = Annotated[
    float,
    Field(
        ge=0.0,
        le=8784.0,
        description="Hours after a request before its label is final; younger rows wait.",
    ),
]
WatchMargin = Annotated[
    float,
    Field(
        ge=0.0,
        lt=1.0,
        description="Roll back only when the new production is worse by more than this AUC.",
    ),
]
WatchMaxDays = Annotated[
    float,
    Field(
        gt=0.0,
        le=366.0,
        description="Maximum age of the watch in days: it ends earlier by evidence (a rollback, "
        "or watch_rows labelled rows); at this age its last look spends what is left.",
    ),
]
WatchRows = Annotated[
    int,
    Field(
        ge=10,
        le=10_000_000,
        description="Labelled rows at which the watch ends (KEEP): the sample its power is "
        "planned for.",
    ),
]
LabelsPath = Annotated[
    str | None,
    Field(
        description="The labelled batch that triggered this run (recorded; the whole log is read)."
    ),
]
AsOf = Annotated[
    str | None,
    Field(description="Evaluate as of this UTC time (ISO 8601); default: now."),
]
