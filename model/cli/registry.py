"""``retrain status | versions | history | register | promote | rollback | challenger | gc``."""

from __future__ import annotations

import argparse
import json
import textwrap
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from model.errors import RegistryError
from model.registry import PRODUCTION_EVENTS, ModelRegistry
from model.settings import get_settings

DETAIL_WIDTH = 64
LABEL_WIDTH = 12  # "Production  "
STATUS_WIDTH = 100


# --------------------------------------------------------------------------- formatting


def short_time(iso: object) -> str:
    """``2026-11-26T06:54:02.958Z`` -> ``2026-11-26 06:54`` (UTC)."""
    if not isinstance(iso, str) or not iso:
        return "-"
    try:
        t = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return iso[:16]
    if t.tzinfo is not None:
        t = t.astimezone(UTC)
    return t.strftime("%Y-%m-%d %H:%M")


def ago(iso: object, now: datetime | None = None) -> str:
    """``3h ago`` style age of an ISO time, or '' when unknown."""
    if not isinstance(iso, str):
        return ""
    try:
        t = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return ""
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    s = max(0, int(((now or datetime.now(UTC)) - t).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            return f"{s // size}{unit} ago"
    return "just now"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces; the last column is not padded."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = []
    for row in [list(headers), *rows]:
        cells = [c.ljust(widths[i]) for i, c in enumerate(row[:-1])] + [row[-1]]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def clip(text: str, width: int = DETAIL_WIDTH) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def fmt_metrics(metrics: object, keys: Sequence[str] | None = None) -> str:
    if not isinstance(metrics, Mapping) or not metrics:
        return "-"
    items = [(k, metrics[k]) for k in (keys or list(metrics)) if k in metrics]
    return "  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in items)


def wrap_label(label: str, text: str, width: int = STATUS_WIDTH) -> str:
    """``Label       text`` wrapped at two-space boundaries (``key value  key value``),
    continuation lines indented under the text, so long metric lists stay readable."""
    indent = " " * LABEL_WIDTH
    lines, line = [], f"{label:<{LABEL_WIDTH}}"
    for i, part in enumerate(text.split("  ")):
        if i and len(line) + 2 + len(part) > width:
            lines.append(line)
            line = indent + part
        else:
            line += ("  " if i else "") + part
    lines.append(line)
    return "\n".join(lines)


def _detail(ev: Mapping[str, Any]) -> str:
    kind = ev.get("event")
    if kind == "challenger":
        action = ev.get("action", "")
        text = f"set at {ev.get('traffic', 0):g}% traffic" if action == "set" else "cleared"
        return f"{text}; {ev['reason']}" if ev.get("reason") else text
    reasons = ev.get("reasons")
    if isinstance(reasons, list) and reasons:
        return "; ".join(str(r) for r in reasons)
    reason = ev.get("reason")
    if isinstance(reason, Mapping):  # e.g. a training reason {"trigger", "reasons", ...}
        text = "; ".join(str(r) for r in reason.get("reasons") or [])
        trigger = str(reason.get("trigger") or "")
        return text if text.startswith(trigger) else f"{trigger}: {text}"
    if reason:
        return str(reason)
    if ev.get("error"):
        return str(ev["error"])
    if kind == "registered":
        return fmt_metrics(ev.get("metrics"), ["auc"])
    return ""


def _comparison_line(metrics: Mapping[str, Any]) -> str:
    """``auc 0.9123 (was 0.9011)  f1 ...`` from a comparison summary's metrics."""
    parts = []
    key = [k for k in ("auc", "f1", "log_loss", "accuracy") if k in metrics]
    for name in key or list(metrics)[:4]:
        m = metrics[name]
        if not isinstance(m, Mapping) or not isinstance(m.get("candidate"), int | float):
            continue
        text = f"{name} {m['candidate']:.4f}"
        if isinstance(m.get("baseline"), int | float):
            text += f" (was {m['baseline']:.4f})"
        parts.append(text)
    return "  ".join(parts) + " (test split)" if parts else "-"


def _other(ev: Mapping[str, Any]) -> str:
    for key in ("previous", "baseline_version"):
        if isinstance(ev.get(key), str):
            return str(ev[key])
    b = ev.get("baseline")
    if isinstance(b, Mapping) and isinstance(b.get("version"), str):
        return str(b["version"])
    if isinstance(b, str):
        return b
    return "-"


def history_table(events: Sequence[Mapping[str, Any]]) -> str:
    rows = [
        [
            short_time(ev.get("time")),
            str(ev.get("event", "?")),
            str(ev.get("version") or "-"),
            _other(ev),
            str(ev.get("decision") or "-"),
            str(ev.get("run_id") or "-")[:8],
            clip(_detail(ev)) or "-",
        ]
        for ev in events
    ]
    return table(["TIME (UTC)", "EVENT", "VERSION", "FROM", "DECISION", "RUN", "DETAIL"], rows)


# --------------------------------------------------------------------------- handlers


def _registry(args: argparse.Namespace) -> ModelRegistry:
    root = Path(args.registry) if args.registry else get_settings().models_dir
    return ModelRegistry(root)


def _status(args: argparse.Namespace) -> int:
    reg = _registry(args)
    prod = reg.production()
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
            print(wrap_label("Compared", _comparison_line(ev["comparison"]["metrics"])))
        if ev and ev.get("run_id"):
            print(f"Flow run    {ev['run_id']}")
        print(f"SHA-256     {prod.sha256}")
        prev = reg.previous_production()
        print(f"Rollback to {prev or '-'}")
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
    return 0


def _versions(args: argparse.Namespace) -> int:
    reg = _registry(args)
    rows = []
    for v in reg.versions():
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
    return 0


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


def _register(args: argparse.Namespace) -> int:
    reg = _registry(args)
    version = reg.register(args.folder, reason=args.reason)
    meta = reg.metadata(version)
    metrics = fmt_metrics(meta.get("metrics", {}).get("validation"), ["auc"])
    print(f"Registered {version}  sha256 {str(meta.get('sha256'))[:12]}  {metrics}")
    print(f"  from {Path(args.folder).resolve()}")
    print(f"  to   {reg.version_path(version)}")
    return 0


def _promote(args: argparse.Namespace) -> int:
    reg = _registry(args)
    before = reg.production()
    reg.promote(args.version, args.reason, force=args.force)
    word = "Force-promoted" if args.force else "Promoted"
    was = f" (was {before.version}, kept as the backup)" if before else ""
    print(f"{word} {args.version} to production{was}")
    return 0


def _rollback(args: argparse.Namespace) -> int:
    reg = _registry(args)
    before = reg.production()
    version = reg.rollback(args.to, reason=args.reason)
    print(f"Rolled back production {before.version if before else '-'} -> {version}")
    return 0


def _challenger_set(args: argparse.Namespace) -> int:
    info = _registry(args).set_challenger(args.version, args.traffic, reason=args.reason)
    print(f"Challenger {info.version} now gets {info.traffic:g}% of traffic")
    return 0


def _challenger_clear(args: argparse.Namespace) -> int:
    cleared = _registry(args).clear_challenger(reason=args.reason)
    print("Challenger cleared" if cleared else "No challenger was set")
    return 0


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


def _gc(args: argparse.Namespace) -> int:
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
    p.add_argument("-n", type=int, default=20, help="show the last N events (default 20)")
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
    c.add_argument("--traffic", type=float, required=True, help="percent of entities, (0, 100]")
    c.add_argument("--reason")
    c.set_defaults(func=_challenger_set)
    c = csub.add_parser("clear", parents=[common], help="stop the challenger")
    c.add_argument("--reason")
    c.set_defaults(func=_challenger_clear)
    c = csub.add_parser("show", parents=[common], help="show the challenger")
    c.set_defaults(func=_challenger_show)

    p = sub.add_parser("gc", parents=[common], help="delete old versions (see --dry-run)")
    p.add_argument("--keep", type=int, default=5, help="newest versions to keep (default 5)")
    p.add_argument("--dry-run", action="store_true", help="only show what would be deleted")
    p.add_argument(
        "--prune-production",
        action="store_true",
        help="also delete old versions that were once in production "
        "(never the current one or its predecessor)",
    )
    p.set_defaults(func=_gc)
