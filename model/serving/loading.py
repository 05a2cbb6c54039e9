"""Loading models from a registry for serving: production, or one version.

``load_production()`` resolves the ``production`` link once and loads that folder (the
artifact loader verifies the checksum), so a concurrent promotion never mixes two
versions. torch is imported only when a model is actually loaded.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from model.errors import ModelLoadError
from model.registry import ModelRegistry
from model.settings import Settings, get_settings

if TYPE_CHECKING:
    from model.artifact import LoadedModel


def registry_root(root_or_settings: str | Path | Settings | None = None) -> Path:
    """The registry folder: settings' ``models_dir`` by default."""
    if root_or_settings is None:
        return get_settings().models_dir
    if isinstance(root_or_settings, Settings):
        return root_or_settings.models_dir
    return Path(root_or_settings)


def _load(folder: Path) -> LoadedModel:
    from model.artifact import load_model  # lazy: torch is imported only when serving

    return load_model(folder)


def load_production(root_or_settings: str | Path | Settings | None = None) -> LoadedModel:
    """Load the production model of a registry (resolving the link once, checksum verified)."""
    registry = ModelRegistry(registry_root(root_or_settings))
    if registry.production() is None:
        raise ModelLoadError(
            f"{registry.root}: no production model yet; register one with `retrain register` "
            "and promote it with `retrain promote`"
        )
    return _load(Path(os.path.realpath(registry.production_path())))


def load_version(root_or_settings: str | Path | Settings | None, version: str) -> LoadedModel:
    """Load one registered version (checksum verified)."""
    registry = ModelRegistry(registry_root(root_or_settings))
    path = registry.version_path(version)
    if not path.is_dir():
        raise ModelLoadError(f"version {version} is not in the registry {registry.root}")
    return _load(path)
