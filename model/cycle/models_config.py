"""One configuration per model: ``retraining.toml``, one ``[models.<name>]`` table per model.

A table's keys are flow parameter names (the fields of
:class:`~model.cycle.config.RetrainingConfig`, so a parameter added there is configurable
at once), except the per-run ones (:data:`RUN_ONLY`). Every value is checked with the field's
own type and bounds when the file is read: an unknown key, a wrong type, a bad model name or a
table that is not one is a :class:`~model.errors.ModelConfigError` naming the file, the table
and the key.

The effective value of a parameter (:func:`effective_parameters`) is the explicit parameter
when it is not None, else the model's configuration, else :data:`BUILTIN_DEFAULTS`; the
source of each is returned with it, for the run's log and trigger decision.

The file is ``$RETRAIN_CONFIG`` when set, else ``retraining.toml`` in the current folder, else
the one at the root of this checkout; without any, only the model ``demo`` exists (built-in
defaults). Plain Python (``tomllib``), no Prefect.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import TypeAdapter, ValidationError

from model.cycle.config import RetrainingConfig
from model.cycle.params import OBJECT_PARAMETERS, accepted, check_parameters, object_problem
from model.errors import LayoutError, ModelConfigError, ModelNameError
from model.files import check_regular, read_text
from model.settings import (
    MIGRATION_JOURNAL,
    Settings,
    check_model_name,
    scoped_model,
)

CONFIG_ENV = "RETRAIN_CONFIG"
MODEL_ENV = "RETRAIN_MODEL_NAME"
CONFIG_NAME = "retraining.toml"
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MODEL = "demo"
RUN_ONLY = frozenset({"model_name", "force_retrain", "drift_report_path"})
"""Fields that describe one run, not a model: not accepted in the file."""

BUILTIN_DEFAULTS: dict[str, Any] = {
    "force_retrain": False,
    "drift_report_path": None,
    "dataset_drift_threshold": 0.5,
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
    "guardrail_mode": "non_inferiority",
    "holdout_margin": 0.01,
    "inconclusive_challenger": True,
    "data_engine": None,
    "num_epochs": 100,
    "batch_size": 512,
    "learning_rate": 1e-2,
    "patience": 10,
    "hidden_sizes": [64, 32],
    "dropout": 0.2,
    "seed": 42,
    "device": "auto",
}
"""The value a parameter takes when neither the call nor the model's configuration sets it
(a field missing here, e.g. one added later with an optional type, defaults to None)."""

PATH_KEYS = frozenset({"data_path", "incoming_path"})
"""Keys holding a path: a relative one in the file is read from the working root."""
SOURCE_PARAMETER = "parameter"
SOURCE_BUILTIN = "built-in default"


def configurable_keys() -> list[str]:
    """The keys a model's table may hold: every RetrainingConfig field but the per-run ones."""
    return [k for k in RetrainingConfig.model_fields if k not in RUN_ONLY]


def builtin_default(name: str) -> Any:
    value = BUILTIN_DEFAULTS.get(name)
    return list(value) if isinstance(value, list) else value


def config_path() -> Path | None:
    """The configuration file in use (see the module docstring), or None when there is none.

    ``$RETRAIN_CONFIG`` naming a missing file is a ModelConfigError (a typo must not fall
    back silently to other settings)."""
    env = os.environ.get(CONFIG_ENV)
    if env:
        path = Path(env).expanduser()
        try:
            check_regular(path, "the configuration", ModelConfigError)
        except FileNotFoundError:
            raise ModelConfigError(f"{CONFIG_ENV}={env}: no such file") from None
        except ModelConfigError as exc:
            raise ModelConfigError(f"{CONFIG_ENV}={exc}") from None
        return path
    for folder in (Path.cwd(), REPO_ROOT):
        if (folder / CONFIG_NAME).is_file():
            return folder / CONFIG_NAME
    return None


@dataclass(frozen=True)
class ModelsConfig:
    """The validated file: each model's table (keys checked, values validated)."""

    path: Path | None
    models: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return sorted(self.models) if self.path else [DEFAULT_MODEL]

    @property
    def names_in_order(self) -> list[str]:
        """The models in the file's order (the first is the default model)."""
        return list(self.models) if self.path else [DEFAULT_MODEL]

    def table(self, name: str) -> dict[str, Any]:
        """The configuration of model ``name`` (empty for the demo when there is no file)."""
        if self.path is None:
            if name == DEFAULT_MODEL:
                return {}
            raise ModelConfigError(
                f"model {name!r}: no configuration file ({CONFIG_NAME} in the current folder "
                f"or ${CONFIG_ENV}); without one only {DEFAULT_MODEL!r} is known"
            )
        if name not in self.models:
            known = ", ".join(self.names) or "none"
            raise ModelConfigError(f"{self.path}: no table [models.{name}]; known models: {known}")
        return dict(self.models[name])

    def describe(self, name: str) -> str:
        return f"{self.path} [models.{name}]" if self.path else "no configuration file"


