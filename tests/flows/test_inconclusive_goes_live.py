"""An INCONCLUSIVE candidate goes on collecting evidence (issue 23): the retraining flow makes
it the shadow challenger, the real scoring service scores it on every row beside production,
``retrain labels add`` joins the labels, and the ``challenger-evaluation`` flow promotes it on
live labels. The history reads compared (INCONCLUSIVE), challenger, challenger_evaluated,
promoted."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from deployments.scoring.demo import send_traffic, start_service, stop_service
from flows.challenger_evaluation import challenger_evaluation
from flows.retraining import retraining
from model.cli import main
from model.data.demo import make_customers, write_parquet_atomic
from model.registry import ModelRegistry
from model.serving.log import log_folder
from model.settings import Settings

pytestmark = pytest.mark.slow

FAST: dict[str, Any] = {
    "num_epochs": 6,
    "batch_size": 128,
    "patience": None,
    "n_bootstrap": 200,
    "id_column": "id",
    "min_hours_between_trainings": 0.0,
}


def test_an_inconclusive_candidate_is_shadow_scored_and_promoted_on_live_labels(
    prefect_harness: None, settings: Settings
) -> None:
    # production: a model that learned nothing (its labels shuffled)
    base = make_customers(3000, 42)
    base["target"] = np.random.default_rng(0).permutation(base["target"].to_numpy())
    write_parquet_atomic(base, settings.raw_data_path)
    assert retraining(**FAST).status == "promoted"
    # the candidate: the right labels, but too few rows for the holdout to decide
    small = settings.data_dir / "raw" / "small.parquet"
    write_parquet_atomic(make_customers(600, 43), small)
    result = retraining(force_retrain=True, data_path=str(small), **FAST)
    assert result.status == "inconclusive", result.reasons
    assert "too little evidence" in result.reasons[0]
    registry = ModelRegistry(settings.models_dir)
    challenger = registry.challenger()
    assert challenger is not None and challenger.version == result.candidate_version
    assert challenger.traffic == 0.0  # shadow only: it serves no one
    # the real service: production answers, the challenger scores every row in shadow
    traffic = make_customers(2000, 11)
    rows = traffic.drop(columns="target").to_dict(orient="records")
    proc, port = start_service(settings, "--flush-seconds", "1")
    try:
        served = send_traffic(port, rows, chunk=200)
    finally:
        stop_service(proc)
    assert served == {"v0001": 2000}
    logged = pq.read_table(log_folder(settings.predictions_dir, "demo")).to_pandas()
    assert set(logged["__shadow_version__"]) == {challenger.version}
    # the labels arrive late
    labels = settings.root / "labels.csv"
    traffic[["id", "target"]].to_csv(labels, index=False)
    assert (
        main(["labels", "add", str(labels), "--id-column", "id", "--label-column", "target"]) == 0
    )
    # one look of the live evaluation: promoted on the labelled, paired rows
    outcome = challenger_evaluation(n_max=1000)
    assert outcome["decision"] == "PROMOTE", outcome["reasons"]
    prod = registry.production()
    assert prod is not None and prod.version == challenger.version
    assert registry.challenger() is None
    kinds = [e["event"] for e in registry.history() if e["event"] != "registered"]
    tail = kinds[kinds.index("promoted", 1) + 1 :]  # after the first model's promotion
    wanted = ["compared", "challenger", "challenger_evaluated", "promoted"]
    assert [k for k in tail if k in wanted] == wanted, tail
    compared = registry.last_event("compared")
    assert compared is not None and compared["decision"] == "INCONCLUSIVE"
    assert compared["alpha_spent"] == 0.0 and "too little evidence" in compared["untested"]
    set_event = registry.last_event("challenger")
    assert set_event is not None and set_event["mode"] == "shadow"
    assert "INCONCLUSIVE" in set_event["reason"]
    promoted = registry.last_event("promoted")
    assert promoted is not None and "challenger evaluation on live labels" in promoted["reason"]
