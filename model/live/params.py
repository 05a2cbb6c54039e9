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
        description="Challenger: the family's error budget (this evaluation spends alpha_k); "
        "watch: the level of the rollback test.",
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
    Field(ge=0.0, lt=1.0, description="AUC gain the challenger must be shown to exceed."),
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
WatchDays = Annotated[
    float,
    Field(gt=0.0, le=366.0, description="Days after a promotion that the watch lasts."),
]
WatchRows = Annotated[
    int,
    Field(ge=10, le=10_000_000, description="Labelled rows at which the watch ends."),
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
