"""Training: the PyTorch network with its preprocessing, the training loop, and the artifact.

Owns ``network`` (``TabularNet``/``TabularModel``, preprocessing inside the model),
``params`` (``TrainParams``, presets ``LAB`` and ``RECOMMENDED``, ``TrainResult``),
``loop`` (``train(train_df, val_df, params)``), ``artifact`` (``save_model``/``load_model``:
``state_dict`` + ``model.json``, checksummed), ``prepared`` (``train_prepared`` on a
prepared-data folder) and ``cache`` (candidates kept by the hash of their training inputs: a
backtest's policies train an identical one once). May import ``model.data``, ``model.errors``
and ``model.settings``; never the gate, registry, drift, cycle or CLI packages.
"""

from model.training.loop import (
    FusedAdam,
    auc_or_nan,
    binary_metrics,
    binary_target,
    default_threads,
    f1_threshold,
    resolve_device,
    torch_threads,
    train,
)
from model.training.params import (
    DEFAULT_TARGET,
    LAB,
    RECOMMENDED,
    EpochCallback,
    EpochStats,
    TrainingDivergedError,
    TrainingParamsError,
    TrainParams,
    TrainResult,
)
from model.training.prepared import PreparedData, load_prepared, train_prepared

__all__ = [
    "DEFAULT_TARGET",
    "LAB",
    "RECOMMENDED",
    "EpochCallback",
    "EpochStats",
    "FusedAdam",
    "PreparedData",
    "TrainParams",
    "TrainResult",
    "TrainingDivergedError",
    "TrainingParamsError",
    "auc_or_nan",
    "binary_metrics",
    "binary_target",
    "default_threads",
    "f1_threshold",
    "load_prepared",
    "resolve_device",
    "torch_threads",
    "train",
    "train_prepared",
]
