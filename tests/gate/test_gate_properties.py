"""Property-based test of the comparator (issue 12): whatever the holdout and the scores, a
comparison either succeeds or fails with a short ``RetrainError`` — never another exception,
never a hang (each example is bounded by ``signal.alarm``)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fakes import time_limit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from model.errors import RetrainError
from model.gate.comparator import ModelComparator

SECONDS = 20


class Scored:
    """A model whose scores are a column of the holdout (whatever its dtype)."""

    def __init__(self, column: str) -> None:
        self.column = column
        self.spec = SimpleNamespace(features=["f"], target="target")
        self.decision_threshold = 0.5

    def predict_proba(self, df: pd.DataFrame) -> Any:
        return df[self.column].to_numpy()


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
anything = st.one_of(
    finite,
    st.floats(),  # NaN and infinities
    st.floats(min_value=-1e308, max_value=1e308),
    st.sampled_from([0.0, 1.0, 0.5, 1e-300, 1 - 1e-16]),
)
labels = st.one_of(
    st.sampled_from([0, 1]),
    st.sampled_from([True, False]),
    st.sampled_from(["yes", "no", "", None]),
    st.integers(-3, 3),
)


@st.composite
def holdouts(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(0, 300))
    probabilities = st.floats(0.0, 1.0)
    score = st.one_of(probabilities, anything) if draw(st.booleans()) else probabilities
    frame = pd.DataFrame(
        {
            "f": draw(st.lists(anything, min_size=n, max_size=n)),
            "target": draw(st.lists(labels, min_size=n, max_size=n)),
            "b": draw(st.lists(score, min_size=n, max_size=n)),
            "c": draw(st.lists(score, min_size=n, max_size=n)),
        }
    )
    if draw(st.booleans()):
        frame = frame.drop(columns=[draw(st.sampled_from(list(frame.columns)))])
    return frame


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    frame=holdouts(),
    options=st.fixed_dictionaries(
        {
            "primary_metric": st.sampled_from(["auc", "f1", "log_loss", "accuracy", "brier"]),
            "improvement_threshold": st.sampled_from([0.0, 0.005, 0.02, 1.0]),
            "min_class_count": st.sampled_from([2, 5, 100]),
            "holdout_uses": st.integers(1, 50),
            "rule": st.sampled_from(["threshold", "lab"]),
        }
    ),
    with_baseline=st.booleans(),
    recent=st.one_of(st.none(), st.integers(0, 2**32 - 1)),
)
def test_any_holdout_gives_a_decision_or_a_short_error(
    frame: pd.DataFrame, options: dict[str, Any], with_baseline: bool, recent: int | None
) -> None:
    gate = ModelComparator(n_bootstrap=20, n_jobs=1, **options)
    mask = None
    if recent is not None:
        mask = np.random.default_rng(recent).random(len(frame)) < 0.5
    with time_limit(SECONDS, "the comparison"):
        try:
            result = gate.compare(
                Scored("b") if with_baseline else None, Scored("c"), frame, recent=mask
            )
        except RetrainError as exc:
            assert len(str(exc)) <= 300, str(exc)
            return
    assert result.decision in ("PROMOTE", "REJECT", "INCONCLUSIVE")
    if with_baseline and result.decision == "PROMOTE":
        assert result.lower_bound is not None
        assert result.lower_bound > result.threshold_absolute
    assert result.to_dict()["decision"] == result.decision


def test_a_model_that_cannot_score_the_holdout_is_a_one_line_error() -> None:
    """Hypothesis found it: a holdout without the column a model reads raised the model's own
    KeyError from inside the gate."""
    frame = pd.DataFrame({"f": [0.0, 1.0], "target": [0, 1], "c": [0.2, 0.8]})
    gate = ModelComparator(n_bootstrap=20, n_jobs=1, min_class_count=2)
    with pytest.raises(RetrainError, match=r"^the baseline model could not score the holdout "):
        gate.compare(Scored("b"), Scored("c"), frame)
