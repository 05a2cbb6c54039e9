"""Renderings of a model comparison: text (the lab's layout), JSON, Markdown, HTML.

Every function takes a :class:`model.gate.comparator.ComparisonResult` or its dict form
(``result.to_dict()``, i.e. a loaded JSON report), so reports can be rebuilt from JSON.
The HTML report is self-contained: inline CSS and hand-written SVG, no external URL.
"""

from __future__ import annotations

import contextlib
import html
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from model.errors import ComparisonInputError
from model.gate.result import fmt_p

RULE = "=" * 60
BASELINE_COLOR = "#7f7f7f"
CANDIDATE_COLOR = "#1f77b4"


def _as_dict(result: Any) -> Mapping[str, Any]:
    return result if isinstance(result, Mapping) else result.to_dict()


def _num(x: float | None, fmt: str = ".4f") -> str:
    return "n/a" if x is None or not math.isfinite(x) else format(x, fmt)


def _pct(x: float | None) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{100 * x:+.2f}%"


def primary_line(r: Mapping[str, Any]) -> str | None:
    """The decision's own numbers in one line (identical in every rendering), or None when
    there was nothing to test (no production model)."""
    p = r.get("primary") or {}
    if p.get("p_value") is None or p.get("lower_bound") is None:
        return None
    rows = "" if p.get("population") in (None, "holdout") else " on the recent rows"
    return (
        f"{p['method']}{rows}: one-sided p = {p['p_value']:.6g} (H0: gain <= "
        f"{p.get('null_value', p['threshold']):.6g}), {100 * p['confidence']:.2f}% interval "
        f"[{p['lower_bound']:+.6f}, {p['upper_bound']:+.6f}], lower bound "
        f"{p['lower_bound']:+.6f}, alpha_k = {p['level']:.6g} (comparison "
        f"{r.get('holdout_uses', 1)}, family budget {r['significance_level']:g})"
    )


def _population_lines(r: Mapping[str, Any]) -> list[str]:
    """One line per population: the primary metric's gain and interval there."""
    out = []
    name = r["primary_metric"]
    for pop in (r.get("populations") or {}).values():
        m = pop["metrics"][name]
        if m.get("ci_low") is None:
            continue
        chosen = " (decision)" if pop["name"] == r.get("decided_on") else ""
        out.append(
            f"{pop['name']}{chosen}: {pop['n']} rows ({pop['n_positive']} positive), "
            f"{name} {_num(m['baseline'])} → {_num(m['candidate'])}, gain "
            f"{_num(m['improvement'], '+.4f')} [{_num(m['ci_low'], '+.4f')}, "
            f"{_num(m['ci_high'], '+.4f')}]"
        )
    return out


# ---------------------------------------------------------------------------- text


