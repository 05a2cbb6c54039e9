"""Test helpers shared by the whole suite: paths, and doubles for the registry tests.

Importable from every test folder (pytest puts tests/, the folder of the root conftest, on
sys.path).
"""

from __future__ import annotations

import hashlib
import json
import random
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

REPO_ROOT = Path(__file__).resolve().parents[1]
"""The project's root folder."""
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
"""The small real data sets beside the project (``../shared/data``)."""
ASAH = SHARED_DATA / "aSAH.csv"


def make_model(folder: Path, seed: int = 0, auc: float | None = None, size: int = 2048) -> Path:
    """A fake model folder: random bytes as model.pt and a model.json that matches them.

    The registry never unpickles ``model.pt``; it only checks its SHA-256 against
    ``model.json``, so random bytes are a faithful stand-in.
    """
    folder.mkdir(parents=True)
    data = random.Random(seed).randbytes(size)
    (folder / "model.pt").write_bytes(data)
    meta = {
        "format_version": 1,
        "sha256": hashlib.sha256(data).hexdigest(),
        "trained_at": "2026-11-20T10:00:00Z",
        "metrics": {"validation": {"auc": 0.8 + seed / 1000 if auc is None else auc, "f1": 0.7}},
    }
    (folder / "model.json").write_text(json.dumps(meta))
    return folder


FAST_BACKTEST_POLICY = """
[models.demo]
target_column = "target"
id_column = "id"
categorical_columns = ["region", "category_preference", "is_premium"]
min_drifted_features = 3
max_days_since_training = 30.0
min_hours_between_trainings = 24.0
improvement_threshold = 0.005
n_bootstrap = 200
num_epochs = 4
batch_size = 256
hidden_sizes = [16]
"""
"""The demo model's policy with a small, fast network: the backtest tests' retraining.toml."""


class ExampleTimeout(Exception):
    """A bounded piece of work ran past its time limit: a hang."""


@contextmanager
def time_limit(seconds: int, what: str = "the example") -> Iterator[None]:
    """Raise :class:`ExampleTimeout` if the block runs longer than ``seconds`` (SIGALRM: a
    property test's per-example bound; Hypothesis's deadline only reports after return)."""

    def expire(signum: int, frame: FrameType | None) -> None:
        raise ExampleTimeout(f"{what} took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
