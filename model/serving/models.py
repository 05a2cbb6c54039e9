"""The consistent set of models the scoring service serves, and its atomic swap.

A :class:`ModelSet` is immutable: production, the challenger with its traffic share, and up to
two shadow models (scoring every row without their scores being returned). In ``watch`` mode
(the service's default) the previous production is a shadow while the post-promotion watch of
the newest promotion is open (:func:`watched_previous`), so the watch has paired rows to judge
(after a rollback, a manual change or the watch's end, it is not); a shadow challenger (set with
0 % traffic, as the retraining flow sets an INCONCLUSIVE candidate) is a shadow too, in every
mode but ``off``, so its evaluation has paired rows: both at once when a watch is open (slot 1
the previous production, slot 2 the challenger). :class:`ModelHolder` keeps the current set in
one attribute; a request reads it once and scores with that set from start to end.
:meth:`ModelHolder.refresh` reads the registry, loads and verifies (checksum, a probe row) any
version the new set needs beside the old ones, then replaces the attribute in one assignment. A
version that fails to load is logged and the old set keeps serving. Models already loaded are
reused, and a set holds only the configured models, so memory stays flat over swaps.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from model import clock
from model.errors import ModelLoadError, RegistryError
from model.registry import ModelRegistry, check_model_folder
from model.serving.features import Batch, FeatureEncoder, RequestError
from model.serving.loading import load_version
from model.serving.router import DEFAULT_SALT, challenger_share

logger = logging.getLogger(__name__)
ShadowMode = Literal["off", "challenger", "previous", "watch"]
SHADOW_MODES: tuple[str, ...] = ("off", "challenger", "previous", "watch")
DEFAULT_WATCH_MAX_DAYS = 60.0
"""The watch's maximum age, as :data:`model.live.outcome.DEFAULT_WATCH_MAX_DAYS` (a test keeps
them equal): the previous production scores in shadow until the watch ends by evidence
(ROLLBACK, or KEEP at its row count) or this many days after the promotion."""
PRODUCTION_CHANGES = ("promoted", "forced", "rolled_back")
WATCH_ENDS = ("ROLLBACK", "KEEP")  # a watch look with one of these decisions ends the watch
PRODUCTION, CHALLENGER = "production", "challenger"


@dataclass(frozen=True)
class ScoringModel:
    """One loaded version, ready to score encoded rows."""

    version: str
    sha256: str
    threshold: float
    net: Any
    encoder: FeatureEncoder
    loaded_at: float

    @classmethod
    def load(cls, root: Path, version: str) -> ScoringModel:
        """Load ``version`` (checksum verified) and score a probe row; ModelLoadError if not."""
        loaded = load_version(root, version)
        pre = loaded.model.preprocessor
        encoder = FeatureEncoder(loaded.spec, pre.levels, pre.numeric)
        model = cls(
            version,
            loaded.sha256,
            float(loaded.decision_threshold),
            loaded.model.net,
            encoder,
            time.time(),
        )
        probe = Batch(
            np.zeros((1, len(encoder.numeric)), np.float32),
            np.zeros((1, len(encoder.categorical)), np.int64),
            ["probe"],
            {},
        )
        scores = model.score(probe)
        if not np.isfinite(scores).all():
            raise ModelLoadError(f"version {version}: scores a probe row as {scores[0]!r}")
        return model

    def score(self, batch: Batch) -> np.ndarray:
        """Probability of class 1 per row (float64)."""
        with torch.inference_mode():
            logits = self.net(torch.from_numpy(batch.x_num), torch.from_numpy(batch.x_cat))
            return torch.sigmoid(logits).double().numpy()


@dataclass
class Scored:
    """What one request's rows got: the served score, label, version and role of each row,
    and the shadow model's version and scores (None without a shadow)."""

    batch: Batch
    scores: np.ndarray
    labels: np.ndarray
    versions: list[str]
    roles: list[str]
    shadow_version: str | None = None
    shadow_scores: np.ndarray | None = None
    shadow2_version: str | None = None  # a second shadow: the shadow challenger during a watch
    shadow2_scores: np.ndarray | None = None
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ModelSet:
    """Production, challenger (with its traffic percent) and shadow: one consistent set."""

    production: ScoringModel
    challenger: ScoringModel | None = None
    traffic: float = 0.0
    shadow: ScoringModel | None = None
    loaded_at: float = field(default_factory=time.time)
    salt: str = DEFAULT_SALT
    problems: tuple[str, ...] = ()
    shadow2: ScoringModel | None = None  # a second shadow (the shadow challenger during a watch)

    def key(self) -> tuple[Any, ...]:
        return (
            self.production.version,
            self.challenger.version if self.challenger else None,
            self.traffic,
            self.shadow.version if self.shadow else None,
            self.shadow2.version if self.shadow2 else None,
        )

    def models(self) -> list[ScoringModel]:
        found = [self.production, self.challenger, self.shadow, self.shadow2]
        return [m for m in found if m is not None]

    def encode_rows(self, rows: Any) -> Batch:
        return self.production.encoder.from_rows(rows)

    def score(self, batch: Batch, raw: Any) -> Scored:
        """Score ``batch`` (encoded for production) with this set. ``raw`` (the JSON rows or
        the Arrow table) is re-encoded for a model whose feature layout differs."""
        prod = self.production
        n = len(batch)
        scores = prod.score(batch)
        versions = [prod.version] * n
        roles = [PRODUCTION] * n
        problems: list[str] = []
        thresholds = np.full(n, prod.threshold)
        chal = self.challenger
        if chal is not None and self.traffic > 0:
            mask = challenger_share(batch.ids, self.salt) < self.traffic
            if mask.any():
                try:
                    sub = _subset(self._batch_for(chal, batch, raw), mask)
                    scores[mask] = chal.score(sub)
                    thresholds[mask] = chal.threshold
                    for i in np.flatnonzero(mask):
                        versions[i] = chal.version
                        roles[i] = CHALLENGER
                except RequestError as exc:  # the challenger's spec refuses the rows
                    problems.append(f"challenger {chal.version}: {exc}")
        labels = (scores >= thresholds).astype(np.int8)
        out = Scored(batch, scores, labels, versions, roles, problems=problems)
        for slot, model in ((1, self.shadow), (2, self.shadow2)):
            if model is None:
                continue
            try:
                scores_ = model.score(self._batch_for(model, batch, raw))
            except RequestError as exc:
                problems.append(f"shadow {model.version}: {exc}")
                continue
            if slot == 1:
                out.shadow_version, out.shadow_scores = model.version, scores_
            else:
                out.shadow2_version, out.shadow2_scores = model.version, scores_
        return out

    def _batch_for(self, model: ScoringModel, batch: Batch, raw: Any) -> Batch:
        if model.encoder.key() == self.production.encoder.key():
            return batch
        if isinstance(raw, list):
            return model.encoder.from_rows(raw)
        return model.encoder.from_table(raw)


