"""Exceptions shared across the domain.

Every error a user can cause with bad input derives from :class:`RetrainError`;
its message names the file, column or value and what is wrong. The CLI turns
these into exit code 2; anything else is an unexpected error (exit code 1).
"""

from __future__ import annotations


class RetrainError(Exception):
    """Base class for errors caused by bad input or bad state (not bugs)."""


class DataValidationError(RetrainError, ValueError):
    """Input data is unreadable or does not meet the feature spec / target rules."""


class ModelLoadError(RetrainError):
    """A model artifact is missing, corrupt, unsafe or of an unknown format."""


class RegistryError(RetrainError):
    """The model registry refused an operation (bad version, corrupt state, ...)."""


class RegistryWarning(UserWarning):
    """The registry did what was asked but found something to fix: a switch that committed
    while its record could not be written, a symbolic link ignored in ``versions/``."""


class ComparisonInputError(RetrainError, ValueError):
    """Inputs to a model comparison are inconsistent or out of range."""


class DriftInputError(RetrainError, ValueError):
    """Inputs to drift detection (data or a drift report file) are invalid."""


class SettingsError(RetrainError):
    """A setting (``RETRAIN_HOME``, ``RETRAIN_MODEL_NAME``, ...) is unusable."""


class LayoutError(SettingsError):
    """The working root's folders are not in the per-model layout (``<kind>/<model>/``), or a
    layout migration cannot proceed."""


class ParameterError(RetrainError, ValueError):
    """A flow parameter is unknown or outside its accepted values (checked before any work)."""


class CycleLockError(RetrainError):
    """A retraining cycle could not take one of its locks (busy past its timeout, or the lock
    file cannot be opened)."""


class ModelNameError(ParameterError):
    """A model name breaks the rule (1 to 63 characters from a-z, 0-9 and '-')."""


class ModelConfigError(RetrainError, ValueError):
    """The per-model configuration file (``retraining.toml``) is unreadable, has an unknown or
    ill-typed key, or has no table for the model asked for."""


class OutputError(RetrainError):
    """A result could not be written (disk full, quota, read-only file system, permission):
    the message names the path, and nothing half-written was kept."""
