"""The ``challenger-evaluation`` flow: judge the challenger on live, labelled traffic.

Each run is one look of a group-sequential test (:mod:`model.live.sequential`) over the
labelled rows of the prediction log: PROMOTE promotes the challenger (the evaluation is its
comparison), REJECT clears it, INCONCLUSIVE keeps collecting. Deployed as
``challenger-evaluation/daily`` (prefect.yaml): daily, and on every ``retraining.labels.added``
event. Run it once with ``python -m flows.challenger_evaluation``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from typing import Any

from prefect import flow, get_run_logger, tags
from prefect.runtime import flow_run

from flows.ephemeral import connect_cli_run
from flows.parameter_docs import MODEL_NAME_DEFAULT_TEXT, document_parameters
from flows.promotion import promotion_guard
from flows.run_labels import label_run, live_namer, model_tag
from model.cycle.config import ModelNameParameter
from model.cycle.models_config import live_gate, select_model
from model.errors import RetrainError
from model.live.outcome import LiveSettings
from model.live.params import (
    AsOf,
    LabelsPath,
    LabelWindowHours,
    LiveAlpha,
    LiveMinClassCount,
    LiveMode,
    LiveThreshold,
    NMax,
    Spending,
)
from model.live.sequential import DEFAULT_MIN_CLASS_COUNT, DEFAULT_N_MAX
from model.settings import get_settings, model_scope
from tasks.events import emit_promoted_event
from tasks.live import (
    REJECTED_EVENT,
    act_on_evaluation,
    emit_live_event,
    look_at_challenger,
    publish_live_report,
)
from tasks.reporting import publish_leaderboard


@flow(name="challenger-evaluation", flow_run_name=live_namer("challenger-evaluation"))
@document_parameters(
    config_filled=("significance_level", "improvement_threshold"),
    shown_defaults={"model_name": MODEL_NAME_DEFAULT_TEXT},
)
def challenger_evaluation(
    model_name: ModelNameParameter = None,
    significance_level: LiveAlpha | None = None,
    n_max: NMax = DEFAULT_N_MAX,
    improvement_threshold: LiveThreshold | None = None,
    mode: LiveMode = "shadow",
    spending: Spending = "obrien_fleming",
    min_class_count: LiveMinClassCount = DEFAULT_MIN_CLASS_COUNT,
    label_window_hours: LabelWindowHours = 0.0,
    labels_path: LabelsPath = None,
    as_of: AsOf = None,
) -> dict[str, Any]:
    """One look of the challenger's sequential evaluation on the labelled prediction log."""
    name = select_model(model_name, get_settings(), "flow parameter model_name")
    cfg = LiveSettings(
        n_max=n_max,
        spending=spending,
        min_class_count=min_class_count,
        mode=mode,
        label_window_hours=label_window_hours,
        **live_gate(name, significance_level, improvement_threshold),
    )
    logger = get_run_logger()
    run_id = str(flow_run.id) if flow_run.id else None
    with model_scope(name), tags(model_tag(name)):
        label_run(name)  # the tag model:<name> on this run itself
        if labels_path:
            logger.info("Triggered by labelled rows in %s", labels_path)
        with promotion_guard():
            outcome = look_at_challenger(asdict(cfg), as_of)
            act_on_evaluation(outcome, run_id)
        publish_live_report(outcome)
        decision = outcome["decision"]
        if outcome["status"] == "looked" and decision == "PROMOTE":
            look = outcome["look"] or {}
            emit_promoted_event(outcome["candidate_version"], {"auc": look.get("auc_candidate")})
            publish_leaderboard()
        elif outcome["status"] == "looked" and decision == "REJECT":
            emit_live_event(REJECTED_EVENT, outcome)
            publish_leaderboard()
        logger.info("%s: %s", decision or outcome["status"], "; ".join(outcome["reasons"]))
        return outcome


def main(argv: list[str] | None = None) -> int:
    """``python -m flows.challenger_evaluation [--routed]``: exit 0, or 2 for bad input."""
    parser = argparse.ArgumentParser(description=challenger_evaluation.description)
    parser.add_argument("--model", default=None, metavar="NAME", help="model_name")
    parser.add_argument("--routed", action="store_true", help="mode=routed (default shadow)")
    parser.add_argument("--n-max", type=int, default=DEFAULT_N_MAX)
    args = parser.parse_args(argv)
    try:
        connect_cli_run()  # a running `make stack-up` server, else a temporary one
        out = challenger_evaluation(
            model_name=args.model, mode="routed" if args.routed else "shadow", n_max=args.n_max
        )
    except RetrainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({k: out[k] for k in ("status", "decision", "reasons", "reports")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
