"""``retrain status | versions | history | register | promote | rollback | challenger | gc |
recover``.

Reading commands never write the registry: ``status`` reports what is inconsistent and
how to repair it (exit 2), ``recover`` repairs it. Commands that add a version or change
production or the challenger give the registry a verifier that loads the model with torch
``weights_only=True`` (:func:`model.serving.loading.verify_loads`), so a folder that does
not load is refused before it is registered, promoted, restored or made challenger. A
:class:`~model.errors.RegistryWarning` (e.g. a switch that committed but whose record
could not be written) is printed as ``warning: ...`` on stderr.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import textwrap
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from model.cli.live import add_evaluate
from model.cli.registry_views import (
    LABEL_WIDTH,
    STATUS_WIDTH,
    ago,
    clip,
    comparison_line,
    detail,
    fmt_metrics,
    history_table,
    short_time,
    table,
    wrap_label,
)
from model.errors import RegistryError, RegistryWarning
from model.registry import PRODUCTION_EVENTS, ModelRegistry
from model.settings import get_settings

# --------------------------------------------------------------------------- handlers


def _loads(folder: Path) -> None:
    """The registry's verifier: the folder loads as a model (torch, weights_only=True)."""
    from model.serving.loading import verify_loads  # lazy: torch only when a model loads

    verify_loads(folder)


def _registry(args: argparse.Namespace, verify: bool = False) -> ModelRegistry:
    root = Path(args.registry) if args.registry else get_settings().models_dir
    return ModelRegistry(root, verify=_loads if verify else None)


Handler = Callable[[argparse.Namespace], int]


def _warnings_to_stderr(handler: Handler) -> Handler:
    """Run ``handler``, printing each registry warning once as ``warning: ...`` on stderr."""

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RegistryWarning)
            try:
                return handler(args)
            finally:
                seen = set()
                for w in caught:
                    if not issubclass(w.category, RegistryWarning):
                        warnings.showwarning(w.message, w.category, w.filename, w.lineno)
                    elif str(w.message) not in seen:
                        seen.add(str(w.message))
                        print(f"warning: {w.message}", file=sys.stderr)

    return run


def _count(text: str) -> int:
    """``-n``: a number of events, at least 1."""
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of events >= 1, got {text!r}")
    return n


def _print_problems(problems: Sequence[str], note: str) -> None:
    print(f"Problems    {len(problems)} ({note}):")
    for p in problems:
        print(textwrap.fill(p, STATUS_WIDTH, initial_indent="  ! ", subsequent_indent="    "))


