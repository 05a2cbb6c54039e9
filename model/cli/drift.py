"""``retrain drift``: data drift of new batches against a reference, with reports (and event)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from model.errors import DriftInputError
from model.settings import get_settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "drift",
        help="Detect data drift of incoming batches against a reference",
        description=(
            "Compare the current data (default: every incoming batch production was not trained "
            "on) with the reference "
            "(default: the production model's training data) and write drift.json, drift.md "
            "and drift.html. Exit code 0 whether or not drift was found."
        ),
    )
    p.add_argument("--reference", help="Reference data (Parquet file or folder, or CSV)")
    p.add_argument("--current", nargs="+", metavar="PATH", help="Current data (one or more paths)")
    p.add_argument(
        "--batches",
        type=int,
        default=None,
        help="Only the newest N new batches (default: every batch production was not trained "
        "on; with --reference: the newest 1)",
    )
    p.add_argument("--out", help="Report folder (default: reports/<model>/drift/<timestamp>)")
    p.add_argument("--incoming", metavar="PATH", help="incoming_path (default: the model's)")
    p.add_argument("--target", help="Target column (default: the model's, else target)")
    p.add_argument(
        "--id-column", help="Id column, not a feature (default: the model's, else 'id' if present)"
    )
    p.add_argument(
        "--threshold", type=float, help="dataset_drift_threshold (default: the model's, else 0.5)"
    )
    p.add_argument(
        "--min-drifted-features",
        type=int,
        default=None,
        help="Dataset drift also at this many drifted features (default: the model's, else off)",
    )
    p.add_argument("--alpha", type=float, default=0.05, help="Significance level (Holm)")
    p.add_argument("--psi-threshold", type=float, default=0.1)
    p.add_argument("--distance-threshold", type=float, default=0.1)
    p.add_argument("--no-model", action="store_true", help="Skip the prediction drift")
    p.add_argument(
        "--emit",
        action="store_true",
        help="On dataset drift, emit retraining.drift.detected (needs PREFECT_API_URL)",
    )
    p.add_argument(
        "--prediction-log",
        action="store_true",
        help="Current data: the scoring service's prediction log since production was trained",
    )
    p.add_argument(
        "--then-retrain",
        action="store_true",
        help="On dataset drift, run the retraining cycle here, given the report just written "
        "(no second drift computation; uses a running `make stack-up` server, else a "
        "temporary one)",
    )
    p.add_argument("--json", action="store_true", help="Print the summary as JSON")
    p.set_defaults(func=run_drift)


def no_listener_note(model: str, report: str) -> str:
    """What to tell a user whose drift reached no deployment."""
    from model.cycle.naming import retrain_command

    return (
        "dataset drift, but no event was sent, so no deployment will retrain. To retrain on "
        f"this report: retrain --model {model} drift --then-retrain, or "
        f"{retrain_command(model, report)}"
    )


def _api_url() -> str | None:
    """Where an emitted event would go (Prefect's setting; prefect imported only for --emit)."""
    from flows.drift_monitor import events_api_url

    return events_api_url()


def run_drift(args: argparse.Namespace) -> int:
    if args.emit and args.then_retrain:
        raise DriftInputError(
            "--emit and --then-retrain: choose one (--emit lets the deployment retrain, "
            "--then-retrain retrains in this process)"
        )
    if args.emit and not _api_url():
        raise DriftInputError(
            "--emit needs a running Prefect server: set PREFECT_API_URL "
            "(e.g. http://127.0.0.1:4200/api)"
        )
    from model.cycle.models_config import effective_parameters
    from model.cycle.monitor import monitor_drift  # pandas, scipy: only when computing drift
    from model.drift import DriftSettings

    settings = get_settings()  # --model: this command's model (model/cli/__init__.py)
    name = settings.model_name
    explicit = {
        "incoming_path": args.incoming,
        "target_column": args.target,
        "id_column": args.id_column,
        "dataset_drift_threshold": args.threshold,
        "min_drifted_features": args.min_drifted_features,
    }
    values, _ = effective_parameters(explicit, name, root=settings.root)
    drift_settings = DriftSettings(
        alpha=args.alpha,
        psi_threshold=args.psi_threshold,
        distance_threshold=args.distance_threshold,
        dataset_drift_threshold=values["dataset_drift_threshold"],
        min_drifted_features=values["min_drifted_features"],
    )
    summary = monitor_drift(
        settings,
        args.reference,
        args.current,
        out_dir=args.out,
        n_batches=args.batches,
        drift_settings=drift_settings,
        with_model=not args.no_model,
        target=values["target_column"],
        id_column=values["id_column"],
        incoming=values["incoming_path"],
        prediction_log=name if args.prediction_log else None,
    )
    if summary["status"] == "skipped":
        print(f"drift not computed: {summary['reason']}")
        return 0
    if args.emit and summary["dataset_drift"] and not summary.get("blocked"):
        from flows.drift_monitor import emit_drift_detected  # prefect only on this path

        event = emit_drift_detected(summary, flush=True, model_name=name)
        summary["event"] = str(event.id) if event else None
    if args.json:
        print(json.dumps({k: v for k, v in summary.items() if k != "table"}, indent=2))
    else:
        with open(summary["reports"]["md"], encoding="utf-8") as fh:
            print(fh.read())
        for kind, path in summary["reports"].items():
            print(f"{kind}: {path}")
    actionable = summary["dataset_drift"] and not summary.get("blocked")
    if args.then_retrain:
        return _retrain_on(name, summary) if actionable else _nothing_to_retrain(summary)
    if actionable and not args.emit:
        print(f"note: {no_listener_note(name, summary['report_path'])}", file=sys.stderr)
    return 0


def _nothing_to_retrain(summary: dict[str, Any]) -> int:
    why = summary.get("blocked") or "no dataset drift"
    print(f"not retraining: {why}")
    return 0


def _retrain_on(name: str, summary: dict[str, Any]) -> int:
    """The retraining cycle in this process, given the report just written."""
    from flows.ephemeral import connect_cli_run  # prefect only on this path
    from flows.retraining import retraining

    connect_cli_run()
    print(f"retraining {name} on {summary['report_path']}", flush=True)
    result = retraining(model_name=name, drift_report_path=summary["report_path"])
    print(result.summary())
    return 0
