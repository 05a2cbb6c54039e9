"""The README's main command: the whole retraining loop on demo data, on the embedded Prefect.

1. demo customers are written (the lab's synthetic data set);
2. a first retraining run finds no production model, trains one and promotes it;
3. a drifted batch arrives;
4. the drift monitor detects drift and writes its report (and emits the drift event);
5. a retraining run triggered by that report trains a candidate, compares it with
   production on the clean holdout, and promotes or rejects it.

Re-running continues from the registry already in ``$RETRAIN_HOME`` (nothing is deleted).
"""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

from flows.drift_monitor import drift_monitor
from flows.ephemeral import start_tied_ephemeral_server
from flows.retraining import retraining
from model.cycle.models_config import select_model
from model.data.demo import write_demo
from model.settings import get_settings, model_scope

FAST: dict[str, Any] = {"min_hours_between_trainings": 0.0, "id_column": "id"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000, help="rows of base data")
    parser.add_argument("--batch-rows", type=int, default=10_000, help="rows of the drifted batch")
    parser.add_argument("--drift", type=float, default=0.6, help="drift of the new batch (0-1)")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    # the default model (RETRAIN_MODEL_NAME, else retraining.toml's first): its folders are
    # the ones written here and the ones the flows read
    name = select_model(None, get_settings(), "RETRAIN_MODEL_NAME")
    with model_scope(name):
        return _demo(args)


def _demo(args: argparse.Namespace) -> int:
    settings = get_settings()
    start_tied_ephemeral_server()  # a killed demo leaves no orphaned Prefect server

    _step(1, f"demo data ({args.rows} rows) → {settings.raw_data_path}")
    write_demo(settings, rows=args.rows, seed=args.seed, drift=0.0, batches=0)

    _step(2, "first retraining cycle (no production model yet)")
    first = retraining(**FAST)
    print(first.summary())

    today = dt.datetime.now(dt.UTC).date()
    _step(3, f"a drifted batch arrives (drift {args.drift}, {args.batch_rows} rows)")
    write_demo(
        settings,
        rows=args.rows,
        seed=args.seed,
        drift=args.drift,
        batches=1,
        batch_rows=args.batch_rows,
        start_date=today,
    )

    _step(4, "drift monitor: the batches production has not seen vs its training data")
    drift = drift_monitor()
    print(
        f"dataset drift: {drift['dataset_drift']} (share {drift['drift_share']:.2f}); "
        f"report: {drift['report_path']}"
    )

    _step(5, "retraining cycle triggered by the drift report")
    second = retraining(drift_report_path=drift["report_path"], **FAST)
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
