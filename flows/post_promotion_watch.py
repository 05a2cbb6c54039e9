"""The ``post-promotion-watch`` flow: roll a new production back when it does worse live.

After every promotion the previous production keeps scoring in shadow; each run is one look of
a one-sided group-sequential test (:mod:`model.gate.sequential`) of "the new production is
worse than the previous by more than ``watch_margin`` AUC" on the labelled rows since the
promotion. ROLLBACK restores the previous version (``registry.rollback``, the evidence as
reason) and emits ``retraining.model.rolled_back``, which the scoring service follows. The
watch ends when its window closes (``watch_days`` or ``watch_rows``), or at any manual
promotion or rollback. Deployed as ``post-promotion-watch/daily`` (prefect.yaml).
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
from flows.retraining import promotion_guard
from flows.run_labels import label_run, live_namer, model_tag
from model.cycle.config import ModelNameParameter
from model.cycle.live import LiveSettings
from model.cycle.live_params import (
    AsOf,
    LabelsPath,
    LabelWindowHours,
    LiveAlpha,
    LiveMinClassCount,
    Spending,
    WatchDays,
    WatchMargin,
    WatchRows,
)
from model.cycle.models_config import select_model
from model.errors import RetrainError
from model.settings import get_settings, model_scope
from tasks.live import (
    ROLLED_BACK_EVENT,
    act_on_watch,
    emit_live_event,
    look_at_watch,
    publish_live_report,
)
from tasks.reporting import publish_leaderboard


@flow(name="post-promotion-watch", flow_run_name=live_namer("post-promotion-watch"))
def post_promotion_watch(
    model_name: ModelNameParameter = None,
    significance_level: LiveAlpha = 0.05,
    watch_margin: WatchMargin = 0.01,
    watch_days: WatchDays = 14.0,
    watch_rows: WatchRows = 5000,
    spending: Spending = "obrien_fleming",
    min_class_count: LiveMinClassCount = 100,
    label_window_hours: LabelWindowHours = 0.0,
    labels_path: LabelsPath = None,
    as_of: AsOf = None,
) -> dict[str, Any]:
    """One look of the watch over the newest promotion; roll back when shown worse.

    Args:
        model_name: The model this run is for: its `[models.<name>]` table in
            retraining.toml and its event resource `retraining.model.<name>` (1 to 63
            characters from a-z, 0-9 and '-').
        significance_level: Challenger: the family's error budget (this evaluation spends
            alpha_k); watch: the level of the rollback test.
        watch_margin: Roll back only when the new production is worse by more than this AUC.
        watch_days: Days after a promotion that the watch lasts.
        watch_rows: Labelled rows at which the watch ends.
        spending: Alpha spending function over the information fraction n / n_max.
        min_class_count: A look with fewer positives or negatives tests nothing and spends
            nothing.
        label_window_hours: Hours after a request before its label is final; younger rows
            wait.
        labels_path: The labelled batch that triggered this run (recorded; the whole log is
            read).
        as_of: Evaluate as of this UTC time (ISO 8601); default: now.
    """
    cfg = LiveSettings(
        alpha=significance_level,
        spending=spending,
        min_class_count=min_class_count,
        label_window_hours=label_window_hours,
        watch_margin=watch_margin,
        watch_days=watch_days,
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
