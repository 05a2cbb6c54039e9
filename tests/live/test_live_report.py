"""Reports of a live sequential test: text, Markdown, JSON and self-contained HTML."""

from __future__ import annotations

import json
import re
from pathlib import Path

from model.live.report import to_html, to_markdown, to_text, write_reports
from model.live.sequential import Estimate, SequentialPlan, SequentialState


def _outcome() -> dict:
    state = SequentialState(SequentialPlan(alpha=0.05, n_max=1000))
    state.look(Estimate(0.8, 0.8, 0.0, 0.05, 150, 60, 90, "delong-paired"))
    state.look(Estimate(0.8, 0.83, 0.03, 0.01, 500, 200, 300, "delong-paired"))
    return {
        "kind": "challenger",
        "status": "looked",
        "decision": state.decision,
        "reasons": [state.looks[-1].reason],
        "baseline_version": "v0001",
        "candidate_version": "v0002",
        "mode": "shadow",
        "state": state.to_dict(),
    }


def test_text_and_markdown_show_every_look_and_the_plan() -> None:
    r = _outcome()
    text = to_text(r)
    assert "challenger v0002 vs champion v0001 (shadow mode)" in text
    assert f"Decision: {r['decision']}" in text
    assert "total alpha 0.05, spent" in text and "alpha_k" not in text  # full level, no family
    rows = [ln for ln in text.splitlines() if re.match(r"^\s+\d+\s+\d+", ln)]
    assert len(rows) == 2 and "n/a" in rows[0]  # the first look tested nothing
    md = to_markdown(r)
    assert md.count("\n| ") == 3  # header + two looks


def test_files_are_written_and_the_html_is_self_contained(tmp_path: Path) -> None:
    r = _outcome()
    paths = write_reports(r, tmp_path / "live", "challenger-v0002-vs-v0001-look002")
    assert set(paths) == {"json", "text", "html"}
    data = json.loads(Path(paths["json"]).read_text())
    assert data["state"]["looks"] == r["state"]["looks"]
    assert data["reports"] == paths
    page = to_html(r)
    assert "<svg" in page and "<polyline" in page
    assert re.findall(r"https?://[^\"]+", page) == ["http://www.w3.org/2000/svg"]
