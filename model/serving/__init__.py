"""Serving: load the production model of a registry and route rows between champion and
challenger.

This package owns loading registered models for scoring (``loading``: production, read
once from the registry, or one version; ``verify_loads``, the load check the entry layers
give the registry) and the deterministic, salted-hash
champion/challenger split (``router``). The scoring service's pure parts
(``deployments/scoring`` is the app): ``features`` (request rows checked against a model's
feature spec and encoded without pandas), ``models`` (the consistent model set and its
atomic swap; imports torch), ``log`` (the buffered, crash-safe prediction-log writer, its
readers and retention) and ``labels`` (late labels joined to the log into an incoming
batch). It may import :mod:`model.registry`, :mod:`model.data`, :mod:`model.artifact`
(lazily: torch only when a model is loaded), :mod:`model.settings` and :mod:`model.errors`.
"""

from model.serving.loading import load_production, load_version, registry_root, verify_loads
from model.serving.router import (
    DEFAULT_SALT,
    ChampionChallengerRouter,
    Scorer,
    challenger_share,
)

__all__ = [
    "DEFAULT_SALT",
    "ChampionChallengerRouter",
    "Scorer",
    "challenger_share",
    "load_production",
    "load_version",
    "registry_root",
    "verify_loads",
]
