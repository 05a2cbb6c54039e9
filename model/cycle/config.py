"""One retraining cycle's plain-Python pieces: its configuration, what it trains on, the
trigger state it gathers, and the result it returns. The Prefect flow in
``flows/retraining.py`` only sequences these; everything here is testable without Prefect.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from model import clock
from model.cycle.sweep import SweepSpec
from model.data.batches import scan_incoming
from model.errors import DataValidationError
from model.settings import MODEL_NAME_RULE, Settings

# --- flow parameters: one annotated type each, shared by the flow signature and the config ---

MODEL_NAME_DESCRIPTION = (
    "The model this run is for: its [models.<name>] table in retraining.toml and its event "
    f"resource retraining.model.<name> ({MODEL_NAME_RULE})."
)
ModelNameParameter = Annotated[str | None, Field(description=MODEL_NAME_DESCRIPTION)]
"""The flow parameter (None: ``RETRAIN_MODEL_NAME``); checked by ``check_model_name``."""
ModelName = Annotated[str, Field(pattern=r"^[a-z0-9-]{1,63}$", description=MODEL_NAME_DESCRIPTION)]

ForceRetrain = Annotated[
    bool,
    Field(description="Retrain whatever the triggers say (the comparison gate still applies)."),
]
DriftReportPath = Annotated[
    str | None,
    Field(
        description="A drift report (ours, or any JSON with a boolean `dataset_drift`). "
        "Without one, drift is computed on the batches production was not trained on."
    ),
]
DatasetDriftThreshold = Annotated[
    float, Field(ge=0.0, le=1.0, description="Share of drifted features that makes dataset drift.")
]
MinDriftedFeatures = Annotated[
    int | None,
    Field(
        ge=1,
        description="Dataset drift also when at least this many features drifted (each "
        "Holm-corrected with an effect floor, so 1 keeps false alarms <= alpha); None = off.",
    ),
]
MaxDaysSinceTraining = Annotated[
    float, Field(ge=0.0, le=3650.0, description="Retrain when production is this many days old.")
]
MinHoursBetweenTrainings = Annotated[
    float,
    Field(ge=0.0, le=24.0 * 365, description="Cooldown for drift/volume triggers (0 = none)."),
]
RetrainOnSchedule = Annotated[bool, Field(description="A scheduled run retrains unconditionally.")]
MinAuc = Annotated[
    float | None,
    Field(ge=0.0, le=1.0, description="Retrain when production's AUC on new data falls below."),
]
MaxAucDrop = Annotated[
    float | None,
    Field(ge=0.0, le=1.0, description="Retrain when production's AUC on new data drops by more."),
]
EstimatedAucMargin = Annotated[
    float | None,
    Field(
        ge=0.0,
        le=1.0,
        description="Retrain when production's estimated AUC on the newest batch (CBPE, no "
        "labels needed) is below the lower bound of its recorded holdout AUC interval by more "
        "than this (None = off).",
    ),
]
MinNewSamples = Annotated[
    int | None, Field(ge=1, description="Retrain when this many new rows arrived since training.")
]
DataPath = Annotated[
    str | None,
    Field(description="Base labelled data (Parquet file/folder/dataset or CSV)."),
]
IncomingPath = Annotated[
    str | None,
    Field(
        description="Folder of incoming batches: key=value folders (date=YYYY-MM-DD, "
        "year=2016, ...) and Parquet/CSV files directly in it, oldest first by name."
    ),
]
NewestBatches = Annotated[
    int | None,
    Field(ge=1, description="Train on base data + only the newest N batches."),
]
TargetColumn = Annotated[str, Field(min_length=1, description="Binary target column.")]
IdColumn = Annotated[str | None, Field(description="Row key for the stable split.")]
NumEpochs = Annotated[int, Field(ge=1, le=10_000, description="Maximum training epochs.")]
BatchSize = Annotated[int, Field(ge=1, le=1_000_000, description="Mini-batch size.")]
LearningRate = Annotated[float, Field(gt=0.0, le=10.0, description="Adam learning rate.")]
Patience = Annotated[
    int | None, Field(ge=1, le=10_000, description="Early-stopping patience (None = off).")
]
HiddenSizes = Annotated[
    list[Annotated[int, Field(ge=1, le=65_536)]],
    Field(min_length=1, max_length=16, description="Hidden layer widths of the MLP."),
]
Dropout = Annotated[float, Field(ge=0.0, lt=1.0, description="Dropout after each hidden layer.")]
Seed = Annotated[int, Field(ge=0, le=2**31 - 1, description="Seed for training and statistics.")]
Device = Annotated[
    Literal["auto", "cpu", "cuda"],
    Field(description="Training device, and where the gate's bootstrap and DeLong test run."),
]
PrimaryMetric = Annotated[
    Literal[
        "auc", "accuracy", "precision", "recall", "f1", "log_loss", "average_precision", "brier"
    ],
    Field(description="Metric the promotion gate is decided on."),
]
ImprovementThreshold = Annotated[
    float,
    Field(
        ge=0.0,
        le=1.0,
        description="Guaranteed minimum gain: promote only when the lower confidence bound "
        "of the primary metric's improvement is above it.",
    ),
]
ThresholdType = Annotated[
    Literal["absolute", "relative"], Field(description="Whether the threshold is absolute.")
]
SignificanceLevel = Annotated[
    float,
    Field(
        gt=0.0,
        lt=0.5,
        description="Level of a decision on fresh rows (batches no earlier decision used), and "
        "of every guardrail; a decision reusing rows tests at alpha*6/(pi^2 j^2).",
    ),
]
NBootstrap = Annotated[int, Field(ge=100, le=100_000, description="Bootstrap resamples.")]
GateRule = Annotated[
    Literal["threshold", "lab"],
    Field(
        description="threshold: lower bound > threshold (the default); lab: improvement >= "
        "threshold and p(improvement > 0) < the decision's level (lenient, for comparison)."
    ),
]
MinClassCount = Annotated[
    int,
    Field(
        ge=2,
        le=1_000_000,
        description="Fewer positives or negatives in the holdout: INCONCLUSIVE.",
    ),
]
CalibrationMargin = Annotated[
    float | None,
    Field(
        ge=0.0,
        le=1.0,
        description="Log loss may be worse by at most this (non-inferiority; None: off).",
    ),
]
Guardrails = Annotated[
    dict[str, float] | None,
    Field(description="Per-metric margins, e.g. {'recall': 0.01, 'log_loss': 0.01}."),
]
GuardrailMode = Annotated[
    Literal["non_inferiority", "harm"],
    Field(
        description="non_inferiority: each guardrail must be shown not worse by more than its "
        "margin (the default); harm: only a shown breach blocks (weaker)."
    ),
]
HoldoutMargin = Annotated[
    float,
    Field(
        ge=0.0,
        le=1.0,
        description="When the decision is made on the recent rows, the primary metric on the "
        "whole holdout may be worse by at most this (non-inferiority).",
    ),
]
InconclusiveChallenger = Annotated[
    bool,
    Field(
        description="An INCONCLUSIVE candidate becomes the shadow challenger, to be decided "
        "on live labels by challenger-evaluation (it replaces an older challenger)."
    ),
]

DataEngine = Annotated[
    Literal["local", "dask"] | None,
    Field(
        description="Where prepare's and drift's passes over Parquet data run: local, in the "
        "flow's process; "
        "dask, partition-parallel on the scheduler at RETRAIN_DASK_ADDRESS (else a LocalCluster "
        "started for it). None: RETRAIN_DATA_ENGINE (dask when RETRAIN_DASK_ADDRESS is set)."
    ),
]


ColumnList = Annotated[list[Annotated[str, Field(min_length=1)]], Field(max_length=10_000)]
CategoricalColumns = Annotated[
    ColumnList | None,
    Field(description="Columns that are categorical whatever their type (e.g. integer codes)."),
]
NumericColumns = Annotated[
    ColumnList | None, Field(description="Columns that are numeric whatever their type.")
]
ExcludeColumns = Annotated[ColumnList | None, Field(description="Columns that are never features.")]
MaxImputedRowShare = Annotated[
    float,
    Field(
        ge=0.0,
        le=1.0,
        description="Schema changes: a feature a batch lacks or has all-missing is imputed with "
        "production's value, unless more than this share of its rows would be; then training "
        "fails naming the column.",
    ),
]
CudaBatchSize = Annotated[
    int | None,
    Field(
        ge=1,
        le=1_000_000,
        description="On a CUDA device, train with this batch size instead (opt-in; None: "
        "batch_size everywhere).",
    ),
]
Sweep = Annotated[
    SweepSpec | None,
    Field(
        description="Train K candidate configurations in parallel on Dask and keep the best "
        'on validation AUC, e.g. {"hidden_sizes": [[64, 32], [128, 64]], "learning_rate": '
        '[0.01, 0.003], "search": "grid"} (None: one candidate, no Dask).'
    ),
]


class RetrainingConfig(BaseModel):
    """Every flow parameter, validated once and passed around as one object."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model_name: ModelName
    force_retrain: ForceRetrain
    drift_report_path: DriftReportPath
    dataset_drift_threshold: DatasetDriftThreshold
    min_drifted_features: MinDriftedFeatures = None
    max_days_since_training: MaxDaysSinceTraining
    min_hours_between_trainings: MinHoursBetweenTrainings
    retrain_on_schedule: RetrainOnSchedule
    min_auc: MinAuc
    max_auc_drop: MaxAucDrop
    estimated_auc_margin: EstimatedAucMargin = None
    min_new_samples: MinNewSamples
    data_path: DataPath
    incoming_path: IncomingPath
    newest_batches: NewestBatches
    target_column: TargetColumn
    id_column: IdColumn
    categorical_columns: CategoricalColumns = None
    numeric_columns: NumericColumns = None
    exclude_columns: ExcludeColumns = None
    max_imputed_row_share: MaxImputedRowShare = 0.2
    cuda_batch_size: CudaBatchSize = None
    num_epochs: NumEpochs
    batch_size: BatchSize
    learning_rate: LearningRate
    patience: Patience
    hidden_sizes: HiddenSizes
    dropout: Dropout
    seed: Seed
    device: Device
    primary_metric: PrimaryMetric
    improvement_threshold: ImprovementThreshold
    threshold_type: ThresholdType
    significance_level: SignificanceLevel
    n_bootstrap: NBootstrap
    rule: GateRule
    min_class_count: MinClassCount
    calibration_margin: CalibrationMargin
    guardrails: Guardrails
    guardrail_mode: GuardrailMode = "non_inferiority"
    holdout_margin: HoldoutMargin = 0.01
    inconclusive_challenger: InconclusiveChallenger = True
    sweep: Sweep = None
    data_engine: DataEngine = None

    def train_params(self) -> dict[str, Any]:
        """The training parameters (``model.training.TrainParams`` fields)."""
        return {
            "num_epochs": self.num_epochs,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "patience": self.patience,
            "hidden_sizes": tuple(self.hidden_sizes),
            "dropout": self.dropout,
            "seed": self.seed,
            "device": self.device,
            "target_column": self.target_column,
            "cuda_batch_size": self.cuda_batch_size,
        }

    def comparator_params(self) -> dict[str, Any]:
        """Keyword arguments of ``model.gate.comparator.ModelComparator``."""
        return {
            "primary_metric": self.primary_metric,
            "improvement_threshold": self.improvement_threshold,
            "threshold_type": self.threshold_type,
            "significance_level": self.significance_level,
            "n_bootstrap": self.n_bootstrap,
            "random_state": self.seed,
            "rule": self.rule,
            "min_class_count": self.min_class_count,
            "calibration_margin": self.calibration_margin,
            "guardrails": self.guardrails or None,
            "guardrail_mode": self.guardrail_mode,
            "holdout_margin": self.holdout_margin,
            "device": self.device,
        }


