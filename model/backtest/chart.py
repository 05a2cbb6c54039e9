"""The backtest's chart: production's prequential AUC on each batch, one line per policy, with
each decision marked where it was taken. Hand-written SVG (no script, font or URL), so the
report stays one offline file.

A decision taken when batch *i* arrived is marked on that batch's point: the AUC there was
measured before it, and the next batch is the first one the new production serves. Every
line is ``path.policy-line`` (``data-policy``), every mark ``.marker`` (``data-kind``), each
with a ``<title>`` that says what it is.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

COLORS = ("#1f77b4", "#7f7f7f", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf")
BY_KIND = {"configured": "#1f77b4", "never": "#7f7f7f", "always": "#d62728"}
MARKS = {
    "promoted": "promoted by the gate",
    "live-promoted": "promoted on live labels (challenger)",
    "forced": "forced into production",
    "rejected": "rejected by the gate",
    "inconclusive": "inconclusive (shadow challenger)",
    "rolled-back": "rolled back by the watch",
    "failed": "cycle failed",
}
"""Every kind of mark, as the legend names it."""

WIDTH, HEIGHT = 960, 380
LEFT, RIGHT, TOP, BOTTOM = 58, 18, 16, 58


def colors(policies: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """A colour per policy: the baselines' own, then the variants' in turn."""
    spare = iter(c for c in COLORS if c not in BY_KIND.values())
    return {p["name"]: BY_KIND.get(p["kind"]) or next(spare, "#333") for p in policies}


def step_marks(step: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The marks of one step: ``(kind, text)`` for each decision taken when it arrived."""
    marks: list[tuple[str, str]] = []
    live = step.get("live") or {}
    challenger = live.get("challenger") or {}
    if challenger.get("status") == "looked" and challenger.get("decision") == "PROMOTE":
        marks.append(("live-promoted", f"challenger {challenger.get('candidate_version')}"))
    watch = live.get("watch") or {}
    if watch.get("restored"):
        marks.append(("rolled-back", f"rolled back to {watch['restored']}"))
    cycle = step.get("cycle") or {}
    status = cycle.get("status")
    candidate = cycle.get("candidate") or ""
    trigger = f" ({cycle.get('trigger')})" if cycle.get("trigger") else ""
    if cycle.get("forced"):
        marks.append(("forced", f"{candidate} forced{trigger}"))
    elif status in ("promoted", "rejected", "inconclusive"):
        marks.append((status, f"{candidate} {status}{trigger}"))
    elif status == "failed":
        marks.append(("failed", "; ".join(cycle.get("reasons") or [])[:120]))
    return marks


def _mark(kind: str, x: float, y: float, color: str, title: str, cls: str = "marker") -> str:
    """One mark's shape: filled up-triangle (promoted), star-like diamond (live), square
    (forced), cross (rejected), hollow circle (inconclusive), down-triangle (rolled back)."""
    t = f"<title>{html.escape(title)}</title>"
    attrs = f'class="{cls}" data-kind="{kind}"'
    if kind == "promoted":
        pts = f"{x:.1f},{y - 8:.1f} {x - 7:.1f},{y + 5:.1f} {x + 7:.1f},{y + 5:.1f}"
        return f'<polygon {attrs} points="{pts}" fill="{color}" stroke="#fff">{t}</polygon>'
    if kind == "rolled-back":
        pts = f"{x:.1f},{y + 8:.1f} {x - 7:.1f},{y - 5:.1f} {x + 7:.1f},{y - 5:.1f}"
        return f'<polygon {attrs} points="{pts}" fill="#000" stroke="{color}">{t}</polygon>'
    if kind == "live-promoted":
        pts = f"{x:.1f},{y - 8:.1f} {x + 6:.1f},{y:.1f} {x:.1f},{y + 8:.1f} {x - 6:.1f},{y:.1f}"
        return f'<polygon {attrs} points="{pts}" fill="{color}" stroke="#000">{t}</polygon>'
    if kind == "forced":
        return (
            f'<rect {attrs} x="{x - 4.5:.1f}" y="{y - 4.5:.1f}" width="9" height="9" '
            f'fill="{color}" stroke="#fff">{t}</rect>'
        )
    if kind in ("rejected", "failed"):
        d = f"M{x - 5:.1f},{y - 5:.1f} L{x + 5:.1f},{y + 5:.1f} M{x - 5:.1f},{y + 5:.1f} "
        d += f"L{x + 5:.1f},{y - 5:.1f}"
        stroke = "#000" if kind == "failed" else color
        return f'<path {attrs} d="{d}" stroke="{stroke}" stroke-width="2.5">{t}</path>'
    return (
        f'<circle {attrs} cx="{x:.1f}" cy="{y:.1f}" r="6" fill="#fff" stroke="{color}" '
        f'stroke-width="2">{t}</circle>'
    )


