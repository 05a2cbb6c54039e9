"""Settings for the whole project, read from the environment (``RETRAIN_*``).

Nothing is read at import time: call :func:`get_settings` (or build
``Settings(...)`` yourself, e.g. with a temporary ``home`` in tests).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where things live. Every path is derived from ``home`` and ``model_name``."""

    model_config = SettingsConfigDict(env_prefix="RETRAIN_", extra="ignore")

    home: Path = Field(
        default=Path("var"), description="Working root: data, registry, reports, Prefect home."
    )
    model_name: str = Field(
        default="demo",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
        description="Name of the model this project retrains (used in event resource ids).",
    )

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
    """Read settings from the environment, with explicit overrides on top."""
    return Settings(**overrides)  # type: ignore[arg-type]
