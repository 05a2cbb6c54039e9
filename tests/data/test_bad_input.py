"""Hostile input to the data layer (issue 12): huge values, non-regular files, folders whose
files disagree, corrupted Parquet pages, edited manifests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from model.data import prepare
from model.data.messages import quote, quote_list
from model.errors import DataValidationError


def frame(rows: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x": rng.normal(size=rows),
            "color": rng.choice(["red", "green", "blue"], rows),
            "target": rng.integers(0, 2, rows),
        }
    )


def write_parquet(df: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_parquet(path, index=False)
    return path


# ---------------------------------------------------------------- huge values


def test_quote_keeps_messages_short() -> None:
    huge = "é" * 5_000_000
    text = quote(huge)
    assert len(text) < 120 and "(5,000,000 characters)" in text and text.startswith("'éé")
    assert quote("red") == "'red'" and quote(3) == "3"
    assert len(quote("\x00" * 1000)) < 120  # escapes do not multiply the length
    assert len(quote(list(range(100_000)))) <= 80
    assert quote_list(["a", "b"]) == "['a', 'b']"
    many = quote_list([f"column_{i}" for i in range(1000)])
    assert len(many) < 200 and many.endswith("more]")


def test_a_huge_value_gives_a_short_message(tmp_path: Path) -> None:
    df = frame()
    df["x"] = df["x"].astype(object)
    df.loc[150:, "x"] = "y" * 1_000_000  # mixed types: mostly numbers, some text
    path = tmp_path / "huge.csv"
    df.to_csv(path, index=False)
    with pytest.raises(DataValidationError) as info:
        prepare(path, tmp_path / "out")
    message = str(info.value)
    assert len(message) < 300 + len(str(path))
    assert "'x' has mixed types" in message and "(1,000,000 characters) at row 150" in message


def test_a_huge_target_label_gives_a_short_message(tmp_path: Path) -> None:
    df = frame()
    df["target"] = ["a" * 900 + str(i % 3) for i in range(len(df))]  # within the level limit
    with pytest.raises(DataValidationError, match="is not binary") as info:
        prepare(df, tmp_path / "out")
    assert len(str(info.value)) < 400


def test_categorical_level_longer_than_the_limit_is_an_error(tmp_path: Path) -> None:
    df = frame()
    df.loc[7, "color"] = "r" * 50_000
    with pytest.raises(DataValidationError) as info:
        prepare(df, tmp_path / "out")
    message = str(info.value)
    assert "column 'color'" in message and "row 7" in message and "50,000 characters" in message
    assert "1,000" in message and len(message) < 300
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    df.loc[7, "color"] = "r" * 1_000  # at the limit: accepted
    assert prepare(df, tmp_path / "out").rows == len(df)


def test_target_label_longer_than_the_limit_is_an_error(tmp_path: Path) -> None:
    df = frame()
    df["target"] = np.where(df["target"] == 1, "churn" * 1_000, "stay")
    with pytest.raises(DataValidationError, match=r"column 'target'.*5,000 characters"):
        prepare(df, tmp_path / "out")


def test_column_name_longer_than_the_limit_is_an_error(tmp_path: Path) -> None:
    df = frame().rename(columns={"color": "c" * 5_000})
    with pytest.raises(DataValidationError, match=r"column name of 5,000 characters") as info:
        prepare(df, tmp_path / "out")
    assert len(str(info.value)) < 300
