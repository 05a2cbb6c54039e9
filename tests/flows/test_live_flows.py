"""The live flows end to end on demo data (issue 16's Done-when), through the Prefect harness.

A good model is production; a deliberately worse one (trained on shuffled labels) is promoted
with force; traffic is scored by the new production with the previous one in shadow and
labelled (the prediction log is written in the adapter's format by ``tests/prediction_log.py``,
standing in for the scoring service of issue 15); the ``post-promotion-watch`` flow rolls it
back, the serving loader answers with the previous version, and the history shows forced,
watch_checked, rolled_back in order. Then the worse model, set as challenger, is rejected by
the ``challenger-evaluation`` flow.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from prediction_log import write_log
from prefect.artifacts import Artifact

from flows.challenger_evaluation import challenger_evaluation
from flows.post_promotion_watch import post_promotion_watch
from model.data.demo import make_customers
from model.live import labelled_log as log
from model.registry import ModelRegistry
from model.serving.loading import load_production
from model.settings import Settings
from model.training import TrainParams
from model.training.artifact import load_model, save_model
from model.training.loop import train

PARAMS = TrainParams(num_epochs=3, batch_size=256, patience=None, learning_rate=1e-2)


def _train(df: pd.DataFrame, folder: Path, shuffle: bool) -> Path:
    df = df.copy()
    if shuffle:  # a deliberately worse model: labels carry no signal
        df["target"] = np.random.default_rng(0).permutation(df["target"].to_numpy())
    result = train(df.iloc[:1200], df.iloc[1200:], PARAMS)
    return save_model(result, folder)


def _traffic(
    settings: Settings, reg: ModelRegistry, rows: pd.DataFrame, start: dt.datetime
) -> None:
    """Production answers, the previous production scores in shadow, labels joined."""
    prod = reg.production()
    previous = reg.previous_production()
    assert prod is not None and previous is not None
    served = load_model(reg.version_path(prod.version)).predict_proba(rows)
    shadow = load_model(reg.version_path(previous)).predict_proba(rows)
    times = start + pd.to_timedelta(np.linspace(0, 2.5, len(rows)), unit="D")
    frame = pd.DataFrame(
        {
            log.REQUEST_TIME: times,
            log.ID: rows["id"].to_numpy(),
            log.SERVED_VERSION: prod.version,
            log.SERVED_SCORE: served,
            log.ROLE: "champion",
            log.SHADOW_VERSION: previous,
            log.SHADOW_SCORE: shadow,
            log.LABEL: rows["target"].to_numpy(float),
        }
    )
    write_log(settings.root, settings.model_name, frame)


@pytest.mark.slow
def test_watch_rolls_back_a_forced_worse_model_and_evaluation_rejects_it(
    prefect_harness: None, settings: Settings, tmp_path: Path
) -> None:
    customers = make_customers(rows=4000, seed=11)
    reg = ModelRegistry(settings.models_dir)
    good = reg.register(_train(customers.iloc[:1600], tmp_path / "good", shuffle=False))
    bad = reg.register(_train(customers.iloc[:1600], tmp_path / "bad", shuffle=True))
    reg.promote(good, "first production model")
    reg.promote(bad, "deliberately worse (shuffled labels)", force=True)
    forced_at = pd.Timestamp(reg.history()[-1]["time"]).to_pydatetime()
    _traffic(settings, reg, customers.iloc[1600:], forced_at)

    outcomes = []
    for day in (1, 2, 3):  # daily runs as the labels of each day close
        as_of = (forced_at + dt.timedelta(days=day)).isoformat()
        outcomes.append(post_promotion_watch(as_of=as_of))
        if outcomes[-1].get("restored"):
            break
    last = outcomes[-1]
    assert last["decision"] == "ROLLBACK" and last["restored"] == good
    assert "worse than the previous by more than 0.01" in last["reasons"][0]
    for path in last["reports"].values():
        assert Path(path).is_file()
    # the service's loader now answers with the previous version
    served = load_production(settings)
    assert served.metadata["sha256"] == reg.metadata(good)["sha256"]
    kinds = [
        e["event"]
        for e in reg.history()
        if e["event"] in ("forced", "watch_checked", "rolled_back", "promoted")
    ]
    assert kinds == ["promoted", "forced", *["watch_checked"] * len(outcomes), "rolled_back"]
    rolled = reg.last_event("rolled_back")
    assert rolled is not None and "post-promotion watch" in rolled["reason"]
    assert Artifact.get("post-promotion-watch") is not None
    # the watch is over: a later run has nothing to watch
    assert post_promotion_watch()["status"] == "skipped"

    # the worse model as challenger, judged on the same (paired) rows: rejected and cleared
    reg.set_challenger(bad, 100)
    evaluation = challenger_evaluation(as_of=(forced_at + dt.timedelta(days=4)).isoformat())
    assert evaluation["decision"] == "REJECT"
    assert reg.challenger() is None
    ev = reg.last_event("challenger_evaluated")
    assert ev is not None and 0 < ev["alpha_spent"] <= ev["alpha_total"] == 0.05  # full alpha
    prod = reg.production()
    assert prod is not None and prod.version == good


def test_bad_parameter_is_refused_before_any_work(
    prefect_harness: None, settings: Settings
) -> None:
    from prefect.exceptions import ParameterTypeError

    with pytest.raises(ParameterTypeError):
        post_promotion_watch(watch_margin=-1.0)
    assert not settings.models_dir.exists()
