"""One configuration per model: ``retraining.toml``, one ``[models.<name>]`` table each.

A table holds any flow parameter of the ``retraining`` flow (data and incoming paths, target,
id column, column roles, trigger thresholds, gate and training settings), by the parameter's
name. Flows, deployments, the CLI and event-triggered runs look a model up by name; the value
a cycle uses is, per parameter: the one passed explicitly (not None), else the model's table,
else the built-in default (:data:`BUILTIN_DEFAULTS`). :func:`resolve_parameters` returns both
the values and where each came from.

The file is ``$RETRAIN_CONFIG`` when set, else ``retraining.toml`` in the current folder, else
the one at the project's root. Relative ``data_path`` / ``incoming_path`` are relative to
``RETRAIN_HOME``. No file at all: every model has an empty table (built-in defaults).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from model.cycle.config import RetrainingConfig
from model.errors import ParameterError

CONFIG_ENV = "RETRAIN_CONFIG"
CONFIG_NAME = "retraining.toml"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
"""Model names: they end up in Prefect artifact keys and event resource ids."""

BUILTIN_DEFAULTS: dict[str, Any] = {
    "model_name": "demo",
    "force_retrain": False,
    "drift_report_path": None,
    "dataset_drift_threshold": 0.5,
    "min_drifted_features": None,
    "estimated_auc_margin": None,
    "max_days_since_training": 30.0,
    "min_hours_between_trainings": 24.0,
    "retrain_on_schedule": False,
    "min_auc": None,
    "max_auc_drop": None,
    "min_new_samples": None,
    "data_path": None,
    "incoming_path": None,
    "newest_batches": None,
    "target_column": "target",
    "id_column": None,
    "categorical_columns": None,
    "numeric_columns": None,
    "exclude_columns": None,
    "max_imputed_row_share": 0.2,
    "primary_metric": "auc",
    "improvement_threshold": 0.005,
    "threshold_type": "absolute",
    "significance_level": 0.05,
    "n_bootstrap": 1000,
    "rule": "threshold",
    "min_class_count": 100,
    "calibration_margin": 0.01,
    "guardrails": None,
    "num_epochs": 100,
    "batch_size": 512,
    "cuda_batch_size": None,
    "learning_rate": 1e-2,
    "patience": 10,
    "hidden_sizes": [64, 32],
    "dropout": 0.2,
    "seed": 42,
    "device": "auto",
}
"""Every parameter of the ``retraining`` flow with its built-in default."""

PER_RUN = frozenset({"model_name", "force_retrain", "drift_report_path"})
"""Parameters that describe one run, never a model: not allowed in a model's table."""
PATH_KEYS = ("data_path", "incoming_path")


def check_model_name(name: str, what: str = "model name") -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ParameterError(
            f"{what} {name!r} is not accepted: use 1-63 lower-case letters, digits and '-' "
            "(not at either end)"
        )
    return name


def config_file() -> Path | None:
    """The configuration file in use (see the module), or None when there is none."""
    env = os.environ.get(CONFIG_ENV)
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise ParameterError(f"{CONFIG_ENV}={env}: no such file")
        return path
    for path in (Path.cwd() / CONFIG_NAME, PROJECT_ROOT / CONFIG_NAME):
        if path.is_file():
            return path
    return None


def load_models(path: Path | None = None) -> dict[str, dict[str, Any]]:
    """Every model's table, validated: ``{name: {parameter: value}}``."""
    path = path if path is not None else config_file()
    if path is None:
        return {}
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ParameterError(f"{path}: cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ParameterError(f"{path}: not valid TOML: {exc}") from None
    extra = sorted(set(document) - {"models"})
    if extra:
        raise ParameterError(f"{path}: unknown top-level key(s) {extra}; only [models.<name>]")
    models = document.get("models", {})
    if not isinstance(models, dict):
        raise ParameterError(f"{path}: 'models' must be tables [models.<name>]")
    known = set(RetrainingConfig.model_fields) - PER_RUN
    out = {}
    for name, table in models.items():
        check_model_name(name, f"{path}: model name")
        if not isinstance(table, dict):
            raise ParameterError(f"{path}: [models.{name}] must be a table")
        unknown = sorted(set(table) - known)
        if unknown:
            raise ParameterError(
                f"{path}: [models.{name}] has unknown key(s) {unknown}; known: {sorted(known)}"
            )
        _validate(path, name, table)
        out[name] = dict(table)
    return out


def _validate(path: Path, name: str, table: Mapping[str, Any]) -> None:
    try:
        RetrainingConfig(**{**BUILTIN_DEFAULTS, **table, "model_name": name})
    except ValidationError as exc:
        err = exc.errors()[0]
        key = str((err.get("loc") or ("?",))[0])
        raise ParameterError(
            f"{path}: [models.{name}] {key} = {table.get(key)!r} is not accepted: {err['msg']}"
        ) from None


def model_table(name: str, path: Path | None = None) -> dict[str, Any]:
    """The table of model ``name``; an unknown name (when a file exists) is an error."""
    check_model_name(name)
    path = path if path is not None else config_file()
    models = load_models(path)
    if path is not None and models and name not in models:
        raise ParameterError(
            f"{path}: no model {name!r}; configured: {', '.join(sorted(models)) or '(none)'}"
        )
    return models.get(name, {})


def resolve_parameters(
    explicit: Mapping[str, Any], home: Path | None = None, path: Path | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """``(values, sources)``: each parameter from ``explicit`` (not None), else the model's
    table, else :data:`BUILTIN_DEFAULTS`; ``sources[name]`` is "parameter", "configuration"
    or "default". Relative paths from the table are made absolute against ``home``."""
    name = explicit.get("model_name") or BUILTIN_DEFAULTS["model_name"]
    table = model_table(name, path)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for key, default in BUILTIN_DEFAULTS.items():
        if explicit.get(key) is not None:
            values[key], sources[key] = explicit[key], "parameter"
        elif key in table:
            value = table[key]
            if key in PATH_KEYS and home is not None and not Path(value).is_absolute():
                value = str(home / value)
            values[key], sources[key] = value, "configuration"
        else:
            values[key], sources[key] = default, "default"
    values["model_name"] = name
    return values, sources
