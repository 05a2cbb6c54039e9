"""A stand-in for the scoring service's prediction log (issue 15): Parquet files in the
adapter's format (:mod:`model.live.labelled_log`), with labels already joined.

When the real service lands, the tests that use this keep working as long as the adapter
reads what the service writes; only this writer and the adapter's constants would change.
"""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from model.gate.simulation import binormal_scores
from model.live import labelled_log as log


def shadow_rows(
    rng: np.random.Generator,
    n: int,
    served: tuple[str, float],
    shadow: tuple[str, float] | None,
    start: dt.datetime,
    days: float = 1.0,
    role: str = "champion",
    rho: float = 0.8,
    positives: float = 0.4,
    first_id: int = 0,
) -> pd.DataFrame:
    """``n`` labelled log rows: ``served`` = (version, true AUC) answered each row and
    ``shadow`` (if any) scored it too; binormal scores correlated ``rho`` within class."""
    n_pos = round(positives * n)
    auc_shadow = shadow[1] if shadow else served[1]
    y, s, h = binormal_scores(rng, n_pos, n - n_pos, served[1], auc_shadow, rho)
    order = rng.permutation(n)
    times = start + pd.to_timedelta(np.sort(rng.random(n)) * days, unit="D")
    return pd.DataFrame(
        {
            log.REQUEST_TIME: times,
            log.ID: np.arange(first_id, first_id + n),
            log.SERVED_VERSION: served[0],
            log.SERVED_SCORE: s[order],
            log.ROLE: role,
            log.SHADOW_VERSION: shadow[0] if shadow else None,
            log.SHADOW_SCORE: h[order] if shadow else np.nan,
            log.LABEL: y[order].astype(float),
        }
    )


def write_log(home: Path, model: str, rows: pd.DataFrame) -> list[Path]:
    """Write ``rows`` as the service would: one part file per request date."""
    folder = log.predictions_dir(home, model)
    paths = []
    days = pd.to_datetime(rows[log.REQUEST_TIME], utc=True).dt.strftime("%Y-%m-%d")
    for day, part in rows.groupby(days):
        target = folder / f"date={day}" / f"part-{uuid.uuid4().hex}.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        part.to_parquet(target, index=False)
        paths.append(target)
    return paths