# --- what a cycle trains on ---


@dataclass(frozen=True)
class DataSources:
    """The files one cycle reads: the base data set and the incoming batches it includes.
    ``ignored``: what in the incoming folder is not read, one warning each."""

    base: Path | None
    batches: list[Path]
    all_batches: list[Path]
    selection: str
    incoming: Path | None = None
    ignored: list[str] = field(default_factory=list)

    @property
    def paths(self) -> list[Path]:
        return [*([self.base] if self.base else []), *self.batches]

    def describe(self) -> dict[str, Any]:
        return {
            "selection": self.selection,
            "base": str(self.base) if self.base else None,
            "batches": [str(p) for p in self.batches],
            "incoming": str(self.incoming) if self.incoming else None,
        }


def list_batches(incoming: Path) -> list[Path]:
    """Incoming batches (``model.data.batches``: key=value folders and data files directly in
    the folder), oldest first."""
    return scan_incoming(incoming).paths


def source_folders(settings: Settings, config: RetrainingConfig) -> tuple[Path, Path]:
    """The base data path and the incoming folder a cycle reads (the model's own by default)."""
    base = Path(config.data_path) if config.data_path else settings.raw_data_path
    incoming = Path(config.incoming_path) if config.incoming_path else settings.incoming_dir
    return base, incoming


