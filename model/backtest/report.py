"""The backtest's reports: ``backtest.html`` (for people: the headline, the AUC chart with the
decisions marked, the summary table, each batch's decisions and drift verdicts; the comparison
report's style, offline and self-contained), ``backtest.json`` (:mod:`model.backtest.result`,
for machines) and the Markdown the Prefect artifact shows."""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from model.backtest.chart import MARKS, auc_chart, colors, legend_mark
from model.backtest.result import headline, summary_rows
from model.gate.report import _CSS, write_text

CSS = """
.legend{display:flex;flex-wrap:wrap;gap:.4em 1.4em;list-style:none;padding:0;font-size:.9em}
.legend li{display:flex;align-items:center;gap:.4em}.swatch{display:inline-block;width:22px;
height:4px;border-radius:2px}.scroll{overflow-x:auto;max-width:100%}td.drift{color:#d62728}
table.wrap th,table.wrap td.small{white-space:normal;vertical-align:top}
table.wrap th{overflow-wrap:break-word}
td.small{font-size:.85em;min-width:7em}
td.small b{font-variant-numeric:tabular-nums}
"""
COLUMNS = {
    "policy": "policy",
    "mean_auc": "mean AUC",
    "min_auc": "min AUC",
    "auc_gap_to_reference": "behind always",
    "trainings": "trained",
    "promotions": "promoted",
    "rejections": "rejected",
    "inconclusive": "inconclusive",
    "rollbacks": "rolled back",
    "training_seconds": "training s",
    "alpha_spent": "α gate",
    "alpha_spent_live": "α live",
}


