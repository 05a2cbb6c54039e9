"""Drift report renderings: table rows, Markdown and a self-contained HTML page.

Pure functions of a :class:`~model.drift.results.DriftReport` (no files: see
:mod:`model.drift.files`).
"""

from __future__ import annotations

import html
import itertools
import math
from typing import TYPE_CHECKING, Any

from model.drift.cbpe_render import estimate_html, estimate_markdown

if TYPE_CHECKING:
    from model.drift.results import DriftReport, FeatureDrift


def _fmt(x: float | None, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if x != 0 and abs(x) < 10**-digits:
        return f"{x:.1e}"
    return f"{x:.{digits}f}"


def _num(x: float, digits: int) -> float | None:
    return None if math.isnan(x) else round(x, digits)


def _sig(x: float) -> float | None:
    return None if math.isnan(x) else float(f"{x:.3g}")


def _rule(report: DriftReport) -> str:
    """The data set rule in words."""
    s = report.settings
    rule = f"drift share ≥ {s.dataset_drift_threshold:.2f}"
    if s.min_drifted_features is not None:
        rule += f" or at least {s.min_drifted_features} drifted features"
    return rule


def _schema_lines(report: DriftReport) -> list[str]:
    """One line per schema change, and the ignored extra columns."""
    words = {"missing": "missing from", "all_missing": "only missing values in"}
    lines = [
        f"- {name}: {words[f.schema_change]} {', '.join(f.schema_batches) or 'the current data'}"
        for name, f in report.features.items()
        if f.schema_change
    ]
    extra = report.current.get("extra_columns") or []
    if extra:
        lines.append(f"- ignored (not in the reference): {', '.join(map(str, extra))}")
    return lines


def _rows(report: DriftReport) -> list[FeatureDrift]:
    extra = [f for f in (report.prediction, report.target) if f is not None]
    return [*report.features.values(), *extra]


def table_rows(report: DriftReport) -> list[dict[str, Any]]:
    """One flat row per column (features, then prediction and target) for table artifacts."""
    rows = []
    for f in _rows(report):
        role = "feature" if f.name in report.features else f.name
        if f is report.target:
            role = "target"
        rows.append(
            {
                "column": f.name,
                "role": role,
                "kind": f.kind,
                "test": f.test,
                "statistic": _num(f.statistic, 4),
                "p_value": _sig(f.p_value),
                "p_adjusted": _sig(f.p_value_adjusted),
                "psi": _num(f.psi, 4),
                "distance": _num(f.distance, 4),
                "drifted": f.drifted,
                "schema_change": f.schema_change,
            }
        )
    return rows


def _streamed(report: DriftReport) -> str:
    """A sentence when the data was read in batches rather than whole."""
    streamed = report.current.get("streamed")
    if not streamed:
        return ""
    return (
        f" Read in batches within a memory budget of {streamed['memory_budget'] >> 20:,} MiB "
        f"(read whole it would take about {streamed['in_memory_estimate'] / 2**30:.1f} GiB)."
    )


def to_markdown(report: DriftReport) -> str:
    s = report.settings
    verdict = "**Dataset drift detected**" if report.dataset_drift else "No dataset drift"
    lines = [
        "# Drift report",
        "",
        f"{verdict}: {len(report.drifted_features)} of {len(report.features)} features drifted "
        f"(drift share {report.drift_share:.2f}; dataset rule: {_rule(report)}).",
        "",
        f"Reference: {', '.join(report.reference['paths']) or 'in memory'} "
        f"({report.reference['rows']:,} rows). "
        f"Current: {', '.join(report.current['paths']) or 'in memory'} "
        f"({report.current['rows']:,} rows).{_streamed(report)}",
        "",
        f"Rule: {s.correction}-corrected p < {s.alpha} and (PSI ≥ {s.psi_threshold} or "
        f"distance ≥ {s.distance_threshold}); a schema change (feature missing or all "
        "missing) is drift of the feature.",
        "",
        "| Column | Kind | Test | Statistic | p (adj.) | PSI | Distance | Drifted |",
        "|---|---|---|---:|---:|---:|---:|:---:|",
    ]
    for f in _rows(report):
        name = f.name if f.name in report.features else f"*{f.name}*"
        dist = f"{_fmt(f.distance)} ({'W1/std' if f.kind == 'numeric' else 'JS'})"
        p_adj = f.p_value if math.isnan(f.p_value_adjusted) else f.p_value_adjusted
        mark = "**yes**" if f.drifted else "no"
        if f.schema_change:
            mark = f"**yes** (schema: {f.schema_change.replace('_', ' ')})"
        lines.append(
            f"| {name} | {f.kind} | {f.test} | {_fmt(f.statistic)} | {_fmt(p_adj)} | "
            f"{_fmt(f.psi)} | {dist} | {mark} |"
        )
    schema = _schema_lines(report)
    if schema:
        lines += ["", "Schema changes:", *schema]
    unseen = [f for f in report.features.values() if f.unseen_levels]
    if unseen:
        lines += ["", "Levels unseen in the reference:"]
        lines += [
            f"- {f.name}: {f.unseen_levels} ({f.unseen_share:.1%} of rows), e.g. "
            f"{', '.join(f.unseen_examples)}"
            for f in unseen
        ]
    if report.prediction is not None or report.target is not None:
        lines += ["", "*prediction* and *target* rows do not count towards the drift share."]
    return "\n".join(lines) + "\n" + estimate_markdown(report.performance_estimate)


def _bin_labels(h: dict[str, list[Any]]) -> list[str]:
    """A label per bin: the level, or the value range "[a, b)" of a numeric bin."""
    if h.get("levels"):
        return [str(v) for v in h["levels"]]
    edges = h.get("edges", [])
    return [f"[{_fmt(a, 3)}, {_fmt(b, 3)})" for a, b in itertools.pairwise(edges)]


def _svg_bars(f: FeatureDrift, width: int = 520, height: int = 170) -> str:
    """Reference vs current share of rows per bin: a y axis in %, each bar's range or level on
    hover (SVG ``<title>``), the first and last range under the x axis."""
    h = f.histogram
    ref, cur = h.get("reference", []), h.get("current", [])
    if not ref:
        return ""
    labels = _bin_labels(h)
    k = len(ref)
    top = max(max(ref), max(cur), 1e-12)
    left, right, pad = 48, 10, 10  # pad: room above the top tick label
    slot = (width - left - right) / k
    bar = max(slot / 2 - 1, 1)
    name = html.escape(f.name)
    parts = [
        f'<svg width="{width}" height="{height + 34 + pad}" role="img" data-chart="{name}" '
        f'aria-label="{name}: reference vs current"><g transform="translate(0 {pad})">'
    ]
    for t in range(5):  # the y axis: share of rows
        v = top * t / 4
        y = height - height * t / 4
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#eee"/>'
            f'<text class="chart-label" x="{left - 4}" y="{y + 3:.1f}" font-size="10" '
            f'text-anchor="end">{100 * v:.0f}%</text>'
        )
    for i in range(k):
        x = left + i * slot
        for j, (val, color) in enumerate(((ref[i], "#4c78a8"), (cur[i], "#f58518"))):
            bh = height * val / top
            side = "reference" if j == 0 else "current"
            parts.append(
                f'<rect x="{x + j * bar:.1f}" y="{height - bh:.1f}" width="{bar:.1f}" '
                f'height="{bh:.1f}" fill="{color}"><title>{html.escape(labels[i])}: '
                f"{side} {100 * val:.1f}% of rows</title></rect>"
            )
    parts.append(
        f'<line x1="{left}" y1="{height}" x2="{width - right}" y2="{height}" stroke="#333"/>'
        f'<line x1="{left}" y1="0" x2="{left}" y2="{height}" stroke="#333"/>'
    )
    first, last = html.escape(labels[0]), html.escape(labels[-1])
    parts.append(
        f'<text class="chart-label" x="{left}" y="{height + 15}" font-size="10">{first}</text>'
        f'<text class="chart-label" x="{width - right}" y="{height + 15}" font-size="10" '
        f'text-anchor="end">{last}</text>'
        f'<text x="{(width + left) / 2:.0f}" y="{height + 30}" font-size="11" '
        f'text-anchor="middle">{name}</text>'
    )
    parts.append("</g></svg>")
    return "".join(parts)


