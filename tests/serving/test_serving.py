"""Serving: load the production model, route rows between champion and challenger."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from model.errors import DataValidationError, ModelLoadError
from model.registry import ModelRegistry
from model.serving import ChampionChallengerRouter, challenger_share, load_production
from model.settings import Settings


@dataclass
class FakeModel:
    """Scores every row with a constant, so the test can tell which model scored it."""

    value: float
    version: str | None
    decision_threshold: float = 0.5
    path: Path = Path("/nowhere")
    calls: list[int] = field(default_factory=list)

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        self.calls.append(len(df))
        return np.full(len(df), self.value)


def batch(n: int, start: int = 0) -> pd.DataFrame:
    return pd.DataFrame({"id": np.arange(start, start + n), "x": np.zeros(n)})


def test_router_splits_by_entity_key_deterministically() -> None:
    champ, chal = FakeModel(0.2, "v0001"), FakeModel(0.9, "v0002")
    router = ChampionChallengerRouter(champ, chal, traffic=10, key="id")
    df = batch(20_000)
    out = router.score(df)
    assert list(out.columns) == ["score", "prediction", "version", "role"]
    assert out.index.equals(df.index)
    share = (out["role"] == "challenger").mean()
    assert 0.09 < share < 0.11
    # Each row was scored by the model it names.
    assert (out.loc[out["version"] == "v0002", "score"] == 0.9).all()
    assert (out.loc[out["version"] == "v0001", "score"] == 0.2).all()
    assert set(out.loc[out["role"] == "challenger", "version"]) == {"v0002"}
    assert (out["prediction"] == (out["score"] >= 0.5)).all()
    assert sum(champ.calls) + sum(chal.calls) == len(df)  # each row scored once
    # The same entity gets the same model in another batch, order and process.
    shuffled = df.sample(frac=1.0, random_state=3).iloc[:5000]
    again = router.score(shuffled)
    pd.testing.assert_series_equal(again["version"], out.loc[shuffled.index, "version"])


def test_challenger_share_is_stable_and_uniform() -> None:
    keys = [f"customer-{i}" for i in range(10_000)]
    a = challenger_share(keys)
    assert np.array_equal(a, challenger_share(pd.Series(keys)))
    assert a.min() >= 0 and a.max() < 100
    assert np.histogram(a, bins=10, range=(0, 100))[0].min() > 850  # ~1000 per decile
    assert not np.array_equal(a, challenger_share(keys, salt="other experiment"))
    # Keys are compared as text: 42 and "42" are the same entity.
    assert challenger_share(["42"])[0] == challenger_share([42])[0]
    # An id read as float (a CSV column with gaps) routes like the integer id.
    as_float = challenger_share(pd.Series([7.0, np.nan]))
    assert as_float[0] == challenger_share(pd.Series([7]))[0]
    assert challenger_share([7.5])[0] != challenger_share([7])[0]
    # Pinned value: a change of hashing would silently re-route every customer.
    assert challenger_share(["customer-1"])[0] == pytest.approx(35.38390380523668)


def test_router_without_challenger_or_traffic_uses_champion() -> None:
    champ = FakeModel(0.3, "v0001")
    for router in (
        ChampionChallengerRouter(champ),
        ChampionChallengerRouter(champ, FakeModel(0.9, "v0002"), traffic=0, key="id"),
    ):
        out = router.score(batch(100))
        assert set(out["version"]) == {"v0001"} and set(out["role"]) == {"champion"}


def test_router_key_column_must_exist_and_defaults_to_the_index() -> None:
    router = ChampionChallengerRouter(FakeModel(0.3, "v1"), FakeModel(0.9, "v2"), 50, key="cid")
    with pytest.raises(DataValidationError, match="'cid'"):
        router.score(batch(10))
    by_index = ChampionChallengerRouter(FakeModel(0.3, "v1"), FakeModel(0.9, "v2"), 50)
    df = batch(1000).set_index("id")
    expected = challenger_share(df.index) < 50
    assert np.array_equal(by_index.assign(df), expected)
    with pytest.raises(DataValidationError, match="traffic"):
        ChampionChallengerRouter(FakeModel(0.3, "v1"), traffic=150)


def test_load_production_without_production_is_a_clear_error(settings: Settings) -> None:
    with pytest.raises(ModelLoadError, match="no production model"):
        load_production(settings)


# --------------------------------------------------------------------------- real models

HAVE_TRAINING = all(
    importlib.util.find_spec(m) is not None for m in ("torch", "model.artifact", "model.training")
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], pd.DataFrame]:
    if not HAVE_TRAINING:
        pytest.skip("model.artifact / model.training not available")
    from model.artifact import save_model
    from model.data import infer_spec
    from model.data.demo import make_customers
    from model.training import train

    df = make_customers(rows=400, seed=1)
    spec = infer_spec(df, id_column="id")
    folders = []
    for seed in (1, 2):
        params = {"num_epochs": 2, "hidden_sizes": [8], "batch_size": 64, "seed": seed}
        result = train(df.iloc[:300], df.iloc[300:], params, spec=spec)
        folders.append(save_model(result, tmp_path_factory.mktemp(f"model{seed}")))
    return folders, df


def test_load_production_and_route_with_real_models(
    settings: Settings, trained: tuple[list[Path], pd.DataFrame]
) -> None:
    from model.artifact import load_model

    folders, df = trained
    reg = ModelRegistry(settings.models_dir)
    v1, v2 = reg.register(folders[0]), reg.register(folders[1])
    reg.promote(v1, "first")
    prod = load_production(settings)
    assert prod.version == v1 and prod.sha256 == reg.metadata(v1)["sha256"]
    assert prod.path == reg.version_path(v1).resolve()

    reg.set_challenger(v2, 30)
    router = ChampionChallengerRouter.from_registry(settings.models_dir)
    assert router.key is None and router.traffic == 30
    out = router.score(df)
    assert set(out["version"]) == {v1, v2}
    for v in (v1, v2):
        rows = out["version"] == v
        expected = load_model(reg.version_path(v)).predict_proba(df.loc[rows])
        np.testing.assert_allclose(out.loc[rows, "score"].to_numpy(), expected, rtol=1e-6)
    # Entities are keyed by the model's id column: 30% of customers see the challenger.
    expected_mask = challenger_share(df["id"]) < 30
    assert np.array_equal(out["role"].to_numpy() == "challenger", expected_mask)

    reg.promote(v2, "won", force=True)
    assert load_production(settings).version == v2
    assert ChampionChallengerRouter.from_registry(settings).challenger is None


def test_load_production_refuses_a_corrupted_production_file(
    settings: Settings, trained: tuple[list[Path], pd.DataFrame]
) -> None:
    folders, _ = trained
    reg = ModelRegistry(settings.models_dir)
    reg.promote(reg.register(folders[0]), "first")
    pt = reg.production_path() / "model.pt"
    os.chmod(pt, 0o644)
    pt.write_bytes(pt.read_bytes()[:-10])
    with pytest.raises(ModelLoadError, match="checksum mismatch"):
        load_production(settings)


def test_a_broken_challenger_never_takes_the_champion_down(
    settings: Settings, trained: tuple[list[Path], pd.DataFrame]
) -> None:
    folders, df = trained
    reg = ModelRegistry(settings.models_dir)
    v1, v2 = reg.register(folders[0]), reg.register(folders[1])
    reg.promote(v1, "first")
    reg.set_challenger(v2, 50)
    pt = reg.version_path(v2) / "model.pt"
    os.chmod(pt, 0o644)
    pt.write_bytes(pt.read_bytes()[:-10])  # the challenger's file is corrupted on disk

    router = ChampionChallengerRouter.from_registry(settings)
    assert router.challenger is None and router.traffic == 0
    assert router.challenger_problem is not None
    assert v2 in router.challenger_problem and "checksum" in router.challenger_problem
    out = router.score(df)
    assert set(out["version"]) == {v1} and set(out["role"]) == {"champion"}
