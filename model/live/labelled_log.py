"""The one adapter between the prediction log and the live statistics.

The scoring service (issue 15) writes one Parquet file per batch of served rows under
``$RETRAIN_HOME/predictions/<model>/date=YYYY-MM-DD/part-<uuid>.parquet``; ``retrain labels
add`` joins the labels by id. This module is the only place that knows the log's column names
(the constants below): it reads the labelled rows and turns them into the frames the
sequential test needs, with the columns of :data:`PAIRED_COLUMNS` (shadow mode: both models
scored the same row) or :data:`ROUTED_COLUMNS` (routed mode: the rows each model served).
Everything else (``model.live``, the flows, the tests) works on those frames.

Log columns, one row per served row (:mod:`model.serving.log` writes them; the reserved
names are :data:`model.data.RESERVED_LOG_COLUMNS`, never features):

============================  ==========================================================
``__request_time__``          when the row was scored (UTC timestamp)
``id``                        the entity (customer) id the row is about
``__served_version__``        the version whose score was returned
``__served_score__``          its score
``__role__``                  the served model's role: ``production`` or ``challenger``
``__shadow_version__``        the version that scored the row in shadow (null if none)
``__shadow_score__``          its score (null if none)
``__shadow2_version__``       a second shadow (the shadow challenger while a watch holds the
                              first slot); absent from files written before it existed
``__shadow2_score__``         its score
``__label__``                 0/1 once ``retrain labels add`` has joined it (null before):
                              in the row, or in ``<log>/labels/labels-*.parquet`` (id,
                              ``__label__``), joined here by id
============================  ==========================================================
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from model.errors import DataValidationError

# The log's columns (the single place to change when the service's log differs).
REQUEST_TIME = "__request_time__"
ID = "id"
SERVED_VERSION = "__served_version__"
SERVED_SCORE = "__served_score__"
ROLE = "__role__"
SHADOW_VERSION = "__shadow_version__"
SHADOW_SCORE = "__shadow_score__"
LABEL = "__label__"
LABELS_FILE = "__labels_file__"
"""Which ``retrain labels add`` file supplied a row's label (added when the labels are joined):
the labelled batch of the same name in ``incoming/`` holds the same rows."""
SHADOW2_VERSION = "__shadow2_version__"
SHADOW2_SCORE = "__shadow2_score__"
LOG_COLUMNS = (REQUEST_TIME, ID, SERVED_VERSION, SERVED_SCORE, ROLE, SHADOW_VERSION, SHADOW_SCORE)
OPTIONAL_COLUMNS = (SHADOW2_VERSION, SHADOW2_SCORE)
LABELS_FOLDER = "labels"
ROLES = ("production", "challenger")

# The adapter's output columns.
BASELINE_SCORE = "baseline_score"
CANDIDATE_SCORE = "candidate_score"
SCORE = "score"
ARM = "arm"  # "baseline" or "candidate"
PAIRED_COLUMNS = (ID, REQUEST_TIME, LABEL, BASELINE_SCORE, CANDIDATE_SCORE)
ROUTED_COLUMNS = (ID, REQUEST_TIME, LABEL, ARM, SCORE)


def predictions_dir(home: Path, model_name: str) -> Path:
    """``$RETRAIN_HOME/predictions/<model>``: where the service writes the log."""
    return Path(home) / "predictions" / model_name


def log_files(folder: Path) -> list[Path]:
    """The complete log files (``date=*/part-*.parquet``; temporary names are skipped)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("date=*/part-*.parquet") if p.is_file())


def read_log(files: Iterable[Path]) -> pd.DataFrame:
    """Every row of the log files (the log's own columns), checked; empty when none."""
    frames = []
    for path in files:
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises many types for a bad file
            raise DataValidationError(f"{path}: unreadable prediction log file: {exc}") from exc
        missing = [c for c in LOG_COLUMNS if c not in frame.columns]
        if missing:
            raise DataValidationError(
                f"{path}: prediction log file lacks column(s) {', '.join(missing)}"
            )
        for column in (LABEL, *OPTIONAL_COLUMNS):
            if column not in frame.columns:
                frame[column] = np.nan if column != SHADOW2_VERSION else None
        frames.append(frame[[*LOG_COLUMNS, *OPTIONAL_COLUMNS, LABEL]])
    if not frames:
        columns = (*LOG_COLUMNS, *OPTIONAL_COLUMNS, LABEL)
        return pd.DataFrame({c: pd.Series(dtype="object") for c in columns})
    return pd.concat(frames, ignore_index=True)


def labelled_rows(
    log: pd.DataFrame,
    *,
    as_of: dt.datetime,
    label_window: dt.timedelta = dt.timedelta(0),
    since: dt.datetime | None = None,
    source: str = "the prediction log",
) -> pd.DataFrame:
    """Rows with a label whose label window has closed (``request_time + label_window <=
    as_of``), requested at or after ``since``; labels must be 0 or 1."""
    times = pd.to_datetime(log[REQUEST_TIME], utc=True, errors="coerce")
    if times.isna().any():
        bad = log.loc[times.isna(), REQUEST_TIME].iloc[0]
        raise DataValidationError(f"{source}: column {REQUEST_TIME!r} has a bad time {bad!r}")
    keep = log[LABEL].notna() & (times + label_window <= pd.Timestamp(as_of))
    if since is not None:
        keep &= times >= pd.Timestamp(since)
    out = log.loc[keep].copy()
    out[REQUEST_TIME] = times[keep]
    labels = pd.to_numeric(out[LABEL], errors="coerce")
    bad_label = ~labels.isin([0, 1])
    if bad_label.any():
        shown = out.loc[bad_label, LABEL].iloc[0]
        raise DataValidationError(f"{source}: column {LABEL!r} must be 0 or 1, got {shown!r}")
    out[LABEL] = labels.astype(np.int8)
    for col in (SERVED_SCORE, SHADOW_SCORE, SHADOW2_SCORE):
        if col in out.columns:
            out[col] = pd.to_numeric(out[col], errors="coerce")
    return out.sort_values(REQUEST_TIME, kind="stable").reset_index(drop=True)


