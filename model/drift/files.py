"""Drift's files: incoming batch partitions and frames to read, report folders, the report
files written (JSON, Markdown, HTML) and drift report JSON read back and summarised.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from model import clock
from model.data.batches import list_batch_paths
from model.drift.render import to_html, to_markdown
from model.drift.results import DriftReport
from model.errors import DriftInputError, OutputError
from model.files import kind_of, write_files

if TYPE_CHECKING:
    from model.settings import Settings

# --------------------------------------------------------------------------- incoming data


def newest_batches(incoming_dir: str | os.PathLike[str], n: int = 1) -> list[Path]:
    """The newest ``n`` batches of ``incoming_dir`` (``model.data.batches``: key=value folders
    and Parquet/CSV files directly in it, in its documented order), oldest first."""
    if n < 1:
        return []
    return list_batch_paths(incoming_dir)[-n:]


def read_frame(source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> pd.DataFrame:
    """Read data through ``model.data.read_table`` (Parquet, folders, partitions, CSV)."""
    from model.data import read_table

    return read_table(source)  # type: ignore[arg-type]


def report_folder(settings: Settings, now: datetime | None = None) -> Path:
    """A fresh ``reports_dir/drift/<UTC timestamp>/`` (suffixed when it already exists)."""
    stamp = (now or clock.now()).strftime("%Y%m%dT%H%M%SZ")
    base = settings.reports_dir / "drift" / stamp
    folder, k = base, 1
    while folder.exists():
        folder, k = base.with_name(f"{stamp}-{k}"), k + 1
    return folder


# --------------------------------------------------------------------------- writing reports


def write_reports(report: DriftReport, folder: str | os.PathLike[str]) -> dict[str, Path]:
    """Write ``drift.json``, ``drift.md`` and ``drift.html`` into ``folder`` (created), all or
    none (``model.files.write_files``: a full disk names the path and leaves nothing)."""
    out = Path(folder)
    texts = {
        "drift.json": json.dumps(report.to_dict(), indent=2, allow_nan=False) + "\n",
        "drift.md": to_markdown(report),
        "drift.html": to_html(report),
    }
    files = {name: text.encode("utf-8") for name, text in texts.items()}
    write_files(out, files, "the drift report", OutputError)
    return {"json": out / "drift.json", "md": out / "drift.md", "html": out / "drift.html"}


# --------------------------------------------------------------------------- reading reports


MAX_DRIFT_REPORT_BYTES = 10 * 1024 * 1024
"""A drift report is read whole: larger files are refused (ours are a few kB per feature)."""


def _not_regular(p: Path, mode: int) -> DriftInputError:
    kind = kind_of(mode)  # the shared check's words (model/files.py)
    return DriftInputError(
        f"drift report {p}: is {kind}; only a regular file is read as a drift report"
    )


def _too_large(p: Path, size: int) -> DriftInputError:
    return DriftInputError(
        f"drift report {p}: {size / 2**20:.1f} MiB is over the "
        f"{MAX_DRIFT_REPORT_BYTES // 2**20} MiB limit for a drift report"
    )


def _read_report_bytes(p: Path) -> bytes:
    """The bytes of a regular file of at most MAX_DRIFT_REPORT_BYTES; never blocks on a FIFO
    or a device, never reads more than the limit."""
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise DriftInputError(f"drift report {p}: file not found") from None
    except OSError as exc:
        raise DriftInputError(f"drift report {p}: cannot open ({exc.strerror or exc})") from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _not_regular(p, st.st_mode)
        if st.st_size > MAX_DRIFT_REPORT_BYTES:
            raise _too_large(p, st.st_size)
        chunks, total = [], 0
        while total <= MAX_DRIFT_REPORT_BYTES:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > MAX_DRIFT_REPORT_BYTES:  # it grew while being read
            raise _too_large(p, total)
        return b"".join(chunks)
    except OSError as exc:
        raise DriftInputError(f"drift report {p}: cannot read ({exc.strerror or exc})") from exc
    finally:
        os.close(fd)


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def read_drift_report(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a drift report: ours, or any JSON with a top-level boolean ``dataset_drift``.

    Only a regular file of at most 10 MiB (``MAX_DRIFT_REPORT_BYTES``) is read; a FIFO, a
    device or a folder is refused by name. Returns the JSON object with ``report_path``
    added; ``drift_share`` (optional) must be a number in [0, 1] and ``drifted_features``
    (optional) a list.
    """
    p = Path(path)
    raw = _read_report_bytes(p)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise DriftInputError(f"drift report {p}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise DriftInputError(f"drift report {p}: expected a JSON object at the top level")
    if not isinstance(data.get("dataset_drift"), bool):
        raise DriftInputError(
            f"drift report {p}: top-level 'dataset_drift' must be true or false, "
            f"got {_short(data.get('dataset_drift'))}"
        )
    share = data.get("drift_share")
    if share is not None and (
        isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1
    ):
        raise DriftInputError(
            f"drift report {p}: 'drift_share' must be in [0, 1], got {_short(share)}"
        )
    drifted = data.get("drifted_features")
    if drifted is not None and not isinstance(drifted, list):
        raise DriftInputError(f"drift report {p}: 'drifted_features' must be a list")
    return {**data, "report_path": str(p)}


def summary_of(
    report: DriftReport | dict[str, Any],
    report_path: str | None = None,
    source: Literal["file", "computed"] = "computed",
) -> dict[str, Any]:
    """The small dict ``TriggerState.drift`` and the drift event use.

    Keys: ``dataset_drift``, ``drift_share``, ``drifted_features``, ``report_path``,
    ``source``, and ``schema_changes`` (feature -> ``missing`` | ``all_missing``; empty for a
    report that has none or does not say).
    """
    d = report.to_dict() if isinstance(report, DriftReport) else report
    changes = d.get("schema_changes")
    return {
        "dataset_drift": bool(d["dataset_drift"]),
        "drift_share": d.get("drift_share"),
        "drifted_features": list(d.get("drifted_features") or []),
        "report_path": report_path or d.get("report_path"),
        "source": source,
        "schema_changes": dict(changes) if isinstance(changes, dict) else {},
    }


def drift_from_report_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate a drift report file into a ``TriggerState.drift`` summary."""
    return summary_of(read_drift_report(path), str(path), source="file")
