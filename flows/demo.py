"""The README's main command: the whole retraining loop on demo data, on the embedded Prefect.

1. demo customers are written (the lab's synthetic data set);
2. a retraining run: the first finds no production model, trains one and promotes it; a
   later one checks its triggers (usually: skipped, nothing new);
3. a drifted batch arrives: a new ``date=`` folder every run (today's, else the day after
   the newest batch), so a second run on the same day has new data too;
4. the drift monitor compares the batches production has not seen with its training data and
   writes its report; it emits no event, since this process retrains itself in step 5;
5. a retraining run given that report trains a candidate, compares it with production on the
   clean holdout, and promotes or rejects it (no drift: it checks its triggers and skips).

Re-running continues from the registry already in ``$RETRAIN_HOME`` (nothing is deleted).
With a running ``make stack-up`` server the runs report to it (``flows/ephemeral.py``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import Any

from flows.drift_monitor import drift_monitor
from flows.ephemeral import connect_cli_run
from flows.retraining import retraining
from model.cycle.models_config import select_model
from model.data.demo import next_batch_date, write_demo
from model.errors import RetrainError
from model.settings import get_settings, model_scope

FAST: dict[str, Any] = {"min_hours_between_trainings": 0.0, "id_column": "id"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000, help="rows of base data")
    parser.add_argument("--batch-rows", type=int, default=10_000, help="rows of the drifted batch")
    parser.add_argument("--drift", type=float, default=0.6, help="drift of the new batch (0-1)")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    try:
        # the default model (RETRAIN_MODEL_NAME, else retraining.toml's first): its folders
        # are the ones written here and the ones the flows read
        name = select_model(None, get_settings(), "RETRAIN_MODEL_NAME")
        with model_scope(name):
            return _demo(args)
    except RetrainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def batch_day(incoming: Path, today: dt.date) -> dt.date:
    """The date of this run's batch: ``today``, unless a batch of today (or later) exists,
    then the day after the newest batch. Every run adds a batch no cycle has seen."""
    return max(today, next_batch_date(incoming))


def _demo(args: argparse.Namespace) -> int:
    settings = get_settings()
    server = connect_cli_run()  # a running `make stack-up` server, else a temporary one
    if server == "stack":
        print("Prefect: the running `make stack-up` server (runs appear in its UI)")

    _step(1, f"demo data ({args.rows} rows) → {settings.raw_data_path}")
    write_demo(settings, rows=args.rows, seed=args.seed, drift=0.0, batches=0)

    _step(2, "a retraining cycle (the first trains and promotes a model)")
    first = retraining(**FAST)
    print(first.summary())

    day = batch_day(settings.incoming_dir, dt.datetime.now(dt.UTC).date())
    _step(3, f"a drifted batch arrives (drift {args.drift}, {args.batch_rows} rows, {day})")
    write_demo(
        settings,
        rows=args.rows,
        seed=args.seed,
        drift=args.drift,
        batches=1,
        batch_rows=args.batch_rows,
        start_date=day,
    )

    _step(4, "drift monitor: the batches production has not seen vs its training data")
    drift = drift_monitor(emit=False)  # step 5 retrains here: no deployment needs the event
    report = None
    if drift["status"] == "skipped":
        print(f"drift not computed: {drift['reason']}")
    else:
        print(
            f"dataset drift: {drift['dataset_drift']} (share {drift['drift_share']:.2f}); "
            f"report: {drift['report_path']}"
        )
        report = None if drift.get("blocked") else drift["report_path"]

    _step(5, "retraining cycle given the drift report" if report else "retraining cycle")
    second = retraining(drift_report_path=report, **FAST)
    print(second.summary())

    print(
        "\nDone. Inspect the registry with `retrain status` and `retrain history`; "
        f"reports are under {settings.reports_dir}."
    )
    return 0


def _step(n: int, text: str) -> None:
    print(f"\n=== [{n}/5] {text}", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
