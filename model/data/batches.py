"""Incoming batches as users deliver them: what in ``incoming/`` is a batch, in which order,
what is left unread and why, and a batch's id.

A batch is an entry directly in ``incoming/``:

- a ``key=value`` folder (``date=2026-01-31``, ``year=2016``, ``dt=20260131``) holding Parquet
  or CSV files at any depth (nested ``key=value`` folders inside it are read as one batch);
- a Parquet or CSV file (``2016.parquet``, ``january.csv``).

A batch's id is its name relative to ``incoming/`` (``date=2026-01-31``, ``2016.parquet``): the
name a prepared folder's manifest (``batches``), its splits' ``__batch__`` column, the history,
the drift monitor and ``retrain batches`` use.

Names that start with ``.`` or ``_`` are never data (the quarantine ``.quarantine/``,
temporary files, ``_SUCCESS`` markers) and are skipped without a word. Everything else that is
not read is listed in :attr:`IncomingListing.ignored` with the reason (a folder not named
``key=value``, a file of another type such as ``notes.txt``, a batch folder without a data
file, a FIFO), so that the caller warns once, naming it.

Order, and so which batch is the newest: batches sort by their value (the text after
``key=``, or a file's name without its suffix) in natural order, digit runs compared as
numbers, so ISO dates (``2026-01-31``), years and unpadded numbers (``part=9`` before
``part=10``) sort in time order; ties by the whole name. The newest batch is the last.
Modification times never decide (copying a folder changes them).
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from model.data.read import CSV_SUFFIXES, PARQUET_SUFFIXES
from model.errors import DataValidationError

QUARANTINE_FOLDER = ".quarantine"
"""``incoming/.quarantine/<batch>/``: batches set aside (with a ``reason.json``); never read."""

_DIGITS = re.compile(r"(\d+)")
_SPECIAL = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def is_hidden(name: str) -> bool:
    """A name that is never data: ``.x`` or ``_x``."""
    return name.startswith((".", "_"))


def is_data_file(name: str) -> bool:
    """A Parquet or CSV file name (what a batch is read from)."""
    return name.endswith(PARQUET_SUFFIXES) or name.lower().endswith(CSV_SUFFIXES)


def is_partition_name(name: str) -> bool:
    """``key=value`` with a non-empty key and value."""
    key, sep, value = name.partition("=")
    return bool(sep and key and value)


def _stem(name: str) -> str:
    lowered = name.lower()
    for suffix in (*PARQUET_SUFFIXES, *CSV_SUFFIXES):
        if lowered.endswith(suffix):
            return name[: -len(suffix)]
    return name


def batch_value(batch_id: str) -> str:
    """What orders a batch: the text after ``key=``, or a file's name without its suffix."""
    if is_partition_name(batch_id):
        return batch_id.partition("=")[2]
    return _stem(batch_id)


def batch_sort_key(batch_id: str) -> tuple[tuple[tuple[int, int | str], ...], str]:
    """The documented order (module docstring): natural order of the value, then the name."""
    parts = _DIGITS.split(batch_value(batch_id))
    natural = tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts if p)
    return natural, batch_id


def batch_id(path: str | os.PathLike[str], incoming: str | os.PathLike[str] | None = None) -> str:
    """The id of the batch ``path`` is (or is in): its first component relative to
    ``incoming`` when it lies under it; else its first ``key=value`` component; else its name."""
    p = Path(path)
    if incoming is not None:
        try:
            rel = p.absolute().relative_to(Path(incoming).absolute())
        except ValueError:
            rel = None
        if rel is not None and rel.parts:
            return rel.parts[0]
    return next((part for part in p.parts if is_partition_name(part)), p.name)


@dataclass(frozen=True)
class IncomingBatch:
    """One batch: its id (name in ``incoming/``) and path."""

    id: str
    path: Path


@dataclass(frozen=True)
class Ignored:
    """Something in ``incoming/`` that is not read, and why."""

    path: Path
    reason: str

    def warning(self) -> str:
        return f"{self.path}: not read ({self.reason})"


@dataclass
class IncomingListing:
    """The batches of an incoming folder, oldest first, and what in it is not read."""

    folder: Path
    batches: list[IncomingBatch] = field(default_factory=list)
    ignored: list[Ignored] = field(default_factory=list)

    @property
    def paths(self) -> list[Path]:
        return [b.path for b in self.batches]

    def warnings(self) -> list[str]:
        return [i.warning() for i in self.ignored]


def _mode(path: Path) -> int | None:
    try:
        return os.stat(path).st_mode
    except OSError:
        return None


def _special(mode: int | None) -> str:
    if mode is None:
        return "a broken symlink or unreadable entry"
    return next((name for test, name in _SPECIAL if test(mode)), "not a regular file or folder")


def _scan_folder(folder: Path, ignored: list[Ignored]) -> int:
    """Data files under a batch folder (hidden names skipped); other files are ignored."""
    found = 0
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not is_hidden(d))
        for name in sorted(files):
            if is_hidden(name):
                continue
            if is_data_file(name):
                found += 1
            else:
                ignored.append(Ignored(Path(root) / name, "not a Parquet or CSV file"))
    return found


def scan_incoming(incoming: str | os.PathLike[str]) -> IncomingListing:
    """The batches directly in ``incoming`` in the documented order, and what is not read.
    Nothing is opened: only names and ``stat`` (a FIFO is never waited on)."""
    root = Path(incoming)
    listing = IncomingListing(root)
    if not root.is_dir():
        return listing
    found: list[IncomingBatch] = []
    for entry in sorted(root.iterdir()):
        name = entry.name
        if is_hidden(name):
            continue
        mode = _mode(entry)
        if mode is not None and stat.S_ISDIR(mode):
            if not is_partition_name(name):
                listing.ignored.append(
                    Ignored(entry, "a folder not named key=value, e.g. date=2026-01-31")
                )
            elif _scan_folder(entry, listing.ignored):
                found.append(IncomingBatch(name, entry))
            else:
                why = "a batch folder without a Parquet or CSV file"
                listing.ignored.append(Ignored(entry, why))
        elif mode is not None and stat.S_ISREG(mode):
            if is_data_file(name):
                found.append(IncomingBatch(name, entry))
            else:
                listing.ignored.append(Ignored(entry, "not a Parquet or CSV file"))
        else:  # a FIFO, a device, a broken link: never opened
            listing.ignored.append(Ignored(entry, _special(mode)))
    listing.batches = sorted(found, key=lambda b: batch_sort_key(b.id))
    return listing


def list_batch_paths(incoming: str | os.PathLike[str]) -> list[Path]:
    """The batch paths of ``incoming``, oldest first (:func:`scan_incoming`)."""
    return scan_incoming(incoming).paths


def default_sources(raw_data_path: Path, incoming_dir: Path) -> list[Path]:
    """The base data file, then each incoming batch (oldest first): ``retrain prepare``'s
    sources when none are given."""
    if not raw_data_path.exists():
        raise DataValidationError(
            f"{raw_data_path}: no base data; run `retrain demo-data` or pass --data"
        )
    return [raw_data_path, *list_batch_paths(incoming_dir)]
