"""Settings for the whole project, read from the environment (``RETRAIN_*``).

Nothing is read at import time: call :func:`get_settings` (or build
``Settings(...)`` yourself, e.g. with a temporary ``home`` in tests). Settings make no folders;
they refuse a ``home`` that cannot be one (it, or a folder above it, is a file), and
:func:`get_settings` turns a bad variable into a one-line :class:`SettingsError`.

One working root holds many models, each in its own folders: ``<home>/<kind>/<model>/`` for
``models`` (the registry), ``data`` (base data, incoming batches, prepared splits),
``reports``, ``runs`` and ``predictions``; the Prefect home is shared. Which model a call is
for: an explicit ``model_name``, else the innermost :func:`model_scope` (a flow run or a CLI
command opens one for its model, so every task and helper below it reads that model's
folders), else ``RETRAIN_MODEL_NAME``. Which working root: the innermost
:func:`working_root` (a backtest's scratch root), else ``RETRAIN_HOME``.
"""

from __future__ import annotations

import contextlib
import re
import stat
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from model.errors import ModelNameError, SettingsError

MIGRATION_JOURNAL = ".migrate-layout.json"
"""A migration's journal (``model.cycle.migrate_layout``): present while one is unfinished."""
LEGACY_MARKER = Path("models") / "registry.json"
"""A registry directly under ``<home>/models``: the single-model layout of earlier releases."""
_SCOPE: ContextVar[str | None] = ContextVar("retrain_model_scope", default=None)
_ROOT: ContextVar[dict[str, object] | None] = ContextVar("retrain_working_root", default=None)

MODEL_NAME_RULE = "1 to 63 characters from a-z, 0-9 and '-'"
"""Model names end up in Prefect artifact keys and event resource ids: this is the one rule."""
_MODEL_NAME_RE = re.compile(r"[a-z0-9-]{1,63}")


def check_model_name(name: object, where: str) -> str:
    """``name`` when it follows :data:`MODEL_NAME_RULE`, else :class:`ModelNameError` saying
    ``where`` it came from (a flow parameter, a CLI option, a configuration table...)."""
    if isinstance(name, str) and _MODEL_NAME_RE.fullmatch(name):
        return name
    shown = repr(name) if len(repr(name)) <= 80 else repr(name)[:79] + "…"
    raise ModelNameError(f"{where}: model name {shown} is not accepted; use {MODEL_NAME_RULE}")


DEFAULT_MEMORY_BUDGET = 2 << 30
MIN_MEMORY_BUDGET = 16 << 20
_UNITS = {
    "": 1,
    "b": 1,
    **{f"{p}{s}": 1 << (10 * (i + 1)) for i, p in enumerate("kmgt") for s in ("", "b", "ib")},
}  # binary multiples, however written: 2G, 2GB and 2GiB are 2 * 2**30 bytes
_SIZE_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*")


def parse_memory_size(text: str) -> int:
    """``"2GiB"``, ``"512 MiB"``, ``"1.5G"`` or a whole number of bytes, as bytes (K, M, G and
    T are binary multiples, with or without B or iB); a ValueError saying what is accepted
    otherwise."""
    match = _SIZE_RE.fullmatch(text)
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _UNITS:
        raise ValueError("must be a whole number of bytes, or a size such as 512MiB or 2GiB")
    return int(float(match.group(1)) * _UNITS[unit])


