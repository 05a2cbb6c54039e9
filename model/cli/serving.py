"""``retrain serve`` (the scoring service) and ``retrain labels add`` (late labels joined to
the prediction log into an incoming batch).

``serve`` reaches ``deployments.scoring`` (FastAPI, uvicorn, prefect for the promotion event)
only inside its command function.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from model.errors import DataValidationError
from model.settings import Settings, get_settings

if TYPE_CHECKING:
    from model.data.contract import BatchContract


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def _serve(args: argparse.Namespace) -> int:
    from deployments.scoring import ServeConfig, run  # FastAPI/uvicorn only when serving

    settings = get_settings()
    pause = float(os.environ.get("RETRAIN_FAULT_FLUSH_PAUSE", "0") or 0)
    config = ServeConfig(
        registry=Path(args.registry) if args.registry else settings.models_dir,
        predictions_dir=settings.predictions_dir,
        model_name=settings.model_name,
        host=args.host,
        port=args.port,
        api_key=args.api_key or os.environ.get("RETRAIN_SERVE_API_KEY") or None,
        max_rows=args.max_rows,
        max_bytes=args.max_bytes,
        poll_seconds=args.poll_seconds,
        shadow=args.shadow,
        watch_max_days=args.watch_max_days,
        log_enabled=not args.no_log,
        flush_rows=args.flush_rows,
        flush_seconds=args.flush_seconds,
        flush_pause=pause,
        events=not args.no_events,
        home=settings.root,
    )
    run(config)
    return 0


def _labels_add(args: argparse.Namespace) -> int:
    from model.serving.labels import add_labels  # pandas: only when labels are added
    from model.serving.log import log_folder

    settings = get_settings()
    day = None
    if args.date:
        try:
            day = dt.date.fromisoformat(args.date)
        except ValueError:
            raise DataValidationError(f"--date {args.date!r}: expected YYYY-MM-DD") from None
    model = _model_columns(settings)
    target = args.target or model["target_column"]
    id_column = model["id_column"] or "id"
    contract = _contract(settings)
    result = add_labels(
        args.file,
        log_folder=log_folder(settings.predictions_dir, settings.model_name),
        incoming_dir=Path(model["incoming_path"] or settings.incoming_dir),
        id_column=args.id_column or id_column,
        label_column=args.label_column or target,
        target=target,
        day=day,
        contract=contract,
        batch_id_column=id_column,
    )
    if result.batch:
        from tasks.events import emit_labels_added  # prefect only on this path

        emit_labels_added(settings.model_name, result.to_dict())
    if args.json:
        print(json.dumps(result.to_dict()))
        return 0
    print(f"{result.labels_file}: {result.rows} label row(s)")
    print(f"  added            {result.added}")
    print(f"  never served     {result.never_served}  (id not in the prediction log)")
    print(f"  already added    {result.already_added}  (in an earlier labelled batch)")
    print(f"  duplicates       {result.duplicates}  (same id and label again)")
    print(f"  conflicting      {result.conflicting}  (same id, different labels: not used)")
    print(f"  no id            {result.no_id}")
    print(f"  no label         {result.no_label}")
    if result.batch:
        print(
            f"wrote {settings.relative(Path(result.batch))} (target {target!r}, id {id_column!r})"
        )
        print(
            f"undo it (before a cycle trains on it): retrain labels undo {Path(result.batch).name}"
        )
    else:
        print("nothing new to add: no batch written")
    return 0


def _model_columns(settings: Settings) -> dict[str, Any]:
    """The model's ``target_column``, ``id_column`` and ``incoming_path`` (its table in
    retraining.toml, else the built-in defaults)."""
    from model.cycle.models_config import effective_parameters

    keys = ["target_column", "id_column", "incoming_path"]
    values, _ = effective_parameters({}, settings.model_name, keys, root=settings.root)
    return values


def _contract(settings: Settings) -> BatchContract | None:
    """The production model's batch contract (None without a production model)."""
    from model.serving.labels import production_contract

    return production_contract(settings.models_dir, settings.root)


