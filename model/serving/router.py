"""Champion/challenger routing: which model scores each row of a batch.

:class:`ChampionChallengerRouter` sends a fixed share of entities to the challenger:
each row's entity key is hashed (BLAKE2b, salted), so the same entity always gets the
same model, across processes and runs.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from model.errors import DataValidationError, ModelLoadError
from model.registry import ModelRegistry
from model.serving.loading import load_production, load_version, registry_root
from model.settings import Settings

logger = logging.getLogger(__name__)
DEFAULT_SALT = "retraining-challenger"


class Scorer(Protocol):
    """What the router needs from a model (``model.artifact.LoadedModel`` fits)."""

    @property
    def decision_threshold(self) -> float: ...

    @property
    def version(self) -> str | None: ...

    @property
    def path(self) -> Path: ...

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray: ...


def challenger_share(
    keys: Sequence[Any] | pd.Series | pd.Index, salt: str = DEFAULT_SALT
) -> np.ndarray:
    """Each key's position in [0, 100): BLAKE2b of ``salt`` and the key's text."""
    values = keys.tolist() if hasattr(keys, "tolist") else list(keys)
    prefix = salt.encode() + b"\x00"
    out = np.empty(len(values), dtype=np.float64)
    for i, key in enumerate(values):
        digest = hashlib.blake2b(prefix + _key_text(key).encode(), digest_size=8).digest()
        out[i] = int.from_bytes(digest, "big") / 2.0**64 * 100.0
    return out


def _key_text(key: Any) -> str:
    """The key's canonical text: an integral float is the integer (id 7 read as 7.0 from a
    CSV with missing values is still customer 7), so routing does not depend on dtype."""
    if isinstance(key, float | np.floating) and float(key).is_integer():
        return str(int(key))
    return str(key)


def _label(model: Scorer) -> str:
    version = getattr(model, "version", None)
    return version if isinstance(version, str) else Path(model.path).name


@dataclass
class ChampionChallengerRouter:
    """Score a batch with the champion, except ``traffic`` percent of entities that the
    challenger scores. ``key`` names the entity column (default: the champion's id column
    when the batch has it, else the batch's index)."""

    champion: Scorer
    challenger: Scorer | None = None
    traffic: float = 0.0
    key: str | None = None
    salt: str = DEFAULT_SALT
    challenger_problem: str | None = None
    """Why the registry's challenger is not serving (it failed to load), else None."""

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.traffic) <= 100.0:
            raise DataValidationError(f"challenger traffic must be in [0, 100], got {self.traffic}")

    @classmethod
    def from_registry(
        cls,
        root_or_settings: str | Path | Settings | None = None,
        *,
        key: str | None = None,
        salt: str = DEFAULT_SALT,
    ) -> ChampionChallengerRouter:
        """Production as champion and the registry's challenger (if any) at its traffic.

        A challenger that fails to load (corrupt, deleted) never takes the champion down:
        the router serves the champion alone and says why in ``challenger_problem``.
        """
        root = registry_root(root_or_settings)
        champion = load_production(root)
        info = ModelRegistry(root).challenger()
        if info is None or info.version == champion.version:
            return cls(champion, None, 0.0, key, salt)
        try:
            challenger = load_version(root, info.version)
        except ModelLoadError as exc:
            problem = f"challenger {info.version} not served: {exc}"
            logger.warning(problem)
            return cls(champion, None, 0.0, key, salt, challenger_problem=problem)
        return cls(champion, challenger, info.traffic, key, salt)

    def _keys(self, df: pd.DataFrame) -> Sequence[Any] | pd.Series | pd.Index:
        if self.key is not None:
            if self.key not in df.columns:
                raise DataValidationError(f"entity key column {self.key!r} is not in the batch")
            return df[self.key]
        spec = getattr(self.champion, "spec", None)
        id_column = getattr(spec, "id_column", None)
        if id_column and id_column in df.columns:
            return df[id_column]
        return df.index

    def assign(self, df: pd.DataFrame) -> np.ndarray:
        """Boolean mask: True where the challenger scores the row."""
        if self.challenger is None or self.traffic <= 0:
            return np.zeros(len(df), dtype=bool)
        return challenger_share(self._keys(df), self.salt) < float(self.traffic)

    def score(self, df: pd.DataFrame) -> pd.DataFrame:
        """``score`` (probability of class 1), ``prediction`` (at the scoring model's
        threshold), ``version`` and ``role`` (champion/challenger) per row, on df's index."""
        mask = self.assign(df)
        scores = np.empty(len(df), dtype=np.float64)
        preds = np.empty(len(df), dtype=np.int8)
        versions = np.empty(len(df), dtype=object)
        for model, rows in ((self.champion, ~mask), (self.challenger, mask)):
            if model is None or not rows.any():
                continue
            p = np.asarray(model.predict_proba(df.loc[rows]), dtype=np.float64).reshape(-1)
            scores[rows] = p
            preds[rows] = (p >= float(model.decision_threshold)).astype(np.int8)
            versions[rows] = _label(model)
        return pd.DataFrame(
            {
                "score": scores,
                "prediction": preds,
                "version": pd.array(versions, dtype="str"),
                "role": np.where(mask, "challenger", "champion"),
            },
            index=df.index,
        )
