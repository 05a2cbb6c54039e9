"""The ``post-promotion-watch`` flow: roll a new production back when it does worse live.

After every promotion the previous production keeps scoring in shadow; each run is one look of
a one-sided group-sequential test (:mod:`model.live.sequential`) of "the new production is
worse than the previous by more than ``watch_margin`` AUC" on the labelled rows since the
promotion. ROLLBACK restores the previous version (``registry.rollback``, the evidence as
reason) and emits ``retraining.model.rolled_back``, which the scoring service follows. The
watch ends by evidence: a rollback, or KEEP at ``watch_rows`` labelled rows; ``watch_max_days``
is only its maximum age. Any manual promotion or rollback ends it too. Deployed as
``post-promotion-watch/daily`` (prefect.yaml).
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
from model.cycle.models_config import select_model
from model.errors import RetrainError
from model.live.outcome import (
    DEFAULT_WATCH_ALPHA,
    DEFAULT_WATCH_MAX_DAYS,
    DEFAULT_WATCH_ROWS,
    LiveSettings,
)
from model.live.params import (
    AsOf,
    LabelsPath,
    LabelWindowHours,
    LiveMinClassCount,
    Spending,
    WatchAlpha,
    WatchMargin,
    WatchMaxDays,
    WatchRows,
)
from model.live.sequential import DEFAULT_MIN_CLASS_COUNT, DEFAULT_WATCH_MARGIN
from model.settings import get_settings, model_scope
from tasks.events import emit_estimate_missed
from tasks.live import (
    ROLLED_BACK_EVENT,
    act_on_watch,
    check_estimates,
    emit_live_event,
    look_at_watch,
    publish_live_report,
)
from tasks.reporting import publish_leaderboard


@flow(name="post-promotion-watch", flow_run_name=live_namer("post-promotion-watch"))
@document_parameters(config_filled=(), shown_defaults={"model_name": MODEL_NAME_DEFAULT_TEXT})
def post_promotion_watch(
    model_name: ModelNameParameter = None,
    watch_alpha: WatchAlpha = DEFAULT_WATCH_ALPHA,
    watch_margin: WatchMargin = DEFAULT_WATCH_MARGIN,
    watch_max_days: WatchMaxDays = DEFAULT_WATCH_MAX_DAYS,
    watch_rows: WatchRows = DEFAULT_WATCH_ROWS,
    spending: Spending = "obrien_fleming",
    min_class_count: LiveMinClassCount = DEFAULT_MIN_CLASS_COUNT,
    label_window_hours: LabelWindowHours = 0.0,
    labels_path: LabelsPath = None,
    as_of: AsOf = None,
) -> dict[str, Any]:
    """One look of the watch over the newest promotion; roll back when shown worse. Then
    production's label-free estimates whose rows now have labels are held against them."""
    cfg = LiveSettings(
        spending=spending,
        min_class_count=min_class_count,
        label_window_hours=label_window_hours,
        watch_margin=watch_margin,
        watch_alpha=watch_alpha,
        watch_max_days=watch_max_days,
        watch_rows=watch_rows,
    )
    logger = get_run_logger()
    run_id = str(flow_run.id) if flow_run.id else None
    name = select_model(model_name, get_settings(), "flow parameter model_name")
    with model_scope(name), tags(model_tag(name)):
        label_run(name)  # the tag model:<name> on this run itself
        if labels_path:
            logger.info("Triggered by labelled rows in %s", labels_path)
        with promotion_guard():
            outcome = look_at_watch(asdict(cfg), as_of)
            restored = act_on_watch(outcome, run_id)
        publish_live_report(outcome)
        outcome["restored"] = restored
        outcome["estimates_checked"] = check_estimates(as_of, label_window_hours)
        for checked in outcome["estimates_checked"]:
            if checked.get("missed"):
                emit_estimate_missed(name, checked)
        if restored:
            emit_live_event(ROLLED_BACK_EVENT, outcome, version=restored)
            publish_leaderboard()
            logger.warning("Rolled back to %s: %s", restored, "; ".join(outcome["reasons"]))
        else:
            logger.info(
                "%s: %s", outcome["decision"] or outcome["status"], "; ".join(outcome["reasons"])
            )
        return outcome


def main(argv: list[str] | None = None) -> int:
    """``python -m flows.post_promotion_watch``: exit 0, or 2 for bad input."""
    parser = argparse.ArgumentParser(description=post_promotion_watch.description)
    parser.add_argument("--model", default=None, metavar="NAME", help="model_name")
    args = parser.parse_args(argv)
    try:
        connect_cli_run()  # a running `make stack-up` server, else a temporary one
        out = post_promotion_watch(model_name=args.model)
    except RetrainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    keys = ("status", "decision", "reasons", "restored", "reports")
    print(json.dumps({k: out.get(k) for k in keys}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