def to_text(result: Any) -> str:
    """The lab's text report."""
    r = _as_dict(result)
    name = r["primary_metric"]
    m = r["metrics"][name]
    lines = [RULE, "MODEL COMPARISON RESULTS", RULE, f"Primary Metric: {name.upper()}"]
    if r["baseline"] is None:
        lines += [
            "Baseline: none (no production model)",
            f"New Model: {_num(m['candidate'])}",
            "Improvement: n/a",
        ]
    else:
        imp = m["improvement"]
        rel = None if not m["baseline"] else imp / abs(m["baseline"])
        lines += [
            f"Baseline: {_num(m['baseline'])}",
            f"New Model: {_num(m['candidate'])}",
            f"Improvement: {_num(imp, '+.4f')} ({_pct(rel)})",
        ]
    line = primary_line(r)
    if line:
        lines.append(f"Primary test: {line}")
    pops = _population_lines(r)
    if len(pops) > 1:
        lines += ["", "Populations:", *[f"  {x}" for x in pops]]
    lines += ["", "All Metrics:"]
    for metric, row in r["metrics"].items():
        if row["baseline"] is None:
            lines.append(f"  {metric}: {_num(row['candidate'])}")
        else:
            lines.append(
                f"  {metric}: {_num(row['baseline'])} → {_num(row['candidate'])} "
                f"({_pct(row['relative_change'])})"
            )
    lines += ["", "Decision Factors:"]
    for factor in r["decision_factors"]:
        lines.append(f"  {'✓' if factor['ok'] else '✗'} {factor['text']}")
    lines += [
        RULE,
        f"PROMOTION DECISION: {r['decision']}",
        f"Reason: {'; '.join(r['reasons'])}",
        RULE,
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- JSON


def to_json(result: Any) -> dict[str, Any]:
    """The JSON report as a plain dict (non-finite numbers become null)."""
    return _clean(dict(_as_dict(result)))


def _clean(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):  # numpy scalar
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(result: Any, path: str | Path) -> Path:
    return write_text(path, json.dumps(to_json(result), indent=2, allow_nan=False) + "\n")


def write_text(path: str | Path, text: str) -> Path:
    """Write a report atomically (temporary file in the same folder, then rename); a path
    that cannot be written is a :class:`ComparisonInputError` naming it, with nothing left."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        reason = exc.strerror or type(exc).__name__
        raise ComparisonInputError(f"cannot write the report {str(target)!r}: {reason}") from exc
    return target


# ---------------------------------------------------------------------------- Markdown


def to_markdown(result: Any) -> str:
    """A compact Markdown summary (for Prefect artifacts)."""
    r = _as_dict(result)
    name = r["primary_metric"]
    out = [
        f"## Model comparison: **{r['decision']}**",
        "",
        *[f"- {reason}" for reason in r["reasons"]],
        "",
        f"Primary metric **{name}**, threshold {r['threshold']:g} ({r['threshold_type']}), "
        f"family budget α = {r['significance_level']:g}, {r['n_test']} test rows "
        f"({r.get('decided_on', 'holdout')}), "
        f"{r['n_bootstrap']} bootstrap resamples (seed {r['seed']}).",
        "",
    ]
    line = primary_line(r)
    if line:
        out += [f"**Primary test**: {line}", ""]
    pops = _population_lines(r)
    if len(pops) > 1:
        out += [*[f"- {x}" for x in pops], ""]
    conf = r.get("confidence")
    level = "interval" if conf is None else f"{100 * conf:.1f}% interval"
    out += [
        f"| metric | baseline | candidate | change | improvement | {level} of improvement "
        "| p (one-sided) |",
        "|---|---:|---:|---:|---:|---|---:|",
    ]
    for metric, row in r["metrics"].items():
        ci = (
            "n/a"
            if row["ci_low"] is None
            else f"[{_num(row['ci_low'], '+.4f')}, {_num(row['ci_high'], '+.4f')}]"
        )
        change = _num(row["absolute_change"], "+.4f")
        gain = _num(row.get("improvement"), "+.4f")
        out.append(
            f"| {metric} | {_num(row['baseline'])} | {_num(row['candidate'])} | {change} "
            f"| {gain} | {ci} | {fmt_p(row['p_value'])} |"
        )
    out += ["", "Decision factors:", ""]
    out += [f"- {'✓' if f['ok'] else '✗'} {f['text']}" for f in r["decision_factors"]]
    needed = r.get("samples_needed")
    if needed is not None:
        out += ["", f"Rows that would decide at the observed effect: about {needed:,}"]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------- HTML

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em}
.decision{display:inline-block;padding:.3em .8em;border-radius:4px;color:#fff;font-weight:bold}
.PROMOTE{background:#2ca02c}.REJECT{background:#d62728}.INCONCLUSIVE{background:#ff7f0e}
table{border-collapse:collapse;font-size:.92em}td,th{border:1px solid #ccc;padding:.3em .6em}
td.n{text-align:right;font-variant-numeric:tabular-nums}th{background:#f3f3f3}
.ok{color:#2ca02c}.bad{color:#d62728}.charts{display:flex;flex-wrap:wrap;gap:1em}
figure{margin:0}figcaption{font-size:.85em;color:#555;text-align:center}
"""


def to_html(result: Any) -> str:
    """A self-contained HTML report: decision, metric table, curves, bootstrap histogram."""
    r = _as_dict(result)
    esc = html.escape
    name = r["primary_metric"]
    curves = r.get("curves") or {}
    roc_series, pr_series = [], []
    for who, color in (("baseline", BASELINE_COLOR), ("candidate", CANDIDATE_COLOR)):
        c = curves.get(who)
        if c:
            roc_series.append((who, c["roc"]["fpr"], c["roc"]["tpr"], color))
            pr_series.append((who, c["pr"]["recall"], c["pr"]["precision"], color))
    charts = [
        _figure(_svg_lines(roc_series, "false positive rate", "true positive rate", True), "ROC"),
        _figure(_svg_lines(pr_series, "recall", "precision", False), "Precision–recall"),
    ]
    deltas = r.get("bootstrap_deltas") or []
    if deltas:
        improvement = r["metrics"][name]["improvement"]
        svg = _svg_histogram(deltas, r["threshold_absolute"], improvement, f"Δ {name}")
        caption = f"Bootstrap distribution of the {name} improvement"
        if r.get("primary", {}).get("test") != "bootstrap-normal":
            caption += " (for illustration; the decision uses the method above)"
        charts.append(_figure(svg, caption))
    rows = []
    for metric, row in r["metrics"].items():
        ci = (
            ""
            if row["ci_low"] is None
            else f"[{_num(row['ci_low'], '+.4f')}, {_num(row['ci_high'], '+.4f')}]"
        )
        rows.append(
            f"<tr><td>{esc(metric)}</td><td class=n>{_num(row['baseline'])}</td>"
            f"<td class=n>{_num(row['candidate'])}</td>"
            f"<td class=n>{_num(row['absolute_change'], '+.4f')}</td>"
            f"<td class=n>{_pct(row['relative_change'])}</td>"
            f"<td class=n>{_num(row.get('improvement'), '+.4f')}</td><td class=n>{ci}</td>"
            f"<td class=n>{fmt_p(row['p_value'])}</td>"
            f"<td>{'higher' if row['higher_is_better'] else 'lower'}</td></tr>"
        )
    factors = "".join(
        f"<li class={'ok' if f['ok'] else 'bad'}>{'✓' if f['ok'] else '✗'} {esc(f['text'])}</li>"
        for f in r["decision_factors"]
    )
    reasons = "".join(f"<li>{esc(x)}</li>" for x in r["reasons"])
    models = "".join(_model_row(who, r.get(who)) for who in ("baseline", "candidate"))
    tests = esc(json.dumps(to_json(r).get("tests"), indent=2))
    line = primary_line(r)
    primary_html = "" if line is None else f"<p><b>Primary test</b>: {esc(line)}</p>"
    pops = _population_lines(r)
    pops_html = (
        "" if len(pops) < 2 else "<ul>" + "".join(f"<li>{esc(x)}</li>" for x in pops) + "</ul>"
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Model comparison: {esc(r["decision"])}</title>
<style>{_CSS}</style></head><body>
<h1>Model comparison <span class="decision {esc(r["decision"])}">{esc(r["decision"])}</span></h1>
<ul>{reasons}</ul>
<p>Primary metric <b>{esc(name)}</b>; guaranteed minimum gain {r["threshold"]:g}
({esc(r["threshold_type"])}, {_num(r["threshold_absolute"])} absolute);
family error budget α = {r["significance_level"]:g}, this is comparison
{r.get("holdout_uses", 1)} (α<sub>k</sub> = {r.get("alpha_k", 0):.3g}); {r["n_test"]} test rows
({r.get("n_positive")} positive, {esc(str(r.get("decided_on", "holdout")))} rows);
{r["n_bootstrap"]} paired bootstrap resamples, seed {r["seed"]}.
Created {esc(str(r["created_at"]))}.</p>
{primary_html}
{pops_html}
<table><tr><th></th><th>version</th><th>path</th><th>sha256</th></tr>{models}</table>
<h2>Decision factors</h2><ul>{factors}</ul>
<h2>Metrics</h2>
<table><tr><th>metric</th><th>baseline</th><th>candidate</th><th>change</th><th>relative</th>
<th>improvement</th><th>CI of improvement</th><th>p (one-sided)</th><th>better</th></tr>
{"".join(rows)}</table>
<p>Improvement is the change oriented so that positive is better (its sign is flipped for
lower-is-better metrics). Each metric's interval and one-sided p come from one method at the
comparison's level: DeLong for the AUC, the paired mean difference for log loss and Brier,
the paired bootstrap's standard error for the others. The primary metric's p tests
"gain ≤ threshold"; the others' test "gain ≤ 0".</p>
<h2>Curves</h2><div class="charts">{"".join(charts)}</div>
<h2>Tests</h2><pre>{tests}</pre>
</body></html>
"""


def _model_row(who: str, info: Mapping[str, Any] | None) -> str:
    if not info:
        return f"<tr><th>{who}</th><td colspan=3>none (no production model)</td></tr>"
    version, path, sha = (info.get(k) or "–" for k in ("version", "path", "sha256"))
    return (
        f"<tr><th>{who}</th><td>{html.escape(str(version))}</td>"
        f"<td>{html.escape(str(path))}</td><td><code>{html.escape(str(sha)[:16])}</code></td></tr>"
    )


def write_html(result: Any, path: str | Path) -> Path:
    return write_text(path, to_html(result))


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
        parts.append(
            f'<text x="{_sx(fx, xlo, xhi):.1f}" y="{_H - _M + 14}" font-size="10" '
            f'text-anchor="middle">{fx:.2g}</text>'
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
) -> str:
    parts = _axes(xlabel, ylabel)
    if diagonal:
        parts.append(
            f'<line x1="{_sx(0)}" y1="{_sy(0)}" x2="{_sx(1)}" y2="{_sy(1)}" '
            'stroke="#ccc" stroke-dasharray="4 3"/>'
        )
    for i, (label, xs, ys, color) in enumerate(series):
        points = " ".join(f"{_sx(x):.1f},{_sy(y):.1f}" for x, y in zip(xs, ys, strict=False))
        parts.append(f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="2"/>')
        parts.append(
            f'<text x="{_W - 20}" y="{_H - _M - 10 - 14 * i}" font-size="11" '
            f'text-anchor="end" fill="{color}">{html.escape(label)}</text>'
        )
    return _svg(parts)


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
        parts.append(
            f'<line x1="{_sx(x, lo, hi):.1f}" y1="12" x2="{_sx(x, lo, hi):.1f}" y2="{_H - _M}" '
            f'stroke="{color}" stroke-width="2" stroke-dasharray="5 3"/>'
            f'<text x="{_sx(x, lo, hi) + 3:.1f}" y="{24 + 12 * i}" font-size="10" '
            f'fill="{color}">{label}</text>'
        )
    return _svg(parts)


def _svg(parts: list[str]) -> str:
    return (
        f'<svg width="{_W}" height="{_H}" viewBox="0 0 {_W} {_H}" role="img">{"".join(parts)}</svg>'
    )
