"""Loading models from a registry for serving: production, or one version.

``load_production()`` asks the registry which version is production (read-only: after a
crash or a hand edit, the version recovery will keep) and loads that one folder (the
artifact loader verifies the checksum), so a concurrent promotion never mixes two
versions. A version that is not a real folder inside the registry (a symbolic link) is
refused. :func:`verify_loads` is the check the entry layers give the registry (``verify``):
a folder is registered, promoted or made challenger only if it loads with torch
``weights_only=True``. torch is imported only when a model is actually loaded.
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


def verify_loads(folder: Path) -> None:
    """Raise ModelLoadError unless ``folder`` loads as a model (format, checksum, a
    state_dict of tensors read with ``weights_only=True``, architecture); for
    ``ModelRegistry(root, verify=verify_loads)``."""
    _load(Path(folder))


def _real_folder(registry: ModelRegistry, version: str, what: str) -> Path:
    path = registry.version_path(version)
    if path.is_symlink():
        raise ModelLoadError(
            f"{what} {version} is a symbolic link ({path} -> {os.readlink(path)}), not a "
            "version folder inside the registry: refusing to load it"
        )
    if not path.is_dir():
        raise ModelLoadError(f"{what} {version} is not in the registry {registry.root}")
    return path


def load_production(root_or_settings: str | Path | Settings | None = None) -> LoadedModel:
    """Load the production model of a registry (resolving the link once, checksum verified)."""
    registry = ModelRegistry(registry_root(root_or_settings))
    prod = registry.production()
    if prod is None:
        raise ModelLoadError(
            f"{registry.root}: no production model yet; register one with `retrain register` "
            "and promote it with `retrain promote`"
        )
    return _load(_real_folder(registry, prod.version, "production"))


def load_version(root_or_settings: str | Path | Settings | None, version: str) -> LoadedModel:
    """Load one registered version (checksum verified)."""
    registry = ModelRegistry(registry_root(root_or_settings))
    return _load(_real_folder(registry, version, "version"))