@_warnings_to_stderr
def _status(args: argparse.Namespace) -> int:
    reg = _registry(args)
    problems = reg.problems()
    prod = reg.production()
    with warnings.catch_warnings():  # links in versions/ are among the problems already
        warnings.simplefilter("ignore", RegistryWarning)
        versions = reg.versions()
    print(f"Registry    {reg.root}")
    if prod is None:
        print("Production  none (register a model, then `retrain promote VERSION`)")
    else:
        meta: dict[str, Any] = {}
        try:
            meta = reg.metadata(prod.version)
        except RegistryError as exc:
            print(f"!           {exc}")
        when = short_time(prod.promoted_at)
        age = ago(prod.promoted_at)
        print(f"Production  {prod.version}  ({prod.event or 'promoted'} {when} UTC, {age})")
        print(
            textwrap.fill(
                prod.reason or "-",
                STATUS_WIDTH,
                initial_indent=f"{'Reason':<{LABEL_WIDTH}}",
                subsequent_indent=" " * LABEL_WIDTH,
                break_on_hyphens=False,
            )
        )
        metrics = meta.get("metrics", {}).get("validation") if isinstance(meta, dict) else None
        print(wrap_label("Metrics", f"{fmt_metrics(metrics)} (validation)"))
        print(f"Trained     {short_time(meta.get('trained_at'))} UTC")
        ev = reg.last_event(PRODUCTION_EVENTS, version=prod.version)
        if ev and (ev.get("comparison") or {}).get("metrics"):
            comparison = ev["comparison"]
            rows = "recent test rows" if comparison.get("decided_on") == "recent" else "test split"
            print(wrap_label("Compared", comparison_line(comparison["metrics"], rows)))
        if ev and ev.get("run_id"):
            print(f"Flow run    {ev['run_id']}")
        print(f"SHA-256     {prod.sha256}")
        prev, why = reg.rollback_target()
        print(f"Rollback to {prev or '-'}" + (f"  ({clip(why, STATUS_WIDTH - 16)})" if why else ""))
    try:  # status is the health check: report a broken challenger file, do not stop
        chal = reg.challenger()
        chal_text = f"{chal.version} at {chal.traffic:g}% traffic" if chal else "none"
    except RegistryError as exc:
        chal_text = f"! {exc} (fix it, or `retrain challenger clear`)"
    print(f"Challenger  {chal_text}")
    counts: dict[str, int] = {}
    for v in versions:
        counts[v.status] = counts.get(v.status, 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    print(f"Versions    {len(versions)}" + (f" ({summary})" if summary else ""))
    corrupt = [v for v in versions if not v.valid]
    if corrupt:
        print(f"CORRUPT     {len(corrupt)} version(s), never promotable:")
        for v in corrupt:
            print(f"  {v.version}  {v.problem}")
    last = reg.history(1)
    if last:
        ev = last[0]
        print(f"Last event  {short_time(ev.get('time'))} {ev.get('event')} {ev.get('version', '')}")
    if problems:
        _print_problems(problems, "status changed nothing")
        print(
            f"error: the registry needs repair ({len(problems)} problem(s) above); "
            "`retrain recover` repairs what it can",
            file=sys.stderr,
        )
        return 2
    if corrupt:  # damage is a failure: status is the health check
        names = ", ".join(v.version for v in corrupt)
        print(
            f"error: {len(corrupt)} corrupt version(s) ({names}): restore their files, or "
            "remove them with `retrain gc`",
            file=sys.stderr,
        )
        return 2
    return 0


@_warnings_to_stderr
def _recover(args: argparse.Namespace) -> int:
    reg = _registry(args)
    found = reg.problems()
    before = {ev.get("id") for ev in reg.history()}
    reg.recover()
    done = [ev for ev in reg.history() if ev.get("id") not in before]
    for ev in done:
        print(f"Recorded {ev.get('event')} {ev.get('version') or ''}: {detail(ev)}")
    left = reg.problems()
    if left:
        _print_problems(left, "left after recovery")
        return 2
    print("Nothing to repair" if not found and not done else "The registry is consistent")
    return 0


@_warnings_to_stderr
def _versions(args: argparse.Namespace) -> int:
    reg = _registry(args)
    for problem in reg.problems():  # the statuses below are what recovery will keep
        warnings.warn(RegistryWarning(problem), stacklevel=1)
    rows = []
    listed = reg.versions()
    for v in listed:
        notes = [n for n in ("challenger" if v.challenger else "", v.decision or "") if n]
        if not v.valid:
            notes.insert(0, "CORRUPT")
        auc = v.metrics.get("auc")
        rows.append(
            [
                v.version,
                v.status,
                short_time(v.trained_at),
                f"{auc:.4f}" if isinstance(auc, float) else "-",
                (v.sha256 or "-")[:12],
                ", ".join(notes) or "-",
            ]
        )
    if not rows:
        print("no versions registered")
        return 0
    print(table(["VERSION", "STATUS", "TRAINED (UTC)", "AUC", "SHA-256", "NOTE"], rows))
    for v in listed:
        if not v.valid:
            warnings.warn(RegistryWarning(f"{v.version} is corrupt: {v.problem}"), stacklevel=1)
    return 0


@_warnings_to_stderr
def _history(args: argparse.Namespace) -> int:
    events = _registry(args).history(args.n)
    if args.json:
        for ev in events:
            print(json.dumps(ev, ensure_ascii=False))
    elif events:
        print(history_table(events))
    else:
        print("history is empty")
    return 0


@_warnings_to_stderr
def _register(args: argparse.Namespace) -> int:
    reg = _registry(args, verify=True)
    version = reg.register(args.folder, reason=args.reason)
    meta = reg.metadata(version)
    metrics = fmt_metrics(meta.get("metrics", {}).get("validation"), ["auc"])
    print(f"Registered {version}  sha256 {str(meta.get('sha256'))[:12]}  {metrics}")
    print(f"  from {Path(args.folder).resolve()}")
    print(f"  to   {reg.version_path(version)}")
    return 0


@_warnings_to_stderr
def _promote(args: argparse.Namespace) -> int:
    reg = _registry(args, verify=True)
    before = reg.production()
    reg.promote(args.version, args.reason, force=args.force)
    word = "Force-promoted" if args.force else "Promoted"
    was = f" (was {before.version}, kept as the backup)" if before else ""
    print(f"{word} {args.version} to production{was}")
    return 0


@_warnings_to_stderr
def _rollback(args: argparse.Namespace) -> int:
    reg = _registry(args, verify=True)
    before = reg.production()
    version = reg.rollback(args.to, reason=args.reason)
    print(f"Rolled back production {before.version if before else '-'} -> {version}")
    return 0


@_warnings_to_stderr
def _challenger_set(args: argparse.Namespace) -> int:
    info = _registry(args, verify=True).set_challenger(
        args.version, args.traffic, reason=args.reason
    )
    print(f"Challenger {info.version} now gets {info.traffic:g}% of traffic")
    return 0


@_warnings_to_stderr
def _challenger_clear(args: argparse.Namespace) -> int:
    cleared = _registry(args).clear_challenger(reason=args.reason)
    print("Challenger cleared" if cleared else "No challenger was set")
    return 0


@_warnings_to_stderr
def _challenger_show(args: argparse.Namespace) -> int:
    info = _registry(args).challenger()
    if info is None:
        print("No challenger")
    else:
        print(f"Challenger  {info.version}")
        print(f"Traffic     {info.traffic:g}%")
        print(f"Set         {short_time(info.set_at)} UTC ({ago(info.set_at)})")
        print(f"Reason      {info.reason or '-'}")
    return 0


@_warnings_to_stderr
def _gc(args: argparse.Namespace) -> int:
    if args.keep_predictions_days < 0:  # checked before any version is deleted
        raise RegistryError(
            f"--keep-predictions-days must be >= 0, got {args.keep_predictions_days} "
            "(a negative retention would delete today's prediction log)"
        )
    result = _registry(args).gc(
        keep=args.keep, dry_run=args.dry_run, keep_production=not args.prune_production
    )
    rows = [[v, "delete" + (" (dry run)" if args.dry_run else "d"), "-"] for v in result.delete]
    rows += [[v, "keep", why] for v, why in result.keep.items()]
    rows.sort(key=lambda r: r[0])
    if rows:
        print(table(["VERSION", "ACTION", "WHY"], rows))
    verb = "would delete" if args.dry_run else "deleted"
    print(f"{verb} {len(result.delete)} version(s), kept {len(result.keep)}")
    predictions = get_settings().predictions_dir
    if predictions.is_dir():
        from model.serving.log import prune_log  # pandas only when there is a log to prune

        # the scoring service's log: raw features, kept N days
        pruned = prune_log(predictions, args.keep_predictions_days, dry_run=args.dry_run)
        print(
            f"prediction log: {verb} {len(pruned.deleted)} day folder(s) older than "
            f"{args.keep_predictions_days} days, kept {pruned.kept}"
        )
    return 0


# --------------------------------------------------------------------------- parser


def register(sub: argparse._SubParsersAction) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--registry", metavar="DIR", help="registry folder (default: $RETRAIN_HOME/models)"
    )

    p = sub.add_parser("status", parents=[common], help="production model, challenger, health")
    p.set_defaults(func=_status)

    p = sub.add_parser("versions", parents=[common], help="list registered versions")
    p.set_defaults(func=_versions)

    p = sub.add_parser("history", parents=[common], help="registry events, newest last")
    p.add_argument("-n", type=_count, default=20, help="show the last N events (default 20)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=_history)

    p = sub.add_parser("register", parents=[common], help="add a model folder as a new version")
    p.add_argument("folder", help="model folder (model.pt + model.json)")
    p.add_argument("--reason", help="why it is registered (recorded)")
    p.set_defaults(func=_register)

    p = sub.add_parser(
        "promote",
        parents=[common],
        help="make a version production",
        description="Needs a recorded PROMOTE comparison against the current production "
        "(or no production yet), unless --force with a --reason.",
    )
    p.add_argument("version", help="version to promote, e.g. v0004")
    p.add_argument("--force", action="store_true", help="skip the comparison gate (recorded)")
    p.add_argument("--reason", help="why (required with --force)")
    p.set_defaults(func=_promote)

    p = sub.add_parser("rollback", parents=[common], help="restore the previous production")
    p.add_argument("--to", metavar="VERSION", help="a named earlier production version")
    p.add_argument("--reason", help="why (recorded)")
    p.set_defaults(func=_rollback)

    p = sub.add_parser("challenger", help="champion/challenger traffic split")
    csub = p.add_subparsers(dest="challenger_command", metavar="ACTION", required=True)
    c = csub.add_parser("set", parents=[common], help="route a share of traffic to a version")
    c.add_argument("version")
    c.add_argument(
        "--traffic",
        type=float,
        required=True,
        help="percent of entities, [0, 100]; 0: shadow only (scored on every row, serves none)",
    )
    c.add_argument("--reason")
    c.set_defaults(func=_challenger_set)
    c = csub.add_parser("clear", parents=[common], help="stop the challenger")
    c.add_argument("--reason")
    c.set_defaults(func=_challenger_clear)
    c = csub.add_parser("show", parents=[common], help="show the challenger")
    c.set_defaults(func=_challenger_show)
    add_evaluate(csub, common)  # retrain challenger evaluate: the live sequential test

    p = sub.add_parser("gc", parents=[common], help="delete old versions (see --dry-run)")
    p.add_argument("--keep", type=int, default=5, help="newest versions to keep (default 5)")
    p.add_argument("--dry-run", action="store_true", help="only show what would be deleted")
    p.add_argument(
        "--prune-production",
        action="store_true",
        help="also delete old versions that were once in production "
        "(never the current one or its predecessor)",
    )
    p.add_argument(
        "--keep-predictions-days",
        type=int,
        default=30,
        metavar="N",
        help="delete the prediction log's day folders older than N days (default 30)",
    )
    p.set_defaults(func=_gc)

    p = sub.add_parser(
        "recover",
        parents=[common],
        help="repair what a crash or a hand edit left (recorded)",
        description="Finish or discard an interrupted switch, make the production link and "
        "production.json agree, cut a torn history line. Every write does this first; "
        "`retrain status` says when it is needed.",
    )
    p.set_defaults(func=_recover)
