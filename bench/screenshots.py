"""The manual's screenshots (docs/), regenerated from the demo: comparison report, leaderboard,
and (``--backtest``) the backtest report.

Run: ``.venv/bin/python bench/screenshots.py [--out docs] [--backtest]`` (needs Debian's
``chromium``). It runs the demo loop (``python -m flows.demo``) in a fresh temporary
``RETRAIN_HOME``, then opens the newest comparison report and a page of the leaderboard table
(the same rows as the ``model-leaderboard-demo`` artifact) in headless Chromium and writes
``docs/comparison-report.png`` and ``docs/leaderboard.png``. With ``--backtest`` it runs
``retrain backtest --demo`` (a few minutes) instead and writes ``docs/backtest.png``: the top of
its report (the headline, the AUC chart and the summary).
"""

from __future__ import annotations

import argparse
import html
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from chromium import find_chromium, open_page  # noqa: E402


def leaderboard_page(rows: list[dict[str, object]], path: Path) -> Path:
    head = "".join(f"<th>{html.escape(str(k))}</th>" for k in rows[0])
    body = "".join(
        "<tr>"
        + "".join(f"<td>{html.escape('' if v is None else str(v))}</td>" for v in r.values())
        + "</tr>"
        for r in rows
    )
    path.write_text(
        "<!doctype html><html><head><meta charset='utf-8'><style>"
        "body{font-family:system-ui,sans-serif;margin:1.5em}table{border-collapse:collapse;"
        "font-size:.9em}td,th{border:1px solid #ccc;padding:.3em .6em;white-space:nowrap}"
        "th{background:#f3f3f3}</style></head><body><h1>model-leaderboard-demo</h1>"
        f"<table><tr>{head}</tr>{body}</table></body></html>",
        encoding="utf-8",
    )
    return path


BACKTEST_TOP = 1040
"""CSS pixels of the backtest report the manual shows: headline, chart, legend, summary."""


def backtest_screenshot(home: Path, out: Path) -> int:
    """Run ``retrain backtest --demo`` in ``home`` and write ``out/backtest.png``."""
    env = {**os.environ, "RETRAIN_HOME": str(home), "RETRAIN_MODEL_NAME": "demo"}
    done = subprocess.run(
        [sys.executable, "-m", "model.cli", "backtest", "--demo", "--json"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    result = json.loads(done.stdout[done.stdout.index("{") :])
    out.mkdir(parents=True, exist_ok=True)
    with open_page(Path(result["reports"]["html"]), width=1150) as tab:
        (out / "backtest.png").write_bytes(tab.screenshot(scale=0.8, height=BACKTEST_TOP))
    print(f"wrote {out / 'backtest.png'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs")
    ap.add_argument("--backtest", action="store_true", help="the backtest report only")
    args = ap.parse_args(argv)
    if find_chromium() is None:
        print("chromium is not installed: apt-get install chromium")
        return 2
    home = Path(tempfile.mkdtemp(prefix="retrain-screens-"))
    if args.backtest:
        return backtest_screenshot(home, args.out)
    env = {**os.environ, "RETRAIN_HOME": str(home), "RETRAIN_MODEL_NAME": "demo"}
    subprocess.run([sys.executable, "-m", "flows.demo"], cwd=ROOT, env=env, check=True)
    os.environ["RETRAIN_HOME"] = str(home)
    from model.registry import ModelRegistry
    from model.settings import get_settings
    from tasks.reporting import leaderboard_rows

    settings = get_settings()
    reports = sorted(settings.reports_dir.rglob("comparison.html"), key=lambda p: p.stat().st_mtime)
    args.out.mkdir(parents=True, exist_ok=True)
    with open_page(reports[-1], width=1150) as tab:
        (args.out / "comparison-report.png").write_bytes(tab.screenshot(scale=0.8))
    rows = leaderboard_rows(ModelRegistry(settings.models_dir))
    page = leaderboard_page(rows, home / "leaderboard.html")
    with open_page(page, width=1300, height=400) as tab:
        (args.out / "leaderboard.png").write_bytes(tab.screenshot(scale=0.8))
    print(f"wrote {args.out / 'comparison-report.png'} and {args.out / 'leaderboard.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
