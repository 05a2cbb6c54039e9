"""The issue's demo, from the command line as a user runs it: ``retrain backtest --demo`` on the
demo generator's 12 monthly batches with drift injected from June. The numbers are read from
its JSON and checked against the per-batch AUCs it holds (independently of its summary):

- the configured policy tracks 'retrain always' within 0.01 mean prequential AUC,
- while training less often;
- 'never retrain' falls far behind (so retraining mattered on this history).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fakes import REPO_ROOT

pytestmark = pytest.mark.slow

TRAINED = ("promoted", "rejected", "inconclusive")


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def test_configured_tracks_retrain_always_while_training_less(tmp_path: Path) -> None:
    env = {**os.environ, "RETRAIN_HOME": str(tmp_path / "home"), "DO_NOT_TRACK": "1"}
    env.pop("RETRAIN_CONFIG", None)  # the checkout's retraining.toml: the demo's own policy
    done = subprocess.run(
        [sys.executable, "-m", "model.cli", "backtest", "--demo", "--json"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout[done.stdout.index("{") :])
    saved = json.loads(Path(result["reports"]["json"]).read_text())
    assert saved["policies"] == result["policies"]
    assert Path(result["reports"]["html"]).is_file()
    policies: dict[str, Any] = {p["kind"]: p for p in result["policies"]}
    assert set(policies) == {"configured", "never", "always"}
    batches = result["timeline"]["batches"]
    assert len(batches) == 12 and batches[0]["name"] == "date=2024-01-01"
    aucs = {k: [s["auc"] for s in p["steps"]] for k, p in policies.items()}
    assert all(len(v) == 12 and None not in v for v in aucs.values())
    gap = _mean(aucs["always"]) - _mean(aucs["configured"])
    assert gap <= 0.01, gap
    assert result["versus_reference"]["configured"]["mean_auc_gap"] == pytest.approx(gap, abs=1e-6)
    trained = {
        k: sum(1 for s in p["steps"] if (s["cycle"] or {}).get("status") in TRAINED)
        for k, p in policies.items()
    }
    assert trained["never"] == 0 < trained["configured"] < trained["always"] == 12, trained
    assert policies["configured"]["summary"]["trainings"] == trained["configured"]
    assert _mean(aucs["always"]) - _mean(aucs["never"]) > 0.05  # the drift did hurt
    # before the drift (January to May) nothing differs much; the first drifted batch hurts all
    early = zip(aucs["never"][:5], aucs["always"][:5], strict=True)
    assert max(abs(a - b) for a, b in early) < 0.02
    assert max(aucs["never"][5], aucs["always"][5]) < min(aucs["always"][:5]) - 0.2
    assert result["compute"]["trainings_reused"] >= trained["configured"]  # trained once