def select_sources(settings: Settings, config: RetrainingConfig) -> DataSources:
    """Base data plus every incoming batch, or only the newest N batches."""
    base, incoming = source_folders(settings, config)
    default_place = base.absolute() == settings.raw_data_path.absolute()
    if config.data_path and not base.exists() and not default_place:  # the default may be empty
        raise DataValidationError(f"no training data: data_path {base} does not exist")
    listing = scan_incoming(incoming)
    all_batches = listing.paths
    if config.newest_batches:
        batches = all_batches[-config.newest_batches :]
        selection = f"base data + newest {config.newest_batches} batch(es)"
    else:
        batches = all_batches
        selection = "base data + all incoming batches"
    sources = DataSources(
        base if base.exists() else None,
        batches,
        all_batches,
        selection,
        incoming,
        listing.warnings(),
    )
    if not sources.paths:
        raise DataValidationError(
            f"no training data: {base} does not exist and {incoming} holds no batch "
            "(a key=value folder or a Parquet/CSV file)"
        )
    return sources


# --- the result ---


@dataclass
class RetrainingResult:
    """What one run of the retraining flow decided, and where to look."""

    status: Literal["skipped", "promoted", "rejected", "inconclusive"]
    reasons: list[str]
    trigger: str
    candidate_version: str | None = None
    production_version: str | None = None
    previous_production_version: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    reports: dict[str, str] = field(default_factory=dict)
    registry: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        lines = [f"Decision: {self.status.upper()} (trigger: {self.trigger})"]
        lines += [f"  - {r}" for r in self.reasons]
        if self.candidate_version:
            lines.append(f"Candidate: {self.candidate_version}")
        lines.append(f"Production: {self.production_version or 'none'}")
        for name, path in self.reports.items():
            lines.append(f"{name}: {path}")
        if self.registry:
            lines.append(f"Registry: {self.registry}")
        return "\n".join(lines)


def utcnow() -> dt.datetime:
    """Now (:func:`model.clock.now`: a backtest's simulated time inside its scope)."""
    return clock.now()


def parse_time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    t = dt.datetime.fromisoformat(value)
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def auc_or_none(y: np.ndarray, scores: np.ndarray) -> float | None:
    """AUC when both classes are present, else None."""
    if len(np.unique(y)) < 2:
        return None
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, scores))