def _subset(batch: Batch, mask: np.ndarray) -> Batch:
    ids = [batch.ids[i] for i in np.flatnonzero(mask)]
    return Batch(batch.x_num[mask], batch.x_cat[mask], ids, {})


Loader = Callable[[Path, str], ScoringModel]


def _shadow_challenger(
    shadow: str | None, challenger: str | None, traffic: float
) -> tuple[str | None, str | None, str | None]:
    """``(shadow, shadow2, routed challenger)``: a challenger with 0 % traffic serves no row and
    is scored in shadow instead, in the free slot (the second when the watch holds the first)."""
    if challenger is None or traffic > 0:
        return shadow, None, challenger
    if shadow is None or shadow == challenger:
        return challenger, None, None
    return shadow, challenger, None


def watched_previous(
    events: Sequence[Mapping[str, Any]], production: str, now: dt.datetime, watch_max_days: float
) -> str | None:
    """The previous production while the watch of the newest promotion is open: that event
    (``promoted`` or ``forced``, naming a ``previous``) made ``production`` the production,
    is less than ``watch_max_days`` old, and no ``watch_checked`` look of it ended the watch
    (ROLLBACK or KEEP). None otherwise: no promotion yet, the first production model, a
    rollback or manual change since, the window closed."""
    ended = {
        str(ev.get("promotion"))
        for ev in events
        if ev.get("event") == "watch_checked" and ev.get("decision") in WATCH_ENDS
    }
    last = next((ev for ev in reversed(events) if ev.get("event") in PRODUCTION_CHANGES), None)
    if last is None or last.get("event") == "rolled_back" or not last.get("previous"):
        return None
    if last.get("version") != production or str(last.get("id")) in ended:
        return None
    try:
        started = dt.datetime.fromisoformat(str(last.get("time")))
    except ValueError:
        return None
    if started.tzinfo is None:
        started = started.replace(tzinfo=dt.UTC)
    if now - started >= dt.timedelta(days=watch_max_days):
        return None
    return str(last["previous"])