def _labels_undo(args: argparse.Namespace) -> int:
    from model.serving.labels import undo_labels
    from model.serving.log import log_folder

    settings = get_settings()
    model = _model_columns(settings)
    removed = undo_labels(
        args.batch,
        incoming_dir=Path(model["incoming_path"] or settings.incoming_dir),
        log_folder=log_folder(settings.predictions_dir, settings.model_name),
        models_dir=settings.models_dir,
        home=settings.root,
    )
    for path in removed:
        print(f"removed {settings.relative(path)}")
    print("its labels can be added again")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="HTTP scoring service that follows promotions and logs what it served",
        description="POST /predict, GET /health, /version, /metrics. Follows the registry's "
        "production (and challenger) without a restart; every served row goes to "
        "$RETRAIN_HOME/predictions/<model>/.",
    )
    p.add_argument("--registry", metavar="DIR", help="registry (default $RETRAIN_HOME/models)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument(
        "--api-key",
        help="required in the X-API-Key header (default $RETRAIN_SERVE_API_KEY); "
        "mandatory when --host is not local",
    )
    p.add_argument("--max-rows", type=_positive_int, default=10_000, help="rows per request")
    p.add_argument(
        "--max-bytes", type=_positive_int, default=16 * 2**20, help="body bytes per request"
    )
    p.add_argument(
        "--poll-seconds", type=_positive_float, default=2.0, help="registry poll (default 2)"
    )
    p.add_argument(
        "--shadow",
        choices=("watch", "off", "challenger", "previous"),
        default="watch",
        help="a model that scores every row unreturned: watch (default): the previous "
        "production while the post-promotion watch of the newest promotion is open; "
        "challenger (instead of routing traffic to it); previous: the previous production "
        "after a promotion, always; off",
    )
    p.add_argument(
        "--watch-max-days",
        "--watch-days",
        dest="watch_max_days",
        type=_positive_float,
        default=60.0,
        help="--shadow watch: the previous production scores in shadow until the watch ends "
        "(rollback or keep) or this many days after the promotion (default 60, the "
        "post-promotion-watch flow's watch_max_days)",
    )
    p.add_argument("--no-log", action="store_true", help="do not write the prediction log")
    p.add_argument(
        "--flush-rows", type=_positive_int, default=10_000, help="log flush every N rows"
    )
    p.add_argument(
        "--flush-seconds", type=_positive_float, default=5.0, help="log flush every N seconds"
    )
    p.add_argument(
        "--no-events", action="store_true", help="do not subscribe to Prefect promotion events"
    )
    p.set_defaults(func=_serve)

    p = sub.add_parser("labels", help="late labels for served predictions")
    lsub = p.add_subparsers(dest="labels_command", metavar="ACTION", required=True)
    a = lsub.add_parser(
        "add",
        help="join labels to logged predictions by id into an incoming batch",
        description="Writes incoming/date=<today>/labels-<hash>.parquet: the id, the features "
        "as served, the label (as the model's target column) and the served version. Labels "
        "must be the production model's two classes and ids of its id column's type (else "
        "nothing is written, exit 2). Every label row is counted: added, never served, already "
        "added, duplicate, conflicting, no id/label.",
    )
    a.add_argument("file", help="labels: a CSV or Parquet file")
    a.add_argument(
        "--id-column", help="the id column of the labels file (default: the model's id_column)"
    )
    a.add_argument(
        "--label-column",
        help="the label column of the labels file (default: the batch's target column)",
    )
    a.add_argument(
        "--target",
        help="target column of the batch (default: the model's target_column in retraining.toml)",
    )
    a.add_argument("--date", help="batch date YYYY-MM-DD (default today, UTC)")
    a.add_argument("--json", action="store_true", help="print the counts as JSON")
    a.set_defaults(func=_labels_add)
    u = lsub.add_parser(
        "undo",
        help="remove a labelled batch no version was trained on, so it can be added again",
        description="Removes incoming/<batch>/labels-<hash>.parquet (as `labels add` printed "
        "it: its name or its path) and its joined labels in the prediction log's labels/ "
        "folder. Refused once a registered version was trained on its batch.",
    )
    u.add_argument("batch", help="the labels file: labels-<hash>.parquet or its path")
    u.set_defaults(func=_labels_undo)
