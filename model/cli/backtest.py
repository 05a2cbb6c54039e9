"""``retrain backtest``: replay dated history through the real cycle, policy by policy, in
scratch working roots and simulated time, and report what each policy would have given
(the ``backtest`` flow, :mod:`flows.backtest`; it imports Prefect, so only when run)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import Any

from model.errors import DataValidationError

DEMO_START = "2024-01-01"
DEMO_FILE = "demo-timeline.parquet"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "backtest",
        help="Replay dated history through the cycle and compare retraining policies",
        description=(
            "Replay dated batches through the real cycle (drift monitor, triggers, training, the "
            "gate, promotion, the live challenger and the watch) in scratch working roots, with "
            "the batches' dates as the time, for the model's configured policy, 'never retrain', "
            "'retrain always' and every --set variant; write backtest.html and backtest.json. "
            "The model's registry is never touched."
        ),
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--data",
        metavar="PATH",
        help="Dated history: Parquet file/folder or CSV with a time column, or a folder of "
        "date=YYYY-MM-DD batches",
    )
    source.add_argument(
        "--demo",
        action="store_true",
        help=f"The demo's 12 monthly batches with injected drift (start {DEMO_START})",
    )
    p.add_argument("--time-column", metavar="NAME", help="Each row's time (default: date=)")
    p.add_argument(
        "--start",
        metavar="DATE",
        help="End of the start window (YYYY-MM-DD): the first production model is trained on "
        "the rows before it",
    )
    p.add_argument("--end", metavar="DATE", help="Replay rows before this date only")
    p.add_argument(
        "--period", choices=("day", "week", "month", "year"), default="month", help="Batch period"
    )
    p.add_argument(
        "--policies",
        default="configured,never,always",
        metavar="LIST",
        help="Baselines to replay, comma-separated (default: configured,never,always)",
    )
    p.add_argument(
        "--set",
        dest="variants",
        action="append",
        default=[],
        metavar="KEY=VALUE[ KEY=VALUE]",
        help="A variant of the configured policy (repeatable), e.g. --set "
        "improvement_threshold=0.01 or --set 'min_drifted_features=2 max_days_since_training=90'",
    )
    p.add_argument(
        "--workers", type=int, default=1, help="Policies replayed at once (above 1: on Dask)"
    )
    p.add_argument("--keep-scratch", action="store_true", help="Keep each policy's scratch root")
    p.add_argument("--out", metavar="DIR", help="Report folder (default: backtests/<model>/<run>)")
    p.add_argument("--json", action="store_true", help="Print the result as JSON")
    p.add_argument(
        "--verbose", action="store_true", help="Print every run's Prefect log (default: warnings)"
    )
    p.set_defaults(func=run_backtest)


def _demo_data() -> tuple[str, str, str]:
    """Write the demo timeline under the model's backtests folder: (path, time column, start)."""
    from model.data.demo import DEMO_TIME, make_timeline, write_parquet_atomic
    from model.settings import get_settings

    path = get_settings().backtests_dir / DEMO_FILE
    write_parquet_atomic(make_timeline(), path)
    return str(path), DEMO_TIME, DEMO_START


def _checked(args: argparse.Namespace) -> dict[str, Any]:
    """The flow's parameters, checked before Prefect starts (one line each)."""
    from model.backtest.policies import build_policies
    from model.backtest.timeline import parse_instant

    baselines = [b.strip() for b in args.policies.split(",") if b.strip()]
    build_policies(baselines, args.variants)
    if args.workers < 1:
        raise DataValidationError(f"--workers must be >= 1, got {args.workers}")
    if args.demo:
        data, time_column, start = _demo_data()
    else:
        data, time_column, start = args.data, args.time_column, args.start
        if not Path(data).exists():
            raise DataValidationError(f"--data {data}: no such file or folder")
        if not start:
            raise DataValidationError(
                "--start: give the end of the start window (YYYY-MM-DD); the first production "
                "model is trained on the rows before it"
            )
    parse_instant(start, "--start")
    if args.end:
        parse_instant(args.end, "--end")
    return {
        "data_path": str(data),
        "start": start,
        "period": args.period,
        "time_column": time_column,
        "end": args.end,
        "baselines": baselines,
        "variants": list(args.variants),
        "workers": args.workers,
        "keep_scratch": args.keep_scratch,
        "out_dir": args.out,
    }


def _print(result: dict[str, Any]) -> None:
    from model.backtest.report import to_markdown

    print(to_markdown(result))
    for kind, path in (result.get("reports") or {}).items():
        print(f"{kind}: {path}")


def run_backtest(args: argparse.Namespace) -> int:
    from model.settings import get_settings

    params = _checked(args)
    if not args.verbose:  # hundreds of runs: their logs are in the UI, the report says it all
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from flows.backtest import backtest  # Prefect only when a backtest runs
    from flows.ephemeral import start_tied_ephemeral_server

    start_tied_ephemeral_server()
    count = len(params["baselines"]) + len(params["variants"])
    print(
        f"Backtest of {count} policies on {params['data_path']} ({params['period']} batches); "
        "every run is in the Prefect UI",
        file=sys.stderr,
        flush=True,
    )
    began = dt.datetime.now(dt.UTC)
    result = backtest(model_name=get_settings().model_name, **params)
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        _print(result)
        print(f"took {(dt.datetime.now(dt.UTC) - began).total_seconds():.0f} s")
    return 0
