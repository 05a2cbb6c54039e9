"""Reports of a live sequential test (challenger evaluation or post-promotion watch).

Text, JSON, Markdown (Prefect artifacts) and a self-contained HTML page, from the outcome's
dict form (``LiveOutcome.to_dict()`` in :mod:`model.live.outcome`: ``kind``, ``decision``,
``reasons``, versions, ``state`` with ``plan`` and ``looks``). Files are written atomically
with :func:`model.gate.report.write_text`, JSON cleaned by :func:`model.gate.report.to_json`,
as the comparator's reports are.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from model.gate.report import _CSS, to_json, write_text

RULE = "=" * 60
TITLES = {"challenger": "Challenger evaluation", "watch": "Post-promotion watch"}
_W, _H, _M = 460, 260, 44


def _looks(r: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list(((r.get("state") or {}).get("looks")) or [])


def _plan(r: Mapping[str, Any]) -> Mapping[str, Any]:
    return (r.get("state") or {}).get("plan") or {}


def _f(x: Any, fmt: str = ".4f") -> str:
    return "n/a" if x is None else format(x, fmt)


def _head(r: Mapping[str, Any]) -> list[str]:
    plan = _plan(r)
    kind = r.get("kind", "challenger")
    who = (
        f"challenger {r.get('candidate_version')} vs champion {r.get('baseline_version')}"
        if kind == "challenger"
        else f"new production {r.get('candidate_version')} vs previous {r.get('baseline_version')}"
    )
    lines = [f"{TITLES.get(kind, kind)}: {who} ({r.get('mode', 'shadow')} mode)"]
    if plan:
        null = (
            f"H1: AUC gain > {plan.get('threshold', 0):g}"
            if kind == "challenger"
            else f"H1: new production worse by more than {plan.get('threshold', 0):g} AUC"
        )
        family = (
            f" = alpha_k of comparison {plan['comparison']} (family budget {plan['budget']:g})"
            if plan.get("comparison")
            else ""
        )
        lines.append(
            f"{null}; total alpha {plan['alpha']:.4g}{family}, spent {plan['spending']} over "
            f"n / N_max with N_max = {plan['n_max']:,}; looks below {plan['min_class_count']} "
            "of a class spend nothing"
        )
    if r.get("window_ends"):
        lines.append(f"Watch window: {r.get('started_at')} → {r['window_ends']}")
    return lines


def to_text(result: Mapping[str, Any]) -> str:
    """The report as text: decision, reasons, the plan, one line per look."""
    r = result
    out = [RULE, *_head(r), RULE, f"Decision: {r.get('decision') or r.get('status')}"]
    out += [f"  - {reason}" for reason in r.get("reasons") or []]
    looks = _looks(r)
    if looks:
        out += ["", "look       n    pos    neg   t      diff      se        z    bound  alpha"]
        for i, lk in enumerate(looks, 1):
            out.append(
                f"{i:>4} {lk['n']:>7} {lk['n_positive']:>6} {lk['n_negative']:>6} "
                f"{min(lk['information'], 1.0):5.3f} {_f(lk.get('diff'), '+.4f'):>8} "
                f"{_f(lk.get('se')):>7} {_f(lk.get('z'), '+.3f'):>8} "
                f"{_f(lk.get('boundary'), '.3f'):>7} {lk['alpha_spent']:.4g}  {lk['decision']}"
            )
    return "\n".join(out) + "\n"


def to_markdown(result: Mapping[str, Any]) -> str:
    """A compact Markdown summary (for Prefect artifacts)."""
    r = result
    out = [f"## {TITLES.get(r.get('kind', ''), '')}: **{r.get('decision') or r.get('status')}**"]
    out += ["", *[f"- {reason}" for reason in r.get("reasons") or []], ""]
    out += [" ".join(_head(r)), ""]
    looks = _looks(r)
    if looks:
        out += ["| look | n | t | AUC diff | se | z | boundary | α spent | decision |"]
        out += ["|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        for i, lk in enumerate(looks, 1):
            out.append(
                f"| {i} | {lk['n']:,} | {min(lk['information'], 1.0):.3f} | "
                f"{_f(lk.get('diff'), '+.4f')} | {_f(lk.get('se'))} | {_f(lk.get('z'), '+.3f')} "
                f"| {_f(lk.get('boundary'), '.3f')} | {lk['alpha_spent']:.4g} | {lk['decision']} |"
            )
    return "\n".join(out) + "\n"


def to_html(result: Mapping[str, Any]) -> str:
    """A self-contained page: decision, reasons, plan, the z path against its boundaries."""
    r = result
    esc = html.escape
    decision = str(r.get("decision") or r.get("status"))
    css = decision if decision in ("PROMOTE", "REJECT") else "INCONCLUSIVE"
    css = "REJECT" if decision == "ROLLBACK" else ("PROMOTE" if decision == "KEEP" else css)
    body = [
        f"<h1>{esc(TITLES.get(r.get('kind', ''), 'Live test'))}</h1>",
        f'<p><span class="decision {css}">{esc(decision)}</span></p>',
        "<ul>" + "".join(f"<li>{esc(x)}</li>" for x in r.get("reasons") or []) + "</ul>",
        "".join(f"<p>{esc(x)}</p>" for x in _head(r)),
        _svg(_looks(r)),
        "<h2>Looks</h2><pre>" + esc(to_text(r).split("\n\n", 1)[-1]) + "</pre>",
    ]
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(decision)}</title>"
        f"<style>{_CSS}</style></head><body>{''.join(body)}</body></html>\n"
    )


def _svg(looks: list[Mapping[str, Any]]) -> str:
    """z at each tested look (blue) and its boundary (red) against the information fraction."""
    pts = [lk for lk in looks if lk.get("z") is not None and lk.get("boundary") is not None]
    if not pts:
        return "<p>No look has tested anything yet.</p>"
    ys = [v for lk in pts for v in (lk["z"], min(lk["boundary"], 10.0))]
    lo, hi = min(0.0, *ys) - 0.5, max(ys) + 0.5

    def sx(t: float) -> float:
        return _M + min(t, 1.0) * (_W - _M - 12)

    def sy(v: float) -> float:
        return _H - _M - (v - lo) / (hi - lo) * (_H - _M - 12)

    def line(key: str, color: str) -> str:
        p = " ".join(f"{sx(lk['information']):.1f},{sy(min(lk[key], 10.0)):.1f}" for lk in pts)
        return f'<polyline points="{p}" fill="none" stroke="{color}" stroke-width="2"/>'

    parts = [
        f'<rect x="{_M}" y="12" width="{_W - _M - 12}" height="{_H - _M - 12}" fill="none" '
        'stroke="#999"/>',
        f'<line x1="{_M}" y1="{sy(0):.1f}" x2="{_W - 12}" y2="{sy(0):.1f}" stroke="#ccc"/>',
        line("boundary", "#d62728"),
        line("z", "#1f77b4"),
        f'<text x="{(_W + _M) / 2:.0f}" y="{_H - 8}" font-size="11" text-anchor="middle">'
        "information fraction n / N_max</text>",
        f'<text x="{_W - 20}" y="26" font-size="11" text-anchor="end" fill="#d62728">'
        "boundary</text>",
        f'<text x="{_W - 20}" y="40" font-size="11" text-anchor="end" fill="#1f77b4">z</text>',
    ]
    head = f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}">'
    return head + "".join(parts) + "</svg>"


def write_reports(result: Mapping[str, Any], folder: Path, stem: str) -> dict[str, str]:
    """Write ``<stem>.json``, ``.txt`` and ``.html`` into ``folder``; return their paths."""
    paths = {
        "json": folder / f"{stem}.json",
        "text": folder / f"{stem}.txt",
        "html": folder / f"{stem}.html",
    }
    report = dict(result)
    report["reports"] = {k: str(v) for k, v in paths.items()}
    write_text(paths["json"], json.dumps(to_json(report), indent=2, allow_nan=False) + "\n")
    write_text(paths["text"], to_text(report))
    write_text(paths["html"], to_html(report))
    return report["reports"]