NAMED_CELLS = frozenset({"column", "role"})
"""Cells that hold a name from the data (``credit_score``): written as they are."""


def _cell(value: Any, key: str = "") -> str:
    """A table cell as people write it: yes/no, an empty cell for nothing, ``schema-change``
    for the report's own words; a column's name exactly as the data spells it."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return ""
    if isinstance(value, str):
        return value if key in NAMED_CELLS else value.replace("_", "-")
    return str(value)


def to_html(report: DriftReport) -> str:
    """A self-contained page: summary table and histograms of the drifted columns."""
    rows = []
    for r in table_rows(report):
        cls = ' class="drift"' if r["drifted"] else ""
        cells = "".join(
            f"<td{' class=n' if isinstance(v, int | float) and not isinstance(v, bool) else ''}>"
            f"{html.escape(_cell(v, k))}</td>"
            for k, v in r.items()
        )
        rows.append(f"<tr{cls}>{cells}</tr>")
    head = "".join(f"<th>{html.escape(k)}</th>" for k in table_rows(report)[0])
    drifted = [f for f in _rows(report) if f.drifted]
    charts = "".join(
        f"<section><h3>{html.escape(f.name)} ({f.kind}, PSI {_fmt(f.psi)}, "
        f"distance {_fmt(f.distance)})</h3>{_svg_bars(f)}</section>"
        for f in drifted
    )
    verdict = "Dataset drift detected" if report.dataset_drift else "No dataset drift"
    schema_items = "".join(f"<li>{html.escape(line[2:])}</li>" for line in _schema_lines(report))
    schema = f"<p>Schema changes:</p><ul>{schema_items}</ul>" if schema_items else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Drift report</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2em;color:#222}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left;
white-space:nowrap}}td.n{{text-align:right;font-variant-numeric:tabular-nums}}
tr.drift{{background:#fde2e1}}.legend span{{display:inline-block;width:12px;height:12px}}
</style></head><body>
<h1>Drift report</h1>
<p id="decision"><strong>{verdict}</strong>: {len(report.drifted_features)} of
{len(report.features)} features drifted (share {report.drift_share:.2f}; dataset rule:
{html.escape(_rule(report))}). Created {html.escape(report.created_at)}.</p>
{schema}
<p>Reference: {html.escape(_where(report.reference))};
current: {html.escape(_where(report.current))}.{html.escape(_streamed(report))}</p>
<p>Rule: a feature drifts when its {html.escape(report.settings.correction)}-corrected p-value is
below {report.settings.alpha:g} and (PSI ≥ {report.settings.psi_threshold:g} or distance ≥
{report.settings.distance_threshold:g}); distance is Wasserstein / std for numeric columns,
Jensen–Shannon for categorical ones; a feature missing or all missing in the current data
is a schema change, counted as drifted. Prediction and target rows do not count towards the
drift share.</p>
<table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>
<h2>Drifted columns</h2>
<p class="legend"><span style="background:#4c78a8"></span> reference
<span style="background:#f58518"></span> current (share of rows per bin)</p>
{charts or "<p>None.</p>"}
{estimate_html(report.performance_estimate)}</body></html>
"""


def _where(side: dict[str, Any]) -> str:
    """``path, path (1,234 rows)`` for the reference or current side of a report."""
    paths = ", ".join(side.get("paths") or []) or "in memory"
    return f"{paths} ({side['rows']:,} rows)"
