"""Shared fixtures. Everything a test writes goes under ``tmp_path``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes import REPO_ROOT, SHARED_DATA  # noqa: F401  (re-exported for tests)

from model.settings import Settings


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings whose working root is a fresh temporary folder (also exported as RETRAIN_HOME)."""
    home = tmp_path / "home"
    monkeypatch.setenv("RETRAIN_HOME", str(home))
    monkeypatch.setenv("RETRAIN_MODEL_NAME", "demo")
    return Settings(home=home, model_name="demo")


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One temporary Prefect server (SQLite) for every flow test in the session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
