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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from model.errors import ComparisonInputError
from model.gate.result import fmt_p
from model.gate.svg import CANDIDATE_COLOR, _figure, _svg_histogram, _svg_lines

RULE = "=" * 60
BASELINE_COLOR = "#7f7f7f"


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
        f"{p['lower_bound']:+.6f}, level = {p['level']:.6g} ({_uses_text(r)})"
    )


def _uses_text(r: Mapping[str, Any]) -> str:
    """Why the decision has its level: fresh rows, or the j-th decision on the same rows."""
    uses = int(r.get("holdout_uses", 1))
    if uses == 1:
        return f"rows no earlier decision used: full alpha {r['significance_level']:g}"
    return f"decision {uses} on these rows: alpha {r['significance_level']:g} * 6/(pi^2 {uses}^2)"


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
        rel = None if not m["baseline"] or imp is None else imp / abs(m["baseline"])
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


def resampling_text(r: Mapping[str, Any]) -> str:
    """``2,000 paired bootstrap resamples, seed 42``; without them (a first version: no
    production model to compare with) it says so rather than "0 resamples"."""
    if not r.get("n_bootstrap"):
        return "no bootstrap: nothing to compare with"
    return f"{r['n_bootstrap']:,} paired bootstrap resamples, seed {r['seed']}"


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
        f"α = {r['significance_level']:g}, {r['n_test']} test rows "
        f"({r.get('decided_on', 'holdout')}), "
        f"{resampling_text(r)}.",
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
.banner{padding:.6em 1em;border-radius:4px;background:#eef4fb;border:1px solid #9cc3e6}
table{border-collapse:collapse;font-size:.92em}td,th{border:1px solid #ccc;padding:.3em .6em;
text-align:left;white-space:nowrap}
td.n{text-align:right;font-variant-numeric:tabular-nums}th{background:#f3f3f3}
tr.regression td{color:#d62728;font-weight:bold}tr.improved td.gain{color:#2ca02c}
.ok{color:#2ca02c}.bad{color:#d62728}.charts{display:flex;flex-wrap:wrap;gap:1em}
figure{margin:0}figcaption{font-size:.85em;color:#555;text-align:center}
"""


def _n(x: float | None, digits: int = 4, sign: bool = False) -> str:
    """A number with ``digits`` decimals, never "-0.0000"; "–" for nothing."""
    if x is None or not math.isfinite(x):
        return "–"
    v = round(x, digits) + 0.0  # + 0.0 turns -0.0 into 0.0
    return format(v, f"{'+' if sign else ''}.{digits}f")


def _p(p: float | None) -> str:
    """A p-value as reports print it: "< 0.001" below the floor, else 3 decimals."""
    if p is None or not math.isfinite(p):
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _identical(r: Mapping[str, Any]) -> bool:
    pops = r.get("populations") or {}
    pop: Mapping[str, Any] = pops.get(r.get("decided_on")) or next(iter(pops.values()), {})
    return bool(pop.get("identical_scores"))


def _metric_rows(r: Mapping[str, Any], first: bool) -> tuple[str, str]:
    esc = html.escape
    if first:
        head = "<tr><th>metric</th><th>candidate</th></tr>"
        rows = [
            f"<tr><td>{esc(m)}</td><td class=n>{_n(row['candidate'])}</td></tr>"
            for m, row in r["metrics"].items()
        ]
        return head, "".join(rows)
    head = (
        "<tr><th>metric</th><th>production</th><th>candidate</th><th>change</th>"
        "<th>improvement</th><th>interval of improvement</th><th>p (one-sided)</th>"
        "<th>verdict</th></tr>"
    )
    rows = []
    for m, row in r["metrics"].items():
        low, high = row.get("ci_low"), row.get("ci_high")
        interval = "–" if low is None else f"[{_n(low, sign=True)}, {_n(high, sign=True)}]"
        if high is not None and high < 0:
            cls, verdict = "regression", "worse (beyond its interval)"
        elif low is not None and low > 0:
            cls, verdict = "improved", "better"
        else:
            cls, verdict = "", "no clear change"
        rows.append(
            f'<tr class="{cls}"><td>{esc(m)}</td><td class=n>{_n(row["baseline"])}</td>'
            f"<td class=n>{_n(row['candidate'])}</td>"
            f"<td class=n>{_n(row['absolute_change'], sign=True)}</td>"
            f'<td class="n gain">{_n(row.get("improvement"), sign=True)}</td>'
            f"<td class=n>{interval}</td><td class=n>{_p(row['p_value'])}</td>"
            f"<td>{verdict}</td></tr>"
        )
    return head, "".join(rows)


def _confusion_html(curves: Mapping[str, Any]) -> str:
    cells = []
    for who in ("baseline", "candidate"):
        c = (curves.get(who) or {}).get("confusion")
        if not c:
            continue
        title = "production" if who == "baseline" else "candidate"
        cells.append(
            f"<table class=confusion><caption>{title}, threshold {c['threshold']:.3f}</caption>"
            "<tr><th></th><th>predicted 1</th><th>predicted 0</th></tr>"
            f"<tr><th>actual 1</th><td class=n>{c['tp']:,}</td><td class=n>{c['fn']:,}</td></tr>"
            f"<tr><th>actual 0</th><td class=n>{c['fp']:,}</td><td class=n>{c['tn']:,}</td></tr>"
            "</table>"
        )
    return '<div class="charts">' + "".join(cells) + "</div>" if cells else ""


def _tests_html(r: Mapping[str, Any]) -> str:
    tests = (to_json(r).get("tests") or {}).items()
    rows = []
    for name, values in tests:
        if not values:
            continue
        shown = []
        for key, value in values.items():
            if isinstance(value, bool) or value is None or isinstance(value, dict | list):
                continue
            if isinstance(value, float):
                text = _p(value) if key.startswith("p") else f"{value:.4g}"
            else:
                text = str(value)
            shown.append(f"{key} {text}")
        rows.append(
            f"<tr><td>{html.escape(name)}</td><td>{html.escape('; '.join(shown))}</td></tr>"
        )
    if not rows:
        return ""
    return "<h2>Tests</h2><table><tr><th>test</th><th>result</th></tr>" + "".join(rows) + "</table>"


def _charts(r: Mapping[str, Any]) -> list[str]:
    name = r["primary_metric"]
    curves = r.get("curves") or {}
    roc, pr, rel = [], [], []
    for who, color in (("baseline", BASELINE_COLOR), ("candidate", CANDIDATE_COLOR)):
        c = curves.get(who)
        if not c:
            continue
        label = "production" if who == "baseline" else "candidate"
        roc.append((f"{label} (AUC {_n(c.get('auc'))})", c["roc"]["fpr"], c["roc"]["tpr"], color))
        pr.append(
            (
                f"{label} (AP {_n(c.get('average_precision'))})",
                c["pr"]["recall"],
                c["pr"]["precision"],
                color,
            )
        )
        if c.get("reliability"):
            rel.append((label, c["reliability"]["mean_score"], c["reliability"]["observed"], color))
    charts = [
        _figure(
            _svg_lines(roc, "false positive rate", "true positive rate", True, name="roc"), "ROC"
        ),
        _figure(
            _svg_lines(pr, "recall", "precision", False, legend_top=False, name="pr"),
            "Precision–recall",
        ),
    ]
    if rel:
        svg = _svg_lines(
            rel,
            "mean predicted probability",
            "observed positive rate",
            True,
            markers=True,
            legend_top=True,
            name="reliability",
        )
        charts.append(_figure(svg, "Reliability (10 bins; on the diagonal = calibrated)"))
    deltas = r.get("bootstrap_deltas") or []
    if deltas:
        improvement = r["metrics"][name]["improvement"]
        svg = _svg_histogram(deltas, r["threshold_absolute"], improvement, f"Δ {name}")
        caption = f"Bootstrap distribution of the {name} improvement"
        if r.get("primary", {}).get("test") != "bootstrap-normal":
            caption += " (illustration; the decision uses the method above)"
        charts.append(_figure(svg, caption))
    return charts


def to_html(result: Any) -> str:
    """A self-contained HTML report: decision, metric table, curves, reliability, confusion
    matrices, tests."""
    r = _as_dict(result)
    esc = html.escape
    name = r["primary_metric"]
    first = not r.get("baseline")
    banner = ""
    if first:
        banner = (
            '<p class="banner" id="first-version">First version: there is no production model '
            "to compare with; the candidate's own metrics and curves are below.</p>"
        )
    elif _identical(r):
        banner = (
            '<p class="banner" id="identical">Identical to production: the candidate scores '
            "every test row exactly as production does.</p>"
        )
    head, rows = _metric_rows(r, first)
    factors = "".join(
        f"<li class={'ok' if f['ok'] else 'bad'}>{'✓' if f['ok'] else '✗'} {esc(f['text'])}</li>"
        for f in r["decision_factors"]
    )
    reasons = "".join(f"<li>{esc(x)}</li>" for x in r["reasons"])
    models = "".join(_model_row(who, r.get(who)) for who in ("baseline", "candidate"))
    line = primary_line(r)
    primary_html = "" if line is None else f"<p><b>Primary test</b>: {esc(line)}</p>"
    pops = _population_lines(r)
    pops_html = (
        "" if len(pops) < 2 else "<ul>" + "".join(f"<li>{esc(x)}</li>" for x in pops) + "</ul>"
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Model comparison: {esc(r["decision"])}</title>
<style>{_CSS}</style></head><body>
<h1>Model comparison <span class="decision {esc(r["decision"])}" id="decision">\
{esc(r["decision"])}</span></h1>
{banner}
<ul>{reasons}</ul>
<p>Primary metric <b>{esc(name)}</b>; guaranteed minimum gain {r["threshold"]:g}
({esc(r["threshold_type"])}, {_n(r["threshold_absolute"])} absolute);
α = {r["significance_level"]:g}; this decision's level {r.get("alpha_k", 0):.3g}
({esc(_uses_text(r))}); guardrails at α; {r["n_test"]:,} test rows
({r.get("n_positive")} positive, {esc(str(r.get("decided_on", "holdout")))} rows);
{esc(resampling_text(r))}.
Created {esc(str(r["created_at"]))}.</p>
{primary_html}
{pops_html}
<table><tr><th></th><th>version</th><th>path</th><th>sha256</th></tr>{models}</table>
<h2>Decision factors</h2><ul>{factors}</ul>
<h2>Metrics</h2>
<table id="metrics">{head}{rows}</table>
<p>Improvement is the change oriented so that positive is better (its sign is flipped for
lower-is-better metrics). Each metric's interval and one-sided p come from one method at the
comparison's level: DeLong for the AUC, the paired mean difference for log loss and Brier,
the paired bootstrap's standard error for the others. The primary metric's p tests
"gain ≤ threshold"; the others' test "gain ≤ 0". A row in red is a regression beyond its
interval.</p>
<h2>Curves</h2><div class="charts">{"".join(_charts(r))}</div>
<h2>Confusion matrices at each model's decision threshold</h2>
{_confusion_html(r.get("curves") or {})}
{_tests_html(r)}
</body></html>
"""


def _model_row(who: str, info: Mapping[str, Any] | None) -> str:
    who = "production" if who == "baseline" else who
    if not info:
        return f"<tr><th>{who}</th><td colspan=3>none (no production model)</td></tr>"
    version, path, sha = (info.get(k) or "–" for k in ("version", "path", "sha256"))
    return (
        f"<tr><th>{who}</th><td>{html.escape(str(version))}</td>"
        f"<td>{html.escape(str(path))}</td><td><code>{html.escape(str(sha)[:16])}</code></td></tr>"
    )


def write_html(result: Any, path: str | Path) -> Path:
    return write_text(path, to_html(result))