def load_models_config(path: str | os.PathLike[str] | None = None) -> ModelsConfig:
    """Read and validate the configuration file (``path``, else :func:`config_path`)."""
    file = Path(path) if path is not None else config_path()
    if file is None:
        return ModelsConfig(None)
    try:
        raw = tomllib.loads(read_text(file, "the configuration", ModelConfigError))
    except FileNotFoundError:
        raise ModelConfigError(f"{file}: no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ModelConfigError(f"{file}: not valid TOML ({exc})") from None
    extra = [k for k in raw if k != "models"]
    if extra:
        raise ModelConfigError(
            f"{file}: unknown top-level key {extra[0]!r}; only [models.<name>] tables are read"
        )
    tables = raw.get("models", {})
    if not isinstance(tables, dict):
        raise ModelConfigError(f"{file}: 'models' must be tables [models.<name>]")
    models: dict[str, dict[str, Any]] = {}
    for name, table in tables.items():
        try:
            check_model_name(name, f"{file}: table [models.{name}]")
        except ModelNameError as exc:
            raise ModelConfigError(str(exc)) from None
        if not isinstance(table, dict):
            raise ModelConfigError(f"{file}: [models.{name}] must be a table, not a value")
        models[name] = {k: _checked(file, name, k, v) for k, v in table.items()}
    return ModelsConfig(file, models)


def _checked(file: Path, model: str, key: str, value: Any) -> Any:
    """``value`` validated with the RetrainingConfig field ``key`` (its type and bounds)."""
    where = f"{file}: [models.{model}] {key}"
    if key in RUN_ONLY:
        raise ModelConfigError(f"{where}: is set per run, not in the configuration")
    fields = RetrainingConfig.model_fields
    if key not in fields:
        known = ", ".join(configurable_keys())
        raise ModelConfigError(f"{where}: unknown key; known: {known}")
    info = fields[key]
    adapter: TypeAdapter[Any] = TypeAdapter(Annotated[info.annotation, info])  # type: ignore[arg-type]
    try:
        value = adapter.validate_python(value, strict=True)
    except ValidationError as exc:
        if key in OBJECT_PARAMETERS:  # name the key inside the object, and what is wrong
            detail = object_problem({**exc.errors()[0], "loc": (key, *exc.errors()[0]["loc"])})
            raise ModelConfigError(f"{file}: [models.{model}] {detail}") from None
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:79] + "…"
        raise ModelConfigError(
            f"{where}: {shown} is not accepted; accepted: {accepted(key)}"
        ) from None
    return value


def default_model(config: ModelsConfig | None = None) -> tuple[str, str]:
    """The model a run or command is for when none is named, and where that came from: the
    innermost :func:`~model.settings.model_scope`, else ``RETRAIN_MODEL_NAME``, else the
    configuration file's first table, else the built-in :data:`DEFAULT_MODEL`."""
    scoped = scoped_model()
    if scoped is not None:
        return scoped, "the calling run's model"
    env = os.environ.get(MODEL_ENV)
    if env:
        return check_model_name(env, MODEL_ENV), MODEL_ENV
    cfg = config if config is not None else load_models_config()
    if cfg.path is not None and cfg.models:
        return cfg.names_in_order[0], f"{cfg.path}: its first model"
    return DEFAULT_MODEL, SOURCE_BUILTIN


def select_model(
    value: str | None,
    settings: Settings,
    where: str,
    config: ModelsConfig | None = None,
    *,
    layout: bool = True,
) -> str:
    """The model a run is for (``value``, else :func:`default_model`), checked in this order:
    the name rule, a table for it in the configuration, and that the working root has the
    per-model layout (not the single-model one of earlier releases; ``layout=False`` skips
    that, for the command that migrates it)."""
    config = config if config is not None else load_models_config()
    name = check_model_name(value, where) if value is not None else default_model(config)[0]
    config.table(name)
    if layout:
        check_layout(settings)
    return name


