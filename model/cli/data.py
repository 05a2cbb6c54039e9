"""``retrain demo-data`` and ``retrain prepare``: thin fronts over model.data (and its demo)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from model.errors import DataValidationError
from model.settings import get_settings

if TYPE_CHECKING:  # pandas and pyarrow: imported inside the commands
    from model.data import FeatureSpec, Manifest

DEFAULT_SPLIT_TEXT = "0.7,0.15,0.15"
"""``model.data.DEFAULT_SPLIT`` as ``--split`` writes it (a test keeps the two in step)."""


def register(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser(
        "demo-data",
        help="write the synthetic customer data set (and dated incoming batches)",
        description="Write the lab's synthetic customers to Parquet under RETRAIN_HOME.",
    )
    demo.add_argument("--rows", type=int, default=10_000, help="rows of base data")
    demo.add_argument("--seed", type=int, default=42)
    demo.add_argument(
        "--drift", type=float, default=0.0, help="0 to 1: how far features and target move"
    )
    demo.add_argument("--batches", type=int, default=0, help="dated incoming batches to write")
    demo.add_argument("--batch-rows", type=int, default=2_000)
    demo.add_argument(
        "--drift-from-batch",
        type=int,
        default=None,
        help="first drifted batch (1-based; default: every batch when --drift > 0)",
    )
    demo.add_argument(
        "--start-date",
        default=None,
        help="YYYY-MM-DD of batch 1 (default: day after the newest batch, else 2025-01-01)",
    )
    demo.add_argument("--clean", action="store_true", help="remove existing incoming batches")
    demo.add_argument("--out", type=Path, default=None, help="base data file (default: settings)")
    demo.set_defaults(func=run_demo)

    prep = sub.add_parser(
        "prepare",
        help="validate, impute and split data into prepared Parquet + manifest",
        description="Prepare train/val/test splits (stable hash split) under RETRAIN_HOME.",
    )
    prep.add_argument(
        "--data",
        action="append",
        type=Path,
        default=None,
        help="file or folder (repeatable; default: base data + incoming batches)",
    )
    prep.add_argument("--target", default="target")
    prep.add_argument("--id-column", default=None, help="row key (default: a column named id)")
    prep.add_argument("--timestamp-column", default=None)
    prep.add_argument("--time-split", action="store_true", help="newest rows become the test set")
    prep.add_argument("--exclude", action="append", default=[], help="column that is no feature")
    prep.add_argument("--spec", type=Path, default=None, help="feature spec JSON to enforce")
    prep.add_argument(
        "--split",
        default=DEFAULT_SPLIT_TEXT,
        help="train,val,test fractions (default 0.7,0.15,0.15)",
    )
    prep.add_argument("--out", type=Path, default=None, help="prepared root (default: settings)")
    prep.add_argument("--json", action="store_true", help="print the manifest as JSON")
    prep.set_defaults(func=run_prepare)


def run_demo(args: argparse.Namespace) -> int:
    from model.data.demo import write_demo

    settings = get_settings()
    paths = write_demo(
        settings,
        rows=args.rows,
        seed=args.seed,
        drift=args.drift,
        batches=args.batches,
        batch_rows=args.batch_rows,
        drift_from_batch=args.drift_from_batch,
        start_date=args.start_date,
        out=args.out,
        clean_incoming=args.clean,
    )
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


def _parse_split(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(","))
    except ValueError as exc:
        from model.data.messages import quote

        raise DataValidationError(f"--split: expected three fractions, got {quote(text)}") from exc


def _read_spec(path: Path | None) -> FeatureSpec | None:
    if path is None:
        return None
    from model.data import FeatureSpec
    from model.files import read_json  # one regular-file check: a FIFO is refused

    try:
        return FeatureSpec.from_dict(read_json(path, "a feature spec", DataValidationError))
    except FileNotFoundError:
        raise DataValidationError(f"{path}: no such feature spec file") from None


def summary(manifest: Manifest) -> str:
    lines = [f"prepared: {manifest.path}", f"rows: {manifest.rows}"]
    for name, info in manifest.splits.items():
        lines.append(
            f"  {name:<5} {info.rows:>10} rows  positives {info.positives:>9}"
            f"  ({info.positive_rate:.1%})"
        )
    missing = {k: v for k, v in manifest.missing.items() if v}
    lines.append(f"missing values imputed: {missing or 'none'}")
    if manifest.preparation.get("streamed"):
        budget = int(manifest.preparation["memory_budget"]) >> 20
        on = " on Dask" if manifest.preparation.get("engine") == "dask" else ""
        lines.append(
            f"streamed{on}: {manifest.preparation['chunk_rows']:,}-row chunks in {budget} MiB"
        )
    return "\n".join(lines)


def run_prepare(args: argparse.Namespace) -> int:
    from model.cluster import data_executor
    from model.data import default_sources, prepare

    settings = get_settings()
    sources = args.data or default_sources(settings.raw_data_path, settings.incoming_dir)
    if not args.data:  # what in incoming/ is not read: one warning each
        from model.data.batches import scan_incoming

        for warning in scan_incoming(settings.incoming_dir).warnings():
            print(f"warning: {warning}", file=sys.stderr)
    with data_executor(settings) as executor:  # RETRAIN_DATA_ENGINE, RETRAIN_DASK_ADDRESS
        manifest = prepare(
            sources,
            args.out or settings.prepared_dir,
            spec=_read_spec(args.spec),
            target=args.target,
            id_column=args.id_column,
            timestamp_column=args.timestamp_column,
            split=_parse_split(args.split),
            time_split=args.time_split,
            exclude=args.exclude,
            batch_root=None if args.data else settings.incoming_dir,
            memory_budget=settings.memory_budget,
            executor=executor,
        )
    if args.json:
        print(json.dumps(manifest.to_dict(), indent=2))
    else:
        print(summary(manifest))
    return 0
