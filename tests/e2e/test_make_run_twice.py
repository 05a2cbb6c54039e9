"""``make run`` twice in a fresh copy of the project: both exit 0, and the second continues
from the registry with a batch of its own (issue 24).

The copy holds the project's files as a fresh clone would (tracked and not ignored files, no
``var/`` content) and uses this virtualenv (``.venv`` links to it; ``make -o`` keeps make from
reinstalling it). Its working root and Prefect home are the copy's own ``var/``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fakes import REPO_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def fresh_copy(target: Path) -> Path:
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO_ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    (target / ".venv").symlink_to(Path(sys.executable).parents[1])
    return target


def make_run(clone: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "RETRAIN_"))}
    return subprocess.run(
        ["make", "-o", ".venv/.installed-stamp", "run"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_make_run_twice_continues(tmp_path: Path) -> None:
    clone = fresh_copy(tmp_path / "clone")
    first = make_run(clone)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    second = make_run(clone)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]

    days = [re.search(r"\[3/5\].*?(\d{4}-\d\d-\d\d)\)", r.stdout) for r in (first, second)]
    assert all(days), (first.stdout[-2000:], second.stdout[-2000:])
    assert days[0].group(1) != days[1].group(1)  # type: ignore[union-attr]  # a new batch
    incoming = sorted(p.name for p in (clone / "var/data/demo/incoming").iterdir())
    assert len(incoming) == 2 and all(name.startswith("date=") for name in incoming)
    assert "Decision: PROMOTED (trigger: no-production)" in first.stdout
    assert "trigger: no-production" not in second.stdout  # it continued from the registry
    history = (clone / "var/models/demo/history.jsonl").read_text()
    assert history.count('"registered"') >= 2
