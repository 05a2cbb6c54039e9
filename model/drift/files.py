"""Drift's files: incoming batch partitions and frames to read, report folders, the report
files written (JSON, Markdown, HTML) and drift report JSON read back and summarised.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from model.drift.render import to_html, to_markdown
from model.drift.results import DriftReport
from model.errors import DriftInputError

if TYPE_CHECKING:
    from model.settings import Settings

_PARTITION_RE = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")


# --------------------------------------------------------------------------- incoming data


def newest_batches(incoming_dir: str | os.PathLike[str], n: int = 1) -> list[Path]:
    """The newest ``n`` partitions ``date=YYYY-MM-DD`` under ``incoming_dir``, oldest first."""
    root = Path(incoming_dir)
    if n < 1 or not root.is_dir():
        return []
    parts = []
    for child in root.iterdir():
        match = _PARTITION_RE.match(child.name)
        if child.is_dir() and match and any(child.iterdir()):
            parts.append((match.group(1), child))
    parts.sort()
    return [p for _, p in parts[-n:]]


def read_frame(source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> pd.DataFrame:
    """Read data through ``model.data.read_table`` (Parquet, folders, partitions, CSV)."""
    from model.data import read_table

    return read_table(source)  # type: ignore[arg-type]


def report_folder(settings: Settings, now: datetime | None = None) -> Path:
    """A fresh ``reports_dir/drift/<UTC timestamp>/`` (suffixed when it already exists)."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    base = settings.reports_dir / "drift" / stamp
    folder, k = base, 1
    while folder.exists():
        folder, k = base.with_name(f"{stamp}-{k}"), k + 1
    return folder


# --------------------------------------------------------------------------- writing reports


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_reports(report: DriftReport, folder: str | os.PathLike[str]) -> dict[str, Path]:
    """Write ``drift.json``, ``drift.md`` and ``drift.html`` into ``folder`` (created)."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "drift.json", "md": out / "drift.md", "html": out / "drift.html"}
    _write_text(paths["json"], json.dumps(report.to_dict(), indent=2, allow_nan=False) + "\n")
    _write_text(paths["md"], to_markdown(report))
    _write_text(paths["html"], to_html(report))
    return paths


# --------------------------------------------------------------------------- reading reports


def read_drift_report(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a drift report: ours, or any JSON with a top-level boolean ``dataset_drift``.

    Returns the JSON object with ``report_path`` added; ``drift_share`` (optional) must be
    a number in [0, 1] and ``drifted_features`` (optional) a list.
    """
    p = Path(path)
    if not p.is_file():
        raise DriftInputError(f"drift report {p}: file not found")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DriftInputError(f"drift report {p}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise DriftInputError(f"drift report {p}: expected a JSON object at the top level")
    if not isinstance(data.get("dataset_drift"), bool):
        raise DriftInputError(
            f"drift report {p}: top-level 'dataset_drift' must be true or false, "
            f"got {data.get('dataset_drift')!r}"
        )
    share = data.get("drift_share")
    if share is not None and (
        isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1
    ):
        raise DriftInputError(f"drift report {p}: 'drift_share' must be in [0, 1], got {share!r}")
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

    Keys: ``dataset_drift``, ``drift_share``, ``drifted_features``, ``report_path``, ``source``.
    """
    d = report.to_dict() if isinstance(report, DriftReport) else report
    return {
        "dataset_drift": bool(d["dataset_drift"]),
        "drift_share": d.get("drift_share"),
        "drifted_features": list(d.get("drifted_features") or []),
        "report_path": report_path or d.get("report_path"),
        "source": source,
    }


def drift_from_report_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate a drift report file into a ``TriggerState.drift`` summary."""
    return summary_of(read_drift_report(path), str(path), source="file")