def check_layout(settings: Settings) -> None:
    """Refuse a working root with the single-model layout (``models/registry.json``): its
    files must first move to one folder per model, with ``retrain migrate-layout``; or one
    whose migration was stopped (its journal is there): running it again finishes it."""
    journal = settings.root / MIGRATION_JOURNAL
    if journal.exists() or journal.is_symlink():
        from model.cycle.migrate_layout import read_journal

        name = read_journal(journal)["model"]
        raise LayoutError(
            f"RETRAIN_HOME={settings.root}: the layout migration to model {name!r} was stopped "
            f"before it finished ({journal} is still there); finish it with "
            f"`retrain migrate-layout --model {name}`"
        )
    if settings.legacy_layout:
        raise LayoutError(
            f"RETRAIN_HOME={settings.root}: has the single-model layout of earlier releases "
            "(models/registry.json); move it to one folder per model once with "
            "`retrain migrate-layout --model NAME` (see docs/many-models.md)"
        )


def resolve_run(
    explicit: Mapping[str, Any],
    settings: Settings,
    where: str = "flow parameter model_name",
    config: ModelsConfig | None = None,
) -> tuple[RetrainingConfig, dict[str, str]]:
    """A retraining run's validated configuration from its explicit parameters (None = not
    given) and where each value came from. Bad names, an unknown model, an unknown or
    out-of-range parameter: a one-line RetrainError before any work."""
    params = dict(explicit)
    config = config if config is not None else load_models_config()
    given = params.pop("model_name", None)
    name = select_model(given, settings, where, config)
    keys = [k for k in RetrainingConfig.model_fields if k != "model_name"]
    keys += [k for k in params if k not in keys]  # unknown names: refused by check_parameters
    values, sources = effective_parameters(params, name, keys, config, root=settings.root)
    cfg = check_parameters({"model_name": name, **values})
    return cfg, {
        "model_name": SOURCE_PARAMETER if given is not None else default_model(config)[1],
        **sources,
    }


def effective_parameters(
    explicit: Mapping[str, Any],
    model: str,
    keys: Iterable[str] | None = None,
    config: ModelsConfig | None = None,
    root: Path | None = None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """Each of ``keys`` (default: ``explicit``'s) from the explicit value when not None, else
    from model ``model``'s table, else the built-in default; and where each came from.

    A relative path from the table (:data:`PATH_KEYS`) is made absolute against ``root``
    (the working root); an explicit one is left as given.

    A per-run key (``force_retrain``) left at None takes its built-in default. An unknown
    model is a ModelConfigError listing the known ones."""
    cfg = config if config is not None else load_models_config()
    table = cfg.table(model)
    where = cfg.describe(model)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    configurable = set(configurable_keys())
    for key in list(keys) if keys is not None else list(explicit):
        value = explicit.get(key)
        if value is not None:
            values[key], sources[key] = value, SOURCE_PARAMETER
        elif key in table and key in configurable:
            value = table[key]
            if key in PATH_KEYS and root is not None and not Path(value).is_absolute():
                value = str(root / Path(value).expanduser())
            values[key], sources[key] = value, where
        else:
            values[key], sources[key] = builtin_default(key), SOURCE_BUILTIN
    return values, sources


def sources_markdown(values: Mapping[str, Any], sources: Mapping[str, str]) -> str:
    """A Markdown table: each effective setting, its value and where it came from."""
    import json

    lines = ["## Settings", "", "| Parameter | Value | From |", "|---|---|---|"]
    for key, source in sources.items():
        shown = json.dumps(values.get(key), default=str)
        shown = shown if len(shown) <= 60 else shown[:59] + "…"
        shown = shown.replace("|", "\\|")
        lines.append(f"| {key} | `{shown}` | {source.replace('|', chr(92) + '|')} |")
    return "\n".join(lines) + "\n"


LIVE_GATE_KEYS = (
    "significance_level",
    "improvement_threshold",
    "calibration_margin",
    "guardrails",
    "guardrail_mode",
)


def live_gate(
    model: str,
    significance_level: float | None = None,
    improvement_threshold: float | None = None,
) -> dict[str, Any]:
    """The gate's options a challenger's live evaluation holds it to, from the model's table
    (else the built-in defaults): its α, T and guardrails, as
    :class:`model.live.outcome.LiveSettings` keywords (``alpha`` for ``significance_level``)."""
    explicit = {
        "significance_level": significance_level,
        "improvement_threshold": improvement_threshold,
    }
    values, _ = effective_parameters(explicit, model, LIVE_GATE_KEYS)
    out = {k: values[k] for k in LIVE_GATE_KEYS if k != "significance_level"}
    out["alpha"] = values["significance_level"]
    return out