def _cell(value: Any, key: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if key in ("mean_auc", "min_auc"):
        return f"{value:.4f}"
    if key == "auc_gap_to_reference":
        return f"{value:+.4f}"
    if key.startswith("alpha"):
        return f"{value:.4g}"
    if key == "training_seconds":
        return f"{value:.1f}"
    return html.escape(str(value))


def _summary_table(result: Mapping[str, Any]) -> str:
    head = "".join(f"<th>{html.escape(v)}</th>" for v in COLUMNS.values())
    rows = []
    for row in summary_rows(result):
        cells = "".join(
            f'<td class="{"n" if k != "policy" else ""}">{_cell(row[k], k)}</td>' for k in COLUMNS
        )
        rows.append(f"<tr>{cells}</tr>")
    return (
        f'<div class="scroll"><table id="summary" class="wrap"><tr>{head}</tr>{"".join(rows)}'
        "</table></div>"
    )


def _decision_cell(step: Mapping[str, Any]) -> str:
    """What was decided when the batch arrived, in short phrases (one a line)."""
    said: list[str] = []
    live = step.get("live") or {}
    challenger, watch = live.get("challenger") or {}, live.get("watch") or {}
    if challenger.get("status") == "looked" and challenger.get("decision") != "INCONCLUSIVE":
        said.append(f"live: {challenger.get('candidate_version')} {challenger['decision']}")
    if watch.get("restored"):
        said.append(f"watch: back to {watch['restored']}")
    elif watch.get("status") == "looked" and watch.get("decision") == "KEEP":
        said.append("watch: kept")
    cycle = step.get("cycle") or {}
    if cycle:
        status = str(cycle.get("status"))
        trigger = f" ({cycle['trigger']})" if cycle.get("trigger") else ""
        if cycle.get("forced"):
            said.append(f"forced {cycle.get('candidate')} (gate: {status})")
        elif status in ("promoted", "rejected", "inconclusive"):
            said.append(f"{status} {cycle.get('candidate')}{trigger}")
        else:
            said.append(status)
    return "<br>".join(html.escape(s) for s in said) or "–"


def _drift_cell(step: Mapping[str, Any]) -> tuple[str, str]:
    """(css class, text): the verdict and share; the drifted features on hover."""
    drift = step.get("drift") or {}
    if drift.get("status") != "ok":
        return "", html.escape(str(drift.get("reason") or "not computed"))
    share = drift.get("drift_share")
    shown = f"{share:.2f}" if isinstance(share, int | float) else "?"
    features = drift.get("drifted_features") or []
    count = (
        f' <span title="{html.escape(", ".join(features))}">({len(features)} feature'
        f"{'s' if len(features) != 1 else ''})</span>"
        if features
        else ""
    )
    if drift.get("dataset_drift"):
        blocked = " judged before" if drift.get("blocked") else ""
        return "drift", f"drift {shown}{count}{blocked}"
    return "", f"no drift {shown}{count}"


def _per_batch(result: Mapping[str, Any], what: str) -> str:
    """A table of the batches (rows) and the policies (columns): decisions or drift."""
    policies = result["policies"]
    head = "<th>batch</th><th>rows</th><th>arrives</th>"
    head += "".join(f"<th>{html.escape(p['name'])}</th>" for p in policies)
    rows = []
    for i, b in enumerate(result["timeline"]["batches"]):
        cells = [
            f"<td>{html.escape(b['name'])}</td><td class='n'>{b['rows']:,}</td>"
            f"<td>{html.escape(b['arrives'][:10])}</td>"
        ]
        steps = [p["steps"][i] for p in policies]
        if what == "decisions":
            cells += [
                f"<td class='small'><b>{_cell(s.get('auc'), 'mean_auc')}</b><br>"
                f"{_decision_cell(s)}</td>"
                for s in steps
            ]
        else:
            for s in steps:
                cls, text = _drift_cell(s)
                cells.append(f"<td class='small {cls}'>{text}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    table_id = "decisions" if what == "decisions" else "drift"
    return (
        f'<div class="scroll"><table id="{table_id}" class="wrap"><tr>{head}</tr>'
        f"{''.join(rows)}</table></div>"
    )


def _legend(result: Mapping[str, Any]) -> str:
    palette = colors(result["policies"])
    lines = "".join(
        f'<li><span class="swatch" style="background:{c}"></span>{html.escape(name)}</li>'
        for name, c in palette.items()
    )
    marks = "".join(f"<li>{legend_mark(k)}{html.escape(text)}</li>" for k, text in MARKS.items())
    return f'<ul class="legend" id="policies">{lines}</ul><ul class="legend">{marks}</ul>'


def _policy_list(result: Mapping[str, Any]) -> str:
    items = "".join(
        f"<li><b>{html.escape(p['name'])}</b>: {html.escape(p['description'])}</li>"
        for p in result["policies"]
    )
    return f"<ul>{items}</ul>"


def to_html(result: Mapping[str, Any]) -> str:
    """The self-contained HTML report."""
    t = result["timeline"]
    esc = html.escape
    compute = result.get("compute") or {}
    batches = t["batches"]
    span = f"{batches[0]['name'][5:]} to {batches[-1]['arrives'][:10]}" if batches else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Backtest: {esc(result["model_name"])}</title>
<style>{_CSS}{CSS}</style></head><body>
<h1>Backtest of model {esc(result["model_name"])}</h1>
<p class="banner" id="headline">{esc(headline(result))}.</p>
<p>{len(batches)} {esc(t["period"])} batch(es) of {esc(t["source"])} ({span}); the first
production model was trained on the {t["base_rows"]:,} rows before {esc(t["start"][:10])}.
Each batch's AUC is production's, on its rows, before any model was trained on them. Time is
simulated: triggers, cooldowns and the live tests saw the batches' dates. Created
{esc(str(result.get("created_at")))} in {compute.get("wall_seconds", 0):.0f} s
({compute.get("trainings_run", 0)} trainings run, {compute.get("trainings_reused", 0)} reused
from the training cache).</p>
{_policy_list(result)}
<h2>Production AUC per batch</h2>
<figure>{auc_chart(result)}</figure>
{_legend(result)}
<h2>Summary</h2>
{_summary_table(result)}
<p>Trainings and promotions count what followed the first production model; "behind always" is
the mean AUC of 'retrain always' minus the policy's; α gate is the sum of the promotion gate's
decisions' levels (evidence by rows: each decision's <code>alpha_spent</code>), α live the
challenger evaluations' at their last look; training s is what the trainings took when run.</p>
<h2>Decisions per batch</h2>
<p>Production's AUC on the batch, then what was decided when it arrived.</p>
{_per_batch(result, "decisions")}
<h2>Drift per batch</h2>
<p>The drift monitor's verdict when each batch arrived: its rows (with every batch production
had not seen) against production's training data, so each policy sees its own reference.</p>
{_per_batch(result, "drift")}
</body></html>
"""


def to_markdown(result: Mapping[str, Any]) -> str:
    """The artifact's text: the headline and the summary table."""
    keys = list(COLUMNS)
    lines = [
        f"# Backtest of {result['model_name']}",
        "",
        headline(result) + ".",
        "",
        "| " + " | ".join(COLUMNS[k] for k in keys) + " |",
        "|" + "---|" * len(keys),
    ]
    for row in summary_rows(result):
        lines.append("| " + " | ".join(html.unescape(_cell(row[k], k)) for k in keys) + " |")
    return "\n".join(lines) + "\n"


def write_reports(result: Mapping[str, Any], folder: Path) -> dict[str, Path]:
    """``backtest.json`` and ``backtest.html`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result, indent=2, default=str) + "\n"
    return {
        "json": write_text(folder / "backtest.json", text),
        "html": write_text(folder / "backtest.html", to_html(result)),
    }
