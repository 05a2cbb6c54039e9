"""Terminal views of registry data for ``retrain status | versions | history | gc``:
times, aligned tables, wrapped label lines, one-line details of history events."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

DETAIL_WIDTH = 64
LABEL_WIDTH = 12  # "Production  "
STATUS_WIDTH = 100


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


def detail(ev: Mapping[str, Any]) -> str:
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


def comparison_line(metrics: Mapping[str, Any], rows: str = "test split") -> str:
    """``auc 0.9123 (was 0.9011)  f1 ...`` from a comparison summary's metrics, measured on
    ``rows`` (the whole test split, or its recent rows when the decision was made there)."""
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
    return "  ".join(parts) + f" ({rows})" if parts else "-"


def other(ev: Mapping[str, Any]) -> str:
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
            other(ev),
            str(ev.get("decision") or "-"),
            str(ev.get("run_id") or "-")[:8],
            clip(detail(ev)) or "-",
        ]
        for ev in events
    ]
    return table(["TIME (UTC)", "EVENT", "VERSION", "FROM", "DECISION", "RUN", "DETAIL"], rows)
