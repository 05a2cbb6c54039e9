"""Run names (issue 24): which names are ours, which Prefect generated, which the user chose."""

from __future__ import annotations

import datetime as dt

import coolname

from flows.run_labels import chosen_name, generated
from model.cycle.naming import (
    live_run_name,
    model_run_name,
    outcome_text,
    retrain_run_name,
    user_run_name,
)

AT = dt.datetime(2026, 11, 28, 3, 15, 2, tzinfo=dt.UTC)


def test_names_carry_the_model_first() -> None:
    name = retrain_run_name("drift", AT, "PROMOTE", "v0004")
    assert model_run_name("churn", name) == "churn · retrain-drift-2026-11-28T031502-PROMOTED-v0004"
    assert outcome_text("REJECT", "v0005") == "REJECTED-v0005" and outcome_text(None) is None
    assert user_run_name("nightly", "PROMOTED-v0004") == "nightly · PROMOTED-v0004"
    assert live_run_name("post-promotion-watch", AT) == "post-promotion-watch-2026-11-28T031502"


def test_generated_ours_and_chosen_names_are_told_apart() -> None:
    for _ in range(500):  # every name Prefect generates is recognised as generated
        assert generated(coolname.generate_slug(2))
    for ours in (
        "demo · retrain-force-2026-11-28T031502",
        "retrain-no-production-2026-11-28T031502-PROMOTED-v0001",
        "churn · skip-cooldown-drift-2026-11-28T031502",
        "demo · drift-2026-11-28-no-new-data",
        "demo · challenger-evaluation-2026-11-28T031502",
    ):
        assert chosen_name(ours) is None, ours
    for chosen in ("nightly-rerun", "my run", "retrain-x", "Q4 refresh"):
        assert chosen_name(chosen) == chosen