class Settings(BaseSettings):
    """Where things live. Every path is derived from ``home`` and ``model_name``."""

    model_config = SettingsConfigDict(env_prefix="RETRAIN_", extra="ignore")

    home: Path = Field(
        default=Path("var"), description="Working root: data, registry, reports, Prefect home."
    )
    model_name: str = Field(
        default="demo",
        description="The model a command or run is for when none is named (its folders, "
        f"event resource ids, its table in retraining.toml): {MODEL_NAME_RULE}.",
    )

    sandbox: str | None = Field(
        default=None,
        description="Set inside a backtest's scratch working root (model.settings.working_root): "
        "its events name the resource retraining.sandbox.<sandbox>.<model>, which no automation "
        "or scoring service of the real model follows, and its promotion limit is its own.",
    )
    training_cache: Path | None = Field(
        default=None,
        description="A folder of trained candidates by the content hash of their training "
        "inputs (model.training.cache): a backtest's policies train an identical candidate once.",
    )

    dask_address: str | None = Field(
        default=None,
        description="A running Dask scheduler (e.g. tcp://10.0.0.5:8786) for candidate sweeps "
        "and, once set, for prepare and drift of Parquet data too; unset: a "
        "distributed.LocalCluster started for the sweep (and for prepare and drift when "
        "data_engine is dask).",
    )

    data_engine: Literal["local", "dask"] | None = Field(
        default=None,
        description="Where prepare's and drift's passes over Parquet data run "
        "(RETRAIN_DATA_ENGINE; a model's data_engine key overrides it in its flows): local, in "
        "this process; dask, partition-parallel on the Dask scheduler at RETRAIN_DASK_ADDRESS "
        "(else a LocalCluster started for it). Unset: dask when RETRAIN_DASK_ADDRESS is set, "
        "else local.",
    )

    memory_budget: int = Field(
        default=DEFAULT_MEMORY_BUDGET,
        description="Bytes of data a stage may hold at a time (RETRAIN_MEMORY_BUDGET: a whole "
        "number of bytes, or with KiB, MiB, GiB); data whose in-memory form would not fit is "
        "streamed (prepare, drift, training, the gate); default 2 GiB.",
    )

    @field_validator("memory_budget", mode="before")
    @classmethod
    def _memory_size(cls, value: object) -> object:
        return parse_memory_size(value) if isinstance(value, str) else value

    @field_validator("memory_budget")
    @classmethod
    def _memory_floor(cls, value: int) -> int:
        if value < MIN_MEMORY_BUDGET:
            raise ValueError(f"must be at least {MIN_MEMORY_BUDGET >> 20} MiB")
        return value

    @field_validator("model_name")
    @classmethod
    def _model_name_rule(cls, value: str) -> str:
        if not _MODEL_NAME_RE.fullmatch(value):
            raise ValueError(f"use {MODEL_NAME_RULE}")
        return value

    @model_validator(mode="after")
    def _home_can_be_a_folder(self) -> Settings:
        """Every folder is made under ``home`` later: a file in the way is refused now, in
        one line, rather than as a NotADirectoryError wherever a folder is first made."""
        root = self.root
        for path in (root, *root.parents):
            try:
                mode = path.stat().st_mode
            except (FileNotFoundError, NotADirectoryError):
                continue
            except OSError:  # e.g. no permission: reported where the folder is used
                return self
            if stat.S_ISDIR(mode):
                return self
            kind = "a file" if stat.S_ISREG(mode) else "not a file"
            raise SettingsError(f"RETRAIN_HOME={self.home}: {path} is {kind}, not a folder")
        return self

    @property
    def root(self) -> Path:
        """``home`` as an absolute path (resolved against the current directory)."""
        return self.home.expanduser().resolve()

    def for_model(self, name: str) -> Settings:
        """These settings for model ``name`` (its folders; the same working root)."""
        return self.model_copy(update={"model_name": check_model_name(name, "model name")})

    @property
    def legacy_layout(self) -> bool:
        """True when the working root still has one registry directly under ``models/``
        (the single-model layout), or a migration of it is unfinished: ``retrain
        migrate-layout`` moves it to ``models/<name>/``."""
        return (self.root / LEGACY_MARKER).is_file() or (self.root / MIGRATION_JOURNAL).exists()

    @property
    def data_dir(self) -> Path:
        """This model's data: ``raw/``, ``incoming/`` and ``prepared/``."""
        return self.root / "data" / self.model_name

    @property
    def raw_data_path(self) -> Path:
        """The base (historical) labelled data set."""
        return self.data_dir / "raw" / "customers.parquet"

    @property
    def incoming_dir(self) -> Path:
        """Date-partitioned batches that arrive over time (``date=YYYY-MM-DD/``)."""
        return self.data_dir / "incoming"

    @property
    def prepared_dir(self) -> Path:
        """Prepared splits, one folder per content hash; models refer to them."""
        return self.data_dir / "prepared"

    @property
    def models_dir(self) -> Path:
        """This model's registry."""
        return self.root / "models" / self.model_name

    @property
    def reports_dir(self) -> Path:
        """This model's comparison and drift reports."""
        return self.root / "reports" / self.model_name

    @property
    def runs_dir(self) -> Path:
        """This model's scratch space for candidates before registration."""
        return self.root / "runs" / self.model_name

    @property
    def predictions_dir(self) -> Path:
        """The scoring services' prediction logs, one folder per model name (see
        :func:`model.serving.log.log_folder`)."""
        return self.root / "predictions"

    @property
    def prefect_home(self) -> Path:
        return self.root / "prefect"

    @property
    def backtests_dir(self) -> Path:
        """This model's backtests (``retrain backtest``): each run's report and, while it runs,
        its scratch working roots (never this root's registry)."""
        return self.root / "backtests" / self.model_name

    @property
    def event_resource_id(self) -> str:
        """``retraining.model.<model>``, or ``retraining.sandbox.<sandbox>.<model>`` in a
        backtest's scratch root (no automation or service of the real model follows those)."""
        if self.sandbox:
            return f"retraining.sandbox.{self.sandbox}.{self.model_name}"
        return f"retraining.model.{self.model_name}"

    @property
    def on_dask(self) -> bool:
        """Whether prepare and drift run on Dask (:mod:`model.cluster`)."""
        if self.data_engine is None:
            return bool(self.dask_address)
        return self.data_engine == "dask"

    def relative(self, path: Path) -> str:
        """``path`` relative to the working root when inside it, else absolute (POSIX)."""
        p = Path(path).resolve()
        try:
            return p.relative_to(self.root).as_posix()
        except ValueError:
            return p.as_posix()

    def resolve(self, path: str | Path) -> Path:
        """Inverse of :meth:`relative`: a stored path made absolute against the root."""
        p = Path(path)
        return p if p.is_absolute() else self.root / p


