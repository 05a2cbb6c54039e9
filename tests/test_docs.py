"""The README stays a front page and the manual in docs/ builds: MkDocs with --strict (a broken
link, a missing anchor or a page left out of the navigation fails), every relative link of the
README resolves on a code host, and every section of the old single-file manual has a home."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from fakes import REPO_ROOT

DOCS = REPO_ROOT / "docs"
README = REPO_ROOT / "README.md"
MAX_README_LINES = 250
SECTIONS = (
    "What just happened", "From Python", "Deployments (a real Prefect server)",
    "Beyond one machine", "What the UI shows", "Flow parameters", "One configuration per model",
    "Many models", "Configuration", "The `retrain` command", "Errors and guarantees",
    "Retraining triggers", "Drift detection", "Label-free performance estimate (CBPE)",
    "Demo data", "Data preparation and split stability", "Model and training",
    "The promotion gate", "Champion/challenger on live traffic (`challenger-evaluation`)",
    "Guardrail: automatic rollback (`post-promotion-watch`)",
    "Model registry (`$RETRAIN_HOME/models/<model>`)",
    "Scoring service (`retrain serve`) and the prediction log", "Performance (worst cases)",
    "Development", "Layout",
)  # fmt: skip
"""The sections of the README before it became a front page (issue 24): each has a page."""


def test_the_readme_is_a_front_page() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, len(lines)
    text = "\n".join(lines)
    assert "make run" in text and "make test" in text  # the two commands come first
    assert text.index("make run") < text.index("## ")


def test_every_relative_link_of_the_readme_resolves() -> None:
    text = README.read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    relative = [t for t in targets if "://" not in t]
    assert any(t.startswith("docs/") for t in relative)
    missing = [t for t in relative if not (REPO_ROOT / t).exists()]
    assert not missing, missing


def test_every_old_section_has_a_home_in_the_manual() -> None:
    headings = set()
    for page in DOCS.glob("*.md"):
        headings |= {
            m.group(1).strip()
            for m in re.finditer(r"^#{1,3} (.+)$", page.read_text(encoding="utf-8"), re.M)
        }
    missing = [s for s in SECTIONS if s not in headings]
    assert not missing, missing


def test_the_manual_builds_strictly(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs", reason="mkdocs-material is a dev dependency (make setup)")
    out = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert (tmp_path / "gate" / "index.html").is_file()
    assert (tmp_path / "comparison-report.png").is_file()  # the screenshots moved with it