def score_of(rows: pd.DataFrame, version: str) -> pd.Series:
    """Each row's score by ``version`` in whichever slot it scored the row (served, shadow or
    second shadow); NaN where it did not score it."""
    out = np.full(len(rows), np.nan)
    slots = [(SERVED_VERSION, SERVED_SCORE), (SHADOW_VERSION, SHADOW_SCORE)]
    if SHADOW2_VERSION in rows.columns and SHADOW2_SCORE in rows.columns:
        slots.append((SHADOW2_VERSION, SHADOW2_SCORE))
    for version_col, score_col in slots:
        here = (rows[version_col].to_numpy() == version) & np.isnan(out)
        if here.any():
            scores = pd.to_numeric(rows[score_col], errors="coerce").to_numpy(float)
            out[here] = scores[here]
    return pd.Series(out, index=rows.index)


def paired_rows(rows: pd.DataFrame, baseline: str, candidate: str) -> pd.DataFrame:
    """Shadow mode: rows both versions scored (one served and the other in shadow, or both in
    shadow slots), with each version's score whatever its role (:data:`PAIRED_COLUMNS`), one
    row per entity (its first labelled request: an entity scored every day is one label, and
    DeLong's variance assumes independent rows); ``__labels_file__`` too when the rows say
    which labels file supplied their labels."""
    b_score, c_score = score_of(rows, baseline), score_of(rows, candidate)
    both = b_score.notna() & c_score.notna()
    columns = {
        ID: rows.loc[both, ID],
        REQUEST_TIME: rows.loc[both, REQUEST_TIME],
        LABEL: rows.loc[both, LABEL],
        BASELINE_SCORE: b_score[both].to_numpy(),
        CANDIDATE_SCORE: c_score[both].to_numpy(),
    }
    if LABELS_FILE in rows.columns:
        columns[LABELS_FILE] = rows.loc[both, LABELS_FILE]
    out = pd.DataFrame(columns).dropna(subset=[BASELINE_SCORE, CANDIDATE_SCORE])
    out = out.drop_duplicates(subset=[ID], keep="first")
    return out.reset_index(drop=True)


def labelled_batches(pairs: pd.DataFrame, incoming: Path | None) -> list[str]:
    """The incoming batches (folder names under ``incoming``) that ``retrain labels add`` wrote
    the labels of ``pairs`` into: the same rows, which an offline decision may meet again."""
    if incoming is None or LABELS_FILE not in pairs.columns or not Path(incoming).is_dir():
        return []
    names = {str(n) for n in pairs[LABELS_FILE].dropna().unique()}
    if not names:
        return []
    return sorted(
        {p.parent.name for p in Path(incoming).glob("*/labels-*.parquet") if p.name in names}
    )


def routed_rows(rows: pd.DataFrame, baseline: str, candidate: str) -> pd.DataFrame:
    """Routed mode: the rows each version served (:data:`ROUTED_COLUMNS`), one row per entity
    and arm (its first labelled request): routed rows cluster by customer, and DeLong's
    variance assumes independent rows."""
    served = rows[SERVED_VERSION]
    keep = served.isin([baseline, candidate])
    out = pd.DataFrame(
        {
            ID: rows.loc[keep, ID],
            REQUEST_TIME: rows.loc[keep, REQUEST_TIME],
            LABEL: rows.loc[keep, LABEL],
            ARM: np.where(served[keep] == candidate, "candidate", "baseline"),
            SCORE: rows.loc[keep, SERVED_SCORE],
        }
    ).dropna(subset=[SCORE])
    out = out.drop_duplicates(subset=[ID, ARM], keep="first")
    return out.reset_index(drop=True)


def load_labelled(
    folder: Path,
    *,
    as_of: dt.datetime,
    label_window: dt.timedelta = dt.timedelta(0),
    since: dt.datetime | None = None,
) -> pd.DataFrame:
    """The labelled rows of the log under ``folder`` whose label window has closed."""
    files = log_files(folder)
    rows = join_labels(read_log(files), folder / LABELS_FOLDER)
    return labelled_rows(
        rows, as_of=as_of, label_window=label_window, since=since, source=str(folder)
    )


def _id_text(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def join_labels(log: pd.DataFrame, labels_folder: Path) -> pd.DataFrame:
    """Fill the rows' missing labels from ``retrain labels add``'s files (id, label), by id."""
    files = sorted(labels_folder.glob("labels-*.parquet")) if labels_folder.is_dir() else []
    if not files or log.empty:
        return log
    known: dict[str, object] = {}
    source: dict[str, str] = {}
    for path in files:
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises many types for a bad file
            raise DataValidationError(f"{path}: unreadable labels file: {exc}") from exc
        if ID not in frame.columns or LABEL not in frame.columns:
            raise DataValidationError(f"{path}: a labels file needs columns {ID!r}, {LABEL!r}")
        ids = list(map(_id_text, frame[ID]))
        known.update(zip(ids, frame[LABEL], strict=True))
        source.update(dict.fromkeys(ids, path.name))
    out = log.copy()
    missing = out[LABEL].isna()
    found = out.loc[missing, ID].map(lambda v: known.get(_id_text(v)))
    out.loc[missing, LABEL] = pd.to_numeric(found, errors="coerce")
    out[LABELS_FILE] = None
    out.loc[missing, LABELS_FILE] = out.loc[missing, ID].map(lambda v: source.get(_id_text(v)))
    return out
