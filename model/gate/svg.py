"""Hand-written SVG charts for the comparison report: lines (ROC, precision-recall, reliability),
the bootstrap histogram. No external URL, script or font: the page stays self-contained."""

from __future__ import annotations

import html
from collections.abc import Sequence

CANDIDATE_COLOR = "#1f77b4"


def _figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{html.escape(caption)}</figcaption></figure>"


_W, _H, _M = 340, 300, 44  # size and margin of a chart


def _sx(x: float, lo: float = 0.0, hi: float = 1.0) -> float:
    return _M + (x - lo) / (hi - lo or 1.0) * (_W - _M - 12)


def _sy(y: float, lo: float = 0.0, hi: float = 1.0) -> float:
    return _H - _M - (y - lo) / (hi - lo or 1.0) * (_H - _M - 12)


def _axes(xlabel: str, ylabel: str, xlo: float = 0.0, xhi: float = 1.0) -> list[str]:
    parts = [
        f'<rect x="{_M}" y="12" width="{_W - _M - 12}" height="{_H - _M - 12}" '
        'fill="none" stroke="#999"/>'
    ]
    for i in range(6):
        fx = xlo + (xhi - xlo) * i / 5
        fy = i / 5
        anchor = "end" if i == 5 else "middle"  # the last tick label stays inside the frame
        parts.append(
            f'<text x="{_sx(fx, xlo, xhi):.1f}" y="{_H - _M + 14}" font-size="10" '
            f'text-anchor="{anchor}">{fx:.2g}</text>'
        )
        if ylabel:
            parts.append(
                f'<text x="{_M - 4}" y="{_sy(fy) + 3:.1f}" font-size="10" '
                f'text-anchor="end">{fy:.1f}</text>'
            )
    parts.append(
        f'<text x="{(_W + _M) / 2:.0f}" y="{_H - 8}" font-size="11" '
        f'text-anchor="middle">{html.escape(xlabel)}</text>'
    )
    if ylabel:
        parts.append(
            f'<text x="12" y="{_H / 2:.0f}" font-size="11" text-anchor="middle" '
            f'transform="rotate(-90 12 {_H / 2:.0f})">{html.escape(ylabel)}</text>'
        )
    return parts


def _svg_lines(
    series: Sequence[tuple[str, Sequence[float], Sequence[float], str]],
    xlabel: str,
    ylabel: str,
    diagonal: bool,
    *,
    markers: bool = False,
    legend_top: bool = False,
    name: str = "",
) -> str:
    """One ``<path class="curve">`` per series (hover: its label), legend inside the frame."""
    parts = _axes(xlabel, ylabel)
    if diagonal:
        parts.append(
            f'<line x1="{_sx(0)}" y1="{_sy(0)}" x2="{_sx(1)}" y2="{_sy(1)}" '
            'stroke="#ccc" stroke-dasharray="4 3"/>'
        )
    for i, (label, xs, ys, color) in enumerate(series):
        pts = [(_sx(x), _sy(y)) for x, y in zip(xs, ys, strict=False)]
        if not pts:
            continue
        d = "M" + " L".join(f"{x:.1f},{y:.1f}" for x, y in pts)
        parts.append(
            f'<path class="curve" d="{d}" fill="none" stroke="{color}" stroke-width="2">'
            f"<title>{html.escape(label)}</title></path>"
        )
        if markers:
            parts += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}"/>' for x, y in pts]
        y_text = 28 + 14 * i if legend_top else _H - _M - 10 - 14 * (len(series) - 1 - i)
        x_text = _M + 8 if legend_top else _W - 20
        anchor = "start" if legend_top else "end"
        parts.append(
            f'<text class="chart-label" x="{x_text}" y="{y_text}" font-size="11" '
            f'text-anchor="{anchor}" fill="{color}">{html.escape(label)}</text>'
        )
    return _svg(parts, name)


def _svg_histogram(
    deltas: Sequence[float], threshold: float, observed: float | None, xlabel: str
) -> str:
    lo = min(min(deltas), 0.0, threshold)
    hi = max(max(deltas), 0.0, threshold)
    pad = (hi - lo) * 0.05 or 0.01
    lo, hi = lo - pad, hi + pad
    bins = 30
    counts = [0] * bins
    for d in deltas:
        counts[min(bins - 1, int((d - lo) / (hi - lo) * bins))] += 1
    top = max(counts) or 1
    parts = _axes(xlabel, "", lo, hi)
    width = (_W - _M - 12) / bins
    for i, c in enumerate(counts):
        h = c / top * (_H - _M - 24)
        parts.append(
            f'<rect x="{_M + i * width:.1f}" y="{_H - _M - h:.1f}" width="{width - 1:.1f}" '
            f'height="{h:.1f}" fill="{CANDIDATE_COLOR}" opacity="0.6"/>'
        )
    marks = [(0.0, "#555", "0"), (threshold, "#d62728", "threshold")]
    if observed is not None:
        marks.append((observed, "#2ca02c", "observed"))
    for i, (x, color, label) in enumerate(marks):
        px = _sx(x, lo, hi)
        right = px > (_W + _M) / 2  # labels in the right half grow leftwards: never clipped
        anchor, dx = ("end", -3) if right else ("start", 3)
        parts.append(
            f'<line x1="{px:.1f}" y1="12" x2="{px:.1f}" y2="{_H - _M}" '
            f'stroke="{color}" stroke-width="2" stroke-dasharray="5 3"/>'
            f'<text class="chart-label" x="{px + dx:.1f}" y="{24 + 12 * i}" font-size="10" '
            f'text-anchor="{anchor}" fill="{color}">{label}</text>'
        )
    return _svg(parts, "bootstrap")


def _svg(parts: list[str], name: str = "") -> str:
    label = f' aria-label="{html.escape(name)}" data-chart="{html.escape(name)}"' if name else ""
    return (
        f'<svg width="{_W}" height="{_H}" viewBox="0 0 {_W} {_H}" role="img"{label}>'
        f"{''.join(parts)}</svg>"
    )