class ModelHolder:
    """The current :class:`ModelSet` and how it follows the registry.

    ``current`` is replaced in one assignment, never mutated: a request that read it keeps a
    consistent set even while a swap happens.
    """

    def __init__(
        self,
        registry_root: Path,
        *,
        shadow: str = "off",
        salt: str = DEFAULT_SALT,
        loader: Loader = ScoringModel.load,
        watch_max_days: float = DEFAULT_WATCH_MAX_DAYS,
    ) -> None:
        if shadow not in SHADOW_MODES:
            raise ModelLoadError(f"shadow mode {shadow!r}: choose one of {list(SHADOW_MODES)}")
        self.root = Path(registry_root)
        self.shadow_mode = shadow
        self.watch_max_days = watch_max_days
        self.salt = salt
        self._loader = loader
        self._lock = threading.Lock()
        self._failed: dict[str, str] = {}
        self._verified: dict[str, tuple[int, ...]] = {}
        self.current: ModelSet | None = None
        self._base_shadow: str | None = None  # the current set's shadow other than a challenger
        self.reloads = 0
        self.reload_errors = 0
        self.last_error: str | None = None

    def _wanted(self, registry: ModelRegistry) -> tuple[str, str | None, float, list[str]]:
        prod = registry.production()
        if prod is None:
            raise ModelLoadError(
                f"{self.root}: no production model yet; register one with `retrain register` "
                "and promote it with `retrain promote`"
            )
        problems: list[str] = []
        try:
            info = registry.challenger()
        except RegistryError as exc:
            info = None
            problems.append(f"challenger not read: {exc}")
        chal = info.version if info is not None and info.version != prod.version else None
        traffic = info.traffic if chal is not None and info is not None else 0.0
        return prod.version, chal, float(traffic), problems

    def refresh(self) -> bool:
        """Follow the registry: True when a new set was swapped in. Raises only when there
        is no set yet (the service cannot start); afterwards failures keep the old set."""
        with self._lock:
            try:
                return self._refresh()
            except (ModelLoadError, RegistryError, OSError) as exc:
                if self.current is None:
                    raise ModelLoadError(str(exc)) from exc
                self._error(f"registry not followed: {exc}")
                return False

    def _refresh(self) -> bool:
        registry = ModelRegistry(self.root)
        prod_version, chal_version, traffic, problems = self._wanted(registry)
        current = self.current
        if current is not None and prod_version in self._failed:
            return False  # reported once; the old set keeps serving
        if current is not None and current.production.version == prod_version:
            shadow = self._base_shadow  # the previous production, not a shadow challenger
        else:
            shadow = None
        if self.shadow_mode == "challenger" or (traffic == 0 and self.shadow_mode == "off"):
            shadow, traffic_used, chal_used = (
                chal_version if self.shadow_mode != "off" else None,
                0.0,
                None,
            )
        else:
            traffic_used, chal_used = traffic, chal_version
            if self.shadow_mode == "previous" and (
                current is None or current.production.version != prod_version
            ):
                shadow = (
                    current.production.version
                    if current is not None
                    else registry.previous_production()
                )
            elif self.shadow_mode == "watch":
                try:
                    events = registry.history()
                except RegistryError as exc:
                    events = []
                    problems.append(f"no watch shadow: history not read: {exc}")
                now = clock.now()
                shadow = watched_previous(events, prod_version, now, self.watch_max_days)
        base_shadow = shadow
        shadow, shadow2, chal_used = _shadow_challenger(shadow, chal_used, traffic)
        for version, what in ((chal_used, "challenger"), (shadow, "shadow"), (shadow2, "shadow")):
            if version is not None and version in self._failed:
                problems.append(f"{what} {version} not served: {self._failed[version]}")
        chal_used = None if chal_used in self._failed else chal_used
        shadow = None if shadow in self._failed else shadow
        shadow2 = None if shadow2 in self._failed else shadow2
        chal_used, shadow, shadow2 = self._drop_damaged(
            registry,
            prod_version,
            [(chal_used, "challenger"), (shadow, "shadow"), (shadow2, "shadow")],
            problems,
        )
        traffic_used = traffic_used if chal_used is not None else 0.0
        wanted = (prod_version, chal_used, traffic_used, shadow, shadow2)
        if current is not None and current.key() == wanted:
            if current.problems != tuple(problems):  # the same models, other news
                self.current = dataclasses.replace(current, problems=tuple(problems))
            return False
        loaded = {m.version: m for m in current.models()} if current else {}
        try:
            production = loaded.get(prod_version) or self._loader(self.root, prod_version)
        except ModelLoadError as exc:
            if current is None:
                raise
            self._failed[prod_version] = str(exc)
            self._error(
                f"production {prod_version} failed to load, still serving "
                f"{current.production.version}: {exc}"
            )
            return False
        challenger = self._optional(loaded, chal_used, "challenger", problems)
        shadow_model = self._optional(loaded, shadow, "shadow", problems)
        shadow2_model = self._optional(loaded, shadow2, "shadow", problems)
        self.current = ModelSet(
            production,
            challenger,
            traffic_used if challenger is not None else 0.0,
            shadow_model,
            time.time(),
            self.salt,
            tuple(problems),
            shadow2_model,
        )
        self._base_shadow = base_shadow
        if current is not None:
            self.reloads += 1
            logger.info("serving %s (was %s)", wanted, current.key())
        return True

    def damage(self, registry: ModelRegistry, version: str) -> str | None:
        """Why ``version``'s files can no longer be loaded (its folder deleted, a file
        changed or corrupt), or None. The SHA-256 is recomputed only when a file's ``stat``
        changed since it last verified, so each poll costs a few ``stat`` calls."""
        folder = registry.version_path(version)
        try:
            signature = tuple(
                v
                for name in ("model.pt", "model.json")
                for st in (os.stat(folder / name),)
                for v in (st.st_ino, st.st_size, st.st_mtime_ns)
            )
        except OSError:
            return f"{folder}: its files are gone"
        if self._verified.get(version) == signature:
            return None
        try:
            check_model_folder(folder)
        except RegistryError as exc:
            return str(exc)
        self._verified[version] = signature
        return None

    def _drop_damaged(
        self,
        registry: ModelRegistry,
        production: str,
        others: list[tuple[str | None, str]],
        problems: list[str],
    ) -> list[str | None]:
        """Report a damaged production (still served from memory: a restart would fail) and
        stop routing to, or shadowing with, a damaged challenger or shadow (``others``:
        (version, role) pairs); returns ``others``' versions, None where damaged."""
        why = self.damage(registry, production)
        if why is not None:
            problems.append(
                f"production {production} is damaged ({why}); still served from memory, but "
                "the service cannot restart with it: restore it or roll back"
            )
        kept: list[str | None] = []
        for version, what in others:
            why = self.damage(registry, version) if version is not None else None
            if why is not None:
                problems.append(f"{what} {version} not served: {why}")
                version = None
            kept.append(version)
        return kept

    @property
    def production_damaged(self) -> bool:
        """Whether the current set's problems say production's files are damaged."""
        current = self.current
        return current is not None and any(
            p.startswith(f"production {current.production.version} is damaged")
            for p in current.problems
        )

    def _optional(
        self, loaded: dict[str, ScoringModel], version: str | None, what: str, problems: list[str]
    ) -> ScoringModel | None:
        if version is None:
            return None
        if version in loaded:
            return loaded[version]
        try:
            return self._loader(self.root, version)
        except ModelLoadError as exc:
            self._failed[version] = str(exc)
            problems.append(f"{what} {version} not served: {exc}")
            self._error(problems[-1])
            return None

    def _error(self, message: str) -> None:
        self.reload_errors += 1
        self.last_error = message
        logger.warning(message)