def _range(values: Sequence[float]) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    pad = max(0.01, (hi - lo) * 0.08)
    return max(0.0, lo - pad), min(1.0, hi + pad)


def auc_chart(result: Mapping[str, Any]) -> str:
    """The chart as an ``<svg>`` element (``data-chart="auc"``)."""
    batches = result["timeline"]["batches"]
    policies = result["policies"]
    palette = colors(policies)
    values = [s["auc"] for p in policies for s in p["steps"] if _finite(s.get("auc"))]
    lo, hi = _range(values) if values else (0.5, 1.0)
    n = max(1, len(batches) - 1)
    inner_w, inner_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def sx(i: int) -> float:
        return LEFT + 14 + (inner_w - 28) * (i / n if len(batches) > 1 else 0.5)

    def sy(v: float) -> float:
        return TOP + inner_h * (1 - (v - lo) / (hi - lo or 1.0))

    parts = [
        f'<rect x="{LEFT}" y="{TOP}" width="{inner_w}" height="{inner_h}" fill="none" '
        'stroke="#999"/>'
    ]
    for k in range(6):
        v = lo + (hi - lo) * k / 5
        y = sy(v)
        parts.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="#eee"/>'
            f'<text x="{LEFT - 5}" y="{y + 3.5:.1f}" font-size="10" text-anchor="end">'
            f"{v:.3f}</text>"
        )
    every = max(1, math.ceil(len(batches) / 16))  # at most 16 date labels
    for i, b in enumerate(batches):
        if i % every:
            continue
        label = html.escape(b["name"].removeprefix("date="))
        parts.append(
            f'<text x="{sx(i):.1f}" y="{HEIGHT - BOTTOM + 16}" font-size="10" '
            f'text-anchor="middle">{label}</text>'
        )
    parts.append(
        f'<text x="{LEFT + inner_w / 2:.0f}" y="{HEIGHT - 12}" font-size="11" '
        'text-anchor="middle">batch (period start); its AUC is measured before any model '
        "trained on it</text>"
        f'<text x="14" y="{TOP + inner_h / 2:.0f}" font-size="11" text-anchor="middle" '
        f'transform="rotate(-90 14 {TOP + inner_h / 2:.0f})">production AUC</text>'
    )
    widths = _widths(len(policies))
    for p, width in zip(policies, widths, strict=True):
        color = palette[p["name"]]
        pts = [(sx(i), sy(s["auc"])) for i, s in enumerate(p["steps"]) if _finite(s.get("auc"))]
        if not pts:
            continue
        d = "M" + " L".join(f"{x:.1f},{y:.1f}" for x, y in pts)
        name = html.escape(p["name"])
        dash = ' stroke-dasharray="6 4"' if p["kind"] == "never" else ""
        parts.append(
            f'<path class="policy-line" data-policy="{name}" d="{d}" fill="none" '
            f'stroke="{color}" stroke-width="{width:g}" stroke-opacity="0.85"{dash}>'
            f"<title>{name}</title></path>"
        )
        parts += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{color}"/>' for x, y in pts]
    for k, p in enumerate(policies):
        color = palette[p["name"]]
        shift = (k - (len(policies) - 1) / 2) * 5  # policies with the same AUC: marks side by side
        for i, s in enumerate(p["steps"]):
            if not _finite(s.get("auc")):
                continue
            for kind, text in step_marks(s):
                title = f"{p['name']}, {s['batch']}: {MARKS[kind]}: {text}"
                parts.append(_mark(kind, sx(i) + shift, sy(s["auc"]), color, title))
    return (
        f'<svg width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="production AUC per batch and policy" data-chart="auc">'
        f"{''.join(parts)}</svg>"
    )


def _widths(n: int) -> list[float]:
    """Line widths, widest first: a policy drawn over another with the same AUCs leaves the
    one below visible around it."""
    return [2.0 + 1.5 * (n - 1 - k) for k in range(n)]


def legend_mark(kind: str) -> str:
    """A small stand-alone SVG of a mark, for the legend."""
    return (
        f'<svg width="18" height="18" viewBox="0 0 18 18" aria-hidden="true">'
        f"{_mark(kind, 9, 9, '#444', MARKS[kind], 'legend-mark')}</svg>"
    )


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and math.isfinite(v)
