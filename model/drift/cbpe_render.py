"""The performance estimate's section of the drift report (Markdown and HTML).

Takes the JSON form (:meth:`model.drift.cbpe.PerformanceEstimate.to_dict`, the drift
report's ``performance_estimate`` field) so a report read back from disk renders the same.
"""

from __future__ import annotations

import html
from typing import Any


def _num(x: Any, fmt: str = ".3f") -> str:
    return "—" if x is None else format(x, fmt)


def _rows(est: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(quantity, estimated, realised) rows."""
    realised = est.get("realised") or {}
    level = f"{est.get('confidence', 0.95):.0%}"
    interval = f"[{_num(est['auc_ci_low'])}, {_num(est['auc_ci_high'])}]"
    auc = f"{_num(est['auc'])} {interval} ({level})"
    rows = [("ROC AUC", auc, _num(realised.get("auc")) if realised else "no labels")]
    r_rates = realised.get("rates") or {}
    for name in ("accuracy", "precision", "recall", "f1"):
        rows.append((name, _num(est["rates"].get(name)), _num(r_rates.get(name))))
    r_counts = realised.get("counts") or {}
    for cell in ("tp", "fp", "fn", "tn"):
        c = est["counts"][cell]
        rows.append(
            (
                cell.upper(),
                f"{c['expected']:,.0f} ± {c['sd']:,.0f}",
                f"{r_counts[cell]:,}" if cell in r_counts else "—",
            )
        )
    return rows


def _notes(est: dict[str, Any]) -> list[str]:
    cal = est.get("calibration") or {}
    ref = est.get("reference") or {}
    sampled = (
        f" drawn at random from {est['sampled_from']:,} (the data was too large to read whole)"
        if est.get("sampled_from")
        else ""
    )
    notes = [
        f"CBPE on {est['n_rows']:,} rows{sampled} at the decision threshold "
        f"{est['threshold']:.3f}; "
        f"calibrated by {cal.get('method', '?')} on {cal.get('n_rows', 0):,} validation rows.",
        f"Assumes {est.get('assumptions', 'covariate shift only and a calibrated model')}: "
        "under concept drift (a changed target rule) the estimate is off.",
    ]
    if ref.get("validation_auc") is not None:
        notes.append(f"Production's AUC on its validation split: {ref['validation_auc']:.3f}.")
    holdout = ref.get("holdout_auc")
    if holdout:
        notes.append(
            f"Production's recorded holdout AUC: {_num(holdout.get('auc'))} "
            f"[{_num(holdout.get('ci_low'))}, {_num(holdout.get('ci_high'))}]."
        )
    elif "holdout_auc" in ref:
        notes.append("Production has no recorded holdout AUC interval.")
    return notes


def _unavailable(est: dict[str, Any]) -> str | None:
    if est.get("available") is False or est.get("auc") is None:
        return f"not available: {est.get('reason') or 'no estimate'}"
    return None


def estimate_markdown(est: dict[str, Any] | None) -> str:
    """The Markdown section (empty without an estimate)."""
    if not est:
        return ""
    why = _unavailable(est)
    if why:
        return f"\n## Performance estimate (CBPE, no labels needed)\n\n{why}\n"
    lines = [
        "",
        "## Performance estimate (CBPE, no labels needed)",
        "",
        "| Quantity | Estimated | Realised |",
        "|---|---:|---:|",
    ]
    lines += [f"| {q} | {e} | {r} |" for q, e, r in _rows(est)]
    lines += ["", *[f"- {n}" for n in _notes(est)]]
    return "\n".join(lines) + "\n"


def estimate_html(est: dict[str, Any] | None) -> str:
    """The HTML section (empty without an estimate)."""
    if not est:
        return ""
    why = _unavailable(est)
    if why:
        return (
            '<section id="performance-estimate"><h2>Performance estimate (CBPE, no labels '
            f"needed)</h2><p>{html.escape(why)}</p></section>\n"
        )
    body = "".join(
        f"<tr><td>{html.escape(q)}</td><td>{html.escape(e)}</td><td>{html.escape(r)}</td></tr>"
        for q, e, r in _rows(est)
    )
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in _notes(est))
    return (
        '<section id="performance-estimate"><h2>Performance estimate (CBPE, no labels '
        "needed)</h2><table><thead><tr><th>Quantity</th><th>Estimated</th><th>Realised</th>"
        f"</tr></thead><tbody>{body}</tbody></table><ul>{notes}</ul></section>\n"
    )
