"""Settings for the whole project, read from the environment (``RETRAIN_*``).

Nothing is read at import time: call :func:`get_settings` (or build
``Settings(...)`` yourself, e.g. with a temporary ``home`` in tests). Settings make no folders;
they refuse a ``home`` that cannot be one (it, or a folder above it, is a file), and
:func:`get_settings` turns a bad variable into a one-line :class:`SettingsError`.
"""

from __future__ import annotations

import re
import stat
from pathlib import Path

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from model.errors import ModelNameError, SettingsError

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


class Settings(BaseSettings):
    """Where things live. Every path is derived from ``home`` and ``model_name``."""

    model_config = SettingsConfigDict(env_prefix="RETRAIN_", extra="ignore")

    home: Path = Field(
        default=Path("var"), description="Working root: data, registry, reports, Prefect home."
    )
    model_name: str = Field(
        default="demo",
        description="Name of the model this working root retrains (its registry; event "
        f"resource ids; its table in retraining.toml): {MODEL_NAME_RULE}.",
    )

    dask_address: str | None = Field(
        default=None,
        description="A running Dask scheduler for candidate sweeps (e.g. tcp://10.0.0.5:8786); "
        "unset: a distributed.LocalCluster started for the sweep.",
    )

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

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

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
        """The model registry root."""
        return self.root / "models"

    @property
    def reports_dir(self) -> Path:
        """Comparison and drift reports."""
        return self.root / "reports"

    @property
    def runs_dir(self) -> Path:
        """Scratch space for candidate models before registration."""
        return self.root / "runs"

    @property
    def predictions_dir(self) -> Path:
        """The scoring service's prediction log, one folder per model name."""
        return self.root / "predictions"

    @property
    def prefect_home(self) -> Path:
        return self.root / "prefect"

    @property
    def event_resource_id(self) -> str:
        return f"retraining.model.{self.model_name}"

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


def get_settings(**overrides: object) -> Settings:
    """Read settings from the environment, with explicit overrides on top.

    Raises :class:`SettingsError` (one line, naming the variable) for a bad value."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        error = exc.errors()[0]
        name = "RETRAIN_" + "_".join(str(part) for part in error["loc"]).upper()
        shown = repr(error.get("input"))
        shown = shown if len(shown) <= 80 else shown[:79] + "…"
        raise SettingsError(f"{name}: {error['msg']} (got {shown})") from None
