"""``retrain challenger evaluate`` and ``retrain watch status | check``: the live tests.

Both run the same domain functions as the flows (:mod:`model.live`), without Prefect:
one look on the labelled prediction log, recorded in the history and acted on (promote, clear,
roll back) under the promotion lock, reports under ``reports/live/``. ``--dry-run`` looks
without recording or acting. Exit codes: 0 PROMOTE (or a look that decided nothing to act
on), 3 REJECT, 4 INCONCLUSIVE / waiting, 2 bad input or nothing to evaluate; the watch's check
exits 0, or 5 when it rolled back.
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any

from model.errors import ParameterError, RegistryError
from model.registry import ModelRegistry
from model.settings import get_settings

if TYPE_CHECKING:  # model.live loads pandas and SciPy: imported inside the commands
    from model.live.outcome import LiveOutcome, LiveSettings

EXIT = {"PROMOTE": 0, "REJECT": 3, "INCONCLUSIVE": 4, "KEEP": 0, "ROLLBACK": 5}


def add_evaluate(csub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """``retrain challenger evaluate`` (added to the ``challenger`` group of the registry)."""
    p = csub.add_parser(
        "evaluate",
        parents=[common, _options()],
        help="one look of the challenger's sequential evaluation on live labels",
    )
    p.add_argument("--mode", choices=("shadow", "routed"), default="shadow")
    p.add_argument("--n-max", type=int, default=5000, help="labelled rows of the final look")
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="AUC gain to exceed (default: the model's improvement_threshold, the gate's T)",
    )
    p.set_defaults(func=_evaluate)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "watch",
        help="the post-promotion watch: status, check",
        description="After a promotion the previous production scores in shadow; the watch "
        "rolls back a new production shown worse by more than the margin on live labels.",
    )
    commands = parser.add_subparsers(dest="watch_command", metavar="ACTION", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--registry", help="registry folder (default: from settings)")
    status = commands.add_parser("status", parents=[common], help="the watched pair and looks")
    status.set_defaults(func=_watch_status)
    check = commands.add_parser(
        "check", parents=[common, _options()], help="one look of the watch (rolls back)"
    )
    check.add_argument("--margin", type=float, default=0.01, help="AUC margin of a rollback")
    check.add_argument(
        "--max-days",
        "--days",
        dest="max_days",
        type=float,
        default=None,  # model.live.outcome.DEFAULT_WATCH_MAX_DAYS (its help: a test)
        help="the watch's maximum age in days (default 60): it ends earlier by evidence",
    )
    check.add_argument(
        "--rows",
        type=int,
        default=None,  # model.live.outcome.DEFAULT_WATCH_ROWS
        help="labelled rows at which the watch ends (default 10,000)",
    )
    check.set_defaults(func=_watch_check)


def _options() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument(
        "--alpha",
        type=float,
        default=None,
        help="the test's level (default: the model's significance_level for a challenger, "
        "0.1 for the watch)",  # model.live.outcome.DEFAULT_WATCH_ALPHA
    )
    p.add_argument("--spending", choices=("obrien_fleming", "pocock"), default="obrien_fleming")
    p.add_argument("--min-class-count", type=int, default=100)
    p.add_argument("--label-window-hours", type=float, default=0.0)
    p.add_argument("--as-of", help="UTC time to evaluate at (ISO 8601; default now)")
    p.add_argument("--dry-run", action="store_true", help="look only: record and change nothing")
    return p


def _now(value: str | None) -> dt.datetime:
    if not value:
        return dt.datetime.now(dt.UTC)
    try:
        t = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ParameterError(f"--as-of {value!r} is not an ISO 8601 time") from None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def _registry(args: argparse.Namespace) -> ModelRegistry:
    from model.serving.loading import verify_loads  # lazy: torch only when a model loads

    root = Path(args.registry) if args.registry else get_settings().models_dir
    return ModelRegistry(root, verify=verify_loads)


def _settings(args: argparse.Namespace, **extra: Any) -> LiveSettings:
    from model.cycle.models_config import live_gate
    from model.live.outcome import DEFAULT_WATCH_ALPHA, LiveSettings

    gate = live_gate(get_settings().model_name, improvement_threshold=extra.pop("threshold", None))
    if "watch_margin" in extra:
        extra["watch_alpha"] = DEFAULT_WATCH_ALPHA if args.alpha is None else args.alpha
    elif args.alpha is not None:
        gate["alpha"] = args.alpha
    return LiveSettings(
        spending=args.spending,
        min_class_count=args.min_class_count,
        label_window_hours=args.label_window_hours,
        **gate,
        **extra,
    )


def _show(outcome: LiveOutcome, dry_run: bool) -> None:
    from model.live.report import to_text

    print(to_text(outcome.to_dict()), end="")
    if outcome.reports:
        print("Reports: " + ", ".join(outcome.reports.values()))
    if dry_run and outcome.status == "looked":
        print("(dry run: nothing recorded, nothing changed)")


def _evaluate(args: argparse.Namespace) -> int:
    from model.cycle.locks import promotion_lock
    from model.live.challenger import apply_evaluation, evaluate_challenger
    from model.live.outcome import labelled, write_outcome_reports

    cfg = _settings(args, mode=args.mode, n_max=args.n_max, threshold=args.threshold)
    settings, reg, now = get_settings(), _registry(args), _now(args.as_of)
    with promotion_lock(reg.root):
        rows = labelled(settings.root, settings.model_name, now, cfg.label_window_hours)
        outcome = evaluate_challenger(reg, rows, cfg, settings.incoming_dir)
        if outcome.status == "skipped":
            raise RegistryError(outcome.reasons[0])
        if not args.dry_run:
            write_outcome_reports(outcome, settings.reports_dir)
            apply_evaluation(reg, outcome)
    _show(outcome, args.dry_run)
    return EXIT.get(outcome.decision or "", 4) if outcome.status == "looked" else 4


def _watch_check(args: argparse.Namespace) -> int:
    from model.cycle.locks import promotion_lock
    from model.live.outcome import (
        DEFAULT_WATCH_MAX_DAYS,
        DEFAULT_WATCH_ROWS,
        labelled,
        write_outcome_reports,
    )
    from model.live.watch import apply_watch, check_watch

    days = DEFAULT_WATCH_MAX_DAYS if args.max_days is None else args.max_days
    rows_at = DEFAULT_WATCH_ROWS if args.rows is None else args.rows
    cfg = _settings(args, watch_margin=args.margin, watch_max_days=days, watch_rows=rows_at)
    settings, reg, now = get_settings(), _registry(args), _now(args.as_of)
    with promotion_lock(reg.root):
        rows = labelled(settings.root, settings.model_name, now, cfg.label_window_hours)
        outcome = check_watch(reg, rows, cfg, now)
        restored = None
        if not args.dry_run:
            write_outcome_reports(outcome, settings.reports_dir)
            restored = apply_watch(reg, outcome)
    _show(outcome, args.dry_run)
    if restored:
        print(f"Rolled back to {restored}")
    return EXIT["ROLLBACK"] if restored else 0


def _watch_status(args: argparse.Namespace) -> int:
    from model.live.outcome import EVALUATED, WATCHED
    from model.live.watch import current_watch

    root = Path(args.registry) if args.registry else get_settings().models_dir
    events = ModelRegistry(root).history()
    watch, why = current_watch(events)
    if watch is None:
        print(f"No watch: {why}")
        return 0
    looks = [
        e for e in events if e.get("event") == WATCHED and e.get("promotion") == watch.promotion
    ]
    print(f"Watching    {watch.new} (new production) against {watch.previous} (previous)")
    print(f"Since       {watch.started.isoformat()} ({watch.event})")
    if not looks:
        print("Looks       none yet")
        return 0
    last = looks[-1]
    print(f"Window ends {last.get('window_ends') or '-'}")
    print(
        f"Looks       {len(looks)}; last: {last.get('decision')} on {last.get('n')} rows, "
        f"alpha spent {last.get('alpha_spent', 0):.4g} of {last.get('alpha_total') or 0:.4g}"
    )
    for reason in last.get("reasons") or []:
        print(f"            {reason}")
    evaluations = [e for e in events if e.get("event") == EVALUATED]
    if evaluations:
        ev = evaluations[-1]
        print(
            f"Challenger  last evaluation of {ev.get('version')}: {ev.get('decision')} "
            f"({ev.get('n')} rows)"
        )
    return 0
