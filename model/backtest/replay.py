"""What happens to one batch around its cycle, through the code that does it in production.

- :func:`serve_batch`: while its period runs, the scoring service's model set
  (:class:`~model.serving.models.ModelHolder`: production, the shadow challenger, the previous
  production while the watch is open) scores the batch's rows, one request per day at the
  rows' own times, into the prediction log (:class:`~model.serving.log.PredictionLog`).
  Production's served scores give its AUC on the batch before any model was trained on it:
  the honest, prequential measure.
- :func:`add_labels`: when the period ends its labels are in; they are joined to the log by id
  (the live tests' ``<log>/labels/`` files).
- :func:`land_batch`: the batch lands in ``incoming/``, where the drift monitor and the cycle
  read it.
- :func:`live_due`: whether the challenger evaluation or the watch has anything to look at.
- :func:`promote_anyway`: the ``always`` policy's forced promotion.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from model import clock
from model.backtest.timeline import TIME_FIELD, Batch
from model.cycle.config import auc_or_none
from model.data import encode_target
from model.data.demo import write_parquet_atomic
from model.live.outcome import WATCHED, newest_state
from model.live.watch import current_watch
from model.registry import AlreadyProductionError, ModelRegistry
from model.serving.labels import LABELS_PREFIX
from model.serving.loading import verify_loads
from model.serving.log import LABEL, LABELS_FOLDER, PredictionLog, log_folder
from model.serving.models import ModelHolder
from model.settings import Settings


@dataclass
class Served:
    """One batch as the service served it: who scored it and production's AUC on it."""

    batch: str
    rows: int
    positives: int
    auc: float | None
    production: str
    shadows: list[str]
    requests: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _requests(times: np.ndarray) -> list[np.ndarray]:
    """Row positions grouped into one request per calendar day (UTC), in time order."""
    days = pd.to_datetime(times, utc=True).floor("D")
    return [np.flatnonzero(days == day) for day in days.unique()]


def serve_batch(settings: Settings, batch: Batch, target_column: str, shadow: str) -> Served:
    """Score ``batch`` with the model set the service serves now (:func:`model.clock.now`;
    ``shadow``: the service's shadow mode) into the model's prediction log; production's AUC
    on it. A row is logged at its own time, or now when that was earlier (it waited for the
    cycle that made this model set)."""
    frame = pd.read_parquet(batch.path)
    opened = pd.Timestamp(clock.now())
    times = pd.read_parquet(batch.times_path)[TIME_FIELD].to_numpy()
    holder = ModelHolder(settings.models_dir, shadow=shadow)
    holder.refresh()
    models = holder.current
    assert models is not None  # refresh() raised otherwise
    enc = models.production.encoder
    log = PredictionLog(
        log_folder(settings.predictions_dir, settings.model_name),
        enc.id_column or "id",
        enc.numeric,
        enc.categorical,
    )
    scores = np.empty(len(frame))
    requests = _requests(times)
    for rows in requests:
        table = pa.Table.from_pandas(frame.iloc[rows], preserve_index=False)
        scored = models.score(enc.from_table(table), table)
        log.append(scored, when=max(pd.Timestamp(times[rows[0]]), opened).timestamp())
        scores[rows] = scored.scores
    log.flush()
    y = encode_target(frame[target_column], batch.path)
    shadows = [m.version for m in (models.shadow, models.shadow2) if m is not None]
    return Served(
        batch.name,
        len(frame),
        int(y.sum()),
        auc_or_none(y, scores),
        models.production.version,
        shadows,
        len(requests),
    )


def add_labels(settings: Settings, batch: Batch, target_column: str) -> Path | None:
    """Write ``batch``'s labels beside the log (id as logged, label 0/1), where the live
    tests join them to the served rows: the labels of a period are in when it ends. None when
    the rows have no id column (the log could not be joined, as in production)."""
    frame = pd.read_parquet(batch.path)
    model = ModelRegistry(settings.models_dir).production()
    id_column = _id_column(settings, model.version if model else None)
    if id_column not in frame.columns:
        return None
    y = encode_target(frame[target_column], batch.path)
    labels = pd.DataFrame({"id": frame[id_column].astype(str), LABEL: y.astype(np.int8)})
    folder = log_folder(settings.predictions_dir, settings.model_name) / LABELS_FOLDER
    return write_parquet_atomic(labels, folder / f"{LABELS_PREFIX}{batch.name}.parquet")


def _id_column(settings: Settings, version: str | None) -> str:
    if version is None:
        return "id"
    spec = ModelRegistry(settings.models_dir).metadata(version).get("feature_spec") or {}
    return str(spec.get("id_column") or "id")


def land_batch(settings: Settings, batch: Batch) -> Path:
    """Put ``batch`` in the model's ``incoming/`` folder (``date=.../part-0.parquet``)."""
    target = settings.incoming_dir / batch.name / "part-0.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(".part-0.parquet.tmp")
    shutil.copyfile(batch.path, tmp)
    tmp.replace(target)
    return target


def live_due(settings: Settings) -> dict[str, bool]:
    """Which live test has something to look at: a challenger is set; a watch is open."""
    registry = ModelRegistry(settings.models_dir)
    events = registry.history()
    watch, _ = current_watch(events)
    open_watch = False
    if watch is not None:
        state = newest_state(events, WATCHED, "promotion", watch.promotion)
        open_watch = state is None or not state.done
    return {"challenger": registry.challenger() is not None, "watch": open_watch}


def promote_anyway(settings: Settings, version: str, reason: str) -> bool:
    """Promote ``version`` whatever the gate said (a ``forced`` event); False when it is
    production already."""
    registry = ModelRegistry(settings.models_dir, verify=verify_loads)
    try:
        registry.promote(version, reason, force=True)
    except AlreadyProductionError:
        return False
    return True
