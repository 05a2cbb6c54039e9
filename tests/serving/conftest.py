"""Fixtures of the serving tests: a registry of real (tiny, untrained) models with an id, a
numeric and two categorical features (one one-hot, one embedded), and the service's app."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pd = pytest.importorskip("pandas")
torch = pytest.importorskip("torch")

from model.artifact import save_model  # noqa: E402
from model.data import infer_spec  # noqa: E402
from model.registry import ModelRegistry  # noqa: E402
from model.serving.loading import verify_loads  # noqa: E402
from model.training.network import Preprocessor, build_model  # noqa: E402

TRAIN = pd.DataFrame(
    {
        "id": range(8),
        "x": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
        "c": list("abababab"),
        "city": ["p", "q", "r", "s", "t", "u", "p", "q"],
        "target": [0, 1, 0, 1, 0, 1, 0, 1],
    }
)


def build_registry(root: Path, versions: int = 3) -> ModelRegistry:
    """A registry with v0001..v000N (different weights), v0001 in production."""
    spec = infer_spec(TRAIN, id_column="id")
    pre = Preprocessor.fit(TRAIN, spec)
    reg = ModelRegistry(root / "models", verify=verify_loads)
    for seed in range(1, versions + 1):
        torch.manual_seed(seed)
        folder = root / "runs" / f"m{seed}"
        save_model(build_model(spec, pre, [8], 0.0, "relu", 0.5), folder)
        reg.register(folder)
    reg.promote("v0001", "first", force=True)
    return reg


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