@contextlib.contextmanager
def model_scope(name: str) -> Iterator[str]:
    """Within this block (and the Prefect tasks it submits: their threads copy the context),
    :func:`get_settings` is model ``name``'s unless told otherwise."""
    token = _SCOPE.set(check_model_name(name, "model name"))
    try:
        yield name
    finally:
        _SCOPE.reset(token)


@contextlib.contextmanager
def working_root(
    home: Path, *, sandbox: str | None = None, training_cache: Path | None = None
) -> Iterator[Path]:
    """Within this block (and the Prefect tasks it runs), :func:`get_settings` reads and writes
    the working root ``home`` instead of ``RETRAIN_HOME``: a backtest's scratch root, so the
    real cycle code runs there and never touches the user's registry. ``sandbox`` names it (in
    event resource ids and the promotion limit); ``training_cache`` shares trained candidates
    between scratch roots. Like :func:`model_scope`, it does not reach other processes."""
    overrides: dict[str, object] = {"home": Path(home), "sandbox": sandbox}
    if training_cache is not None:
        overrides["training_cache"] = Path(training_cache)
    token = _ROOT.set(overrides)
    try:
        yield Path(home)
    finally:
        _ROOT.reset(token)


def scoped_model() -> str | None:
    """The model of the innermost :func:`model_scope`, or None outside any."""
    return _SCOPE.get()


def get_settings(**overrides: object) -> Settings:
    """Read settings from the environment, with explicit overrides on top; the model is the
    innermost :func:`model_scope`'s unless ``model_name`` is given.

    Raises :class:`SettingsError` (one line, naming the variable) for a bad value."""
    scoped = _SCOPE.get()
    if scoped is not None and "model_name" not in overrides:
        overrides["model_name"] = scoped
    for key, value in (_ROOT.get() or {}).items():
        overrides.setdefault(key, value)
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        error = exc.errors()[0]
        name = "RETRAIN_" + "_".join(str(part) for part in error["loc"]).upper()
        shown = repr(error.get("input"))
        shown = shown if len(shown) <= 80 else shown[:79] + "…"
        raise SettingsError(f"{name}: {error['msg']} (got {shown})") from None
