"""Fixtures of the serving tests: a registry of real (tiny, untrained) models with an id, a
numeric and two categorical features (one one-hot, one embedded), and the service's app."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from serving_models import build_registry

from model.registry import ModelRegistry


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    return build_registry(tmp_path)


@pytest.fixture
def make_client(tmp_path: Path, registry: ModelRegistry) -> Iterator[Callable[..., Any]]:
    """``make_client(**config)``: a TestClient over the app (lifespan running); leaving it
    (``client.__exit__``) shuts the app down, which flushes the log."""
    from fastapi.testclient import TestClient

    from deployments.scoring.app import ServeConfig, create_app

    clients: list[TestClient] = []

    def make(**overrides: object) -> TestClient:
        options: dict[str, Any] = {
            "registry": registry.root,
            "predictions_dir": tmp_path / "predictions",
            "events": False,
            "poll_seconds": 0.1,
            "flush_seconds": 0.1,
        }
        options.update(overrides)
        client = TestClient(create_app(ServeConfig(**options)))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        with contextlib.suppress(RuntimeError):  # already left by the test
            client.__exit__(None, None, None)
