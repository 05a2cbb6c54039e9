"""The retraining flow: check triggers → train a candidate → compare → promote or reject.

Call it from Python (``retraining(force_retrain=True)``), as ``python -m flows.retraining``,
or through the ``retraining/weekly`` deployment. Orchestration only: the work is in ``tasks/``
and ``model/``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
from typing import Any

from prefect import flow, get_run_logger, tags
from prefect.client.orchestration import get_client
from prefect.concurrency.sync import concurrency
from prefect.context import get_run_context
from prefect.runtime import flow_run

from model.cycle.config import (
    BatchSize,
    CalibrationMargin,
    DataPath,
    DatasetDriftThreshold,
    Device,
    DriftReportPath,
    Dropout,
    ForceRetrain,
    GateRule,
    Guardrails,
    HiddenSizes,
    IdColumn,
    ImprovementThreshold,
    IncomingPath,
    LearningRate,
    MaxAucDrop,
    MaxDaysSinceTraining,
    MinAuc,
    MinClassCount,
    MinHoursBetweenTrainings,
    MinNewSamples,
    NBootstrap,
    NewestBatches,
    NumEpochs,
    Patience,
    PrimaryMetric,
    RetrainingConfig,
    RetrainingResult,
    RetrainOnSchedule,
    Seed,
    SignificanceLevel,
    TargetColumn,
    ThresholdType,
)
from model.registry import ModelRegistry
from model.settings import get_settings
from tasks.compare import compare_models, history_summary
from tasks.data import prepare_data
from tasks.registry import promote_model, record_event, register_model
from tasks.reporting import (
    emit_promoted_event,
    publish_comparison,
    publish_leaderboard,
    publish_trigger_decision,
)
from tasks.training import train_model
from tasks.trigger import check_trigger

PROMOTION_LIMIT = "retraining-promotion"
DECISION_EVENTS = {"REJECT": "rejected", "INCONCLUSIVE": "inconclusive"}


def ensure_promotion_limit() -> None:
    """Create the global concurrency limit (1 slot) if it does not exist; idempotent."""
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(PROMOTION_LIMIT, 1)


def _run_name() -> str:
    """Say why the run happened: ``retrain-force-…``, ``retrain-drift-…``, ``retrain-schedule-…``.

    Renamed once the triggers are evaluated (``retrain-<primary trigger>-…`` or ``skip-…``).
    """
    params = flow_run.parameters
    if params.get("force_retrain"):
        why = "force"
    elif params.get("drift_report_path"):
        why = "drift"
    elif _is_scheduled():
        why = "schedule"
    else:
        why = "check"
    return f"retrain-{why}-{dt.datetime.now(dt.UTC):%Y-%m-%d-%H%M%S}"


def _is_scheduled() -> bool:
    try:
        return bool(get_run_context().flow_run.auto_scheduled)  # type: ignore[union-attr]
    except Exception:  # no run context: a plain call
        return False


def _cycle_run_id() -> str | None:
    """The top-level ``retraining`` run's id: every history event of one cycle carries it."""
    return str(flow_run.root_flow_run_id) if flow_run.id else None


def _rename_run(name: str) -> None:
    run_id = flow_run.id
    if run_id:
        with get_client(sync_client=True) as client:
            client.update_flow_run(run_id, name=name)


@flow(name="train-candidate", flow_run_name="train-candidate-{trigger[primary]}")
def train_candidate(
    config: dict[str, Any], trigger: dict[str, Any], sources: dict[str, Any]
) -> dict[str, Any]:
    """Prepare data → train → register the candidate. Returns version and prepared folder."""
    cfg = RetrainingConfig(**config)
    settings = get_settings()
    run_id = _cycle_run_id()
    paths = [*([sources["base"]] if sources["base"] else []), *sources["batches"]]
    prepared = prepare_data(paths, cfg.target_column, cfg.id_column, sources["selection"])
    out_dir = settings.runs_dir / (run_id or dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f"))
    why = {
        "trigger": trigger["primary"],
        "reasons": trigger["reasons"],
        "drift_report_path": trigger.get("drift_report_path"),
        "sources": sources,
        "flow_run_id": run_id,
    }
    try:
        model_dir = train_model(
            prepared, str(out_dir), cfg.train_params(), extra_metadata={"training_reason": why}
        )
        version = register_model(model_dir, reason=why, run_id=run_id)
    finally:  # the registry holds its own copy; the scratch folder never outlives the run
        shutil.rmtree(out_dir, ignore_errors=True)
    return {"version": version, "prepared_dir": prepared}


@flow(name="evaluate-and-promote", flow_run_name="evaluate-{candidate_version}")
def evaluate_and_promote(
    config: dict[str, Any], candidate_version: str, prepared_dir: str
) -> dict[str, Any]:
    """Compare candidate and production; promote on PROMOTE, else record the decision.

    The comparison and the promotion hold one slot of the global ``retraining-promotion``
    limit together, so a concurrent cycle compares against the production this one leaves.
    """
    cfg = RetrainingConfig(**config)
    logger = get_run_logger()
    run_id = _cycle_run_id()
    ensure_promotion_limit()
    with concurrency(PROMOTION_LIMIT, occupy=1, strict=True):
        summary = compare_models(candidate_version, prepared_dir, cfg.comparator_params(), run_id)
        decision = summary["decision"]
        reason = "; ".join(summary["reasons"])
        if decision == "PROMOTE":
            comparison = history_summary(summary)
            promote_model(candidate_version, reason, comparison=comparison, run_id=run_id)
    publish_comparison(summary, summary["markdown"])
    if decision == "PROMOTE":
        emit_promoted_event(candidate_version, _key_metrics(summary))
        logger.info("Promoted %s: %s", candidate_version, reason)
    else:
        record_event(
            DECISION_EVENTS[decision],
            version=candidate_version,
            baseline=summary["baseline_version"],
            reasons=summary["reasons"],
            reports=summary["reports"],
            run_id=run_id,
        )
        logger.info("%s %s: %s", decision, candidate_version, reason)
    return summary


def _key_metrics(summary: dict[str, Any]) -> dict[str, Any]:
    keys = ("auc", "f1", "log_loss")
    return {k: summary["metrics"][k]["candidate"] for k in keys if k in summary["metrics"]}


@flow(name="retraining", flow_run_name=_run_name)
def retraining(
    force_retrain: ForceRetrain = False,
    drift_report_path: DriftReportPath = None,
    dataset_drift_threshold: DatasetDriftThreshold = 0.5,
    max_days_since_training: MaxDaysSinceTraining = 30.0,
    min_hours_between_trainings: MinHoursBetweenTrainings = 24.0,
    retrain_on_schedule: RetrainOnSchedule = False,
    min_auc: MinAuc = None,
    max_auc_drop: MaxAucDrop = None,
    min_new_samples: MinNewSamples = None,
    data_path: DataPath = None,
    incoming_path: IncomingPath = None,
    newest_batches: NewestBatches = None,
    target_column: TargetColumn = "target",
    id_column: IdColumn = None,
    num_epochs: NumEpochs = 100,
    batch_size: BatchSize = 512,
    learning_rate: LearningRate = 1e-2,
    patience: Patience = 10,
    hidden_sizes: HiddenSizes | None = None,
    dropout: Dropout = 0.2,
    seed: Seed = 42,
    device: Device = "auto",
    primary_metric: PrimaryMetric = "auc",
    improvement_threshold: ImprovementThreshold = 0.005,
    threshold_type: ThresholdType = "absolute",
    significance_level: SignificanceLevel = 0.05,
    n_bootstrap: NBootstrap = 1000,
    rule: GateRule = "threshold",
    min_class_count: MinClassCount = 100,
    calibration_margin: CalibrationMargin = 0.01,
    guardrails: Guardrails = None,
) -> RetrainingResult:
    """Retrain when a trigger fires, and promote the candidate only if it is better."""
    params = dict(locals())
    params["hidden_sizes"] = params["hidden_sizes"] or [64, 32]
    cfg = RetrainingConfig(**params)
    settings = get_settings()
    registry = ModelRegistry(settings.models_dir)
    logger = get_run_logger()
    run_id = str(flow_run.id) if flow_run.id else None
    candidate: str | None = None
    try:
        with tags("retraining", f"model:{settings.model_name}"):
            trigger = check_trigger(cfg.model_dump(), _is_scheduled())
            publish_trigger_decision(trigger["markdown"], trigger["checks"])
            day = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
            if not trigger["should_retrain"]:
                _rename_run(f"skip-{day}")
                record_event(
                    "skipped", reasons=trigger["reasons"], checks=trigger["checks"], run_id=run_id
                )
                publish_leaderboard()
                prod = registry.production()
                logger.info("No trigger fired: %s", "; ".join(trigger["reasons"]))
                return RetrainingResult(
                    status="skipped",
                    reasons=trigger["reasons"],
                    trigger=trigger["primary"],
                    production_version=prod.version if prod else None,
                    registry=str(settings.models_dir),
                )
            _rename_run(f"retrain-{trigger['primary']}-{day}")
            previous = registry.production()
            trained = train_candidate(cfg.model_dump(), trigger, trigger["sources"])
            candidate = trained["version"]
            summary = evaluate_and_promote(cfg.model_dump(), candidate, trained["prepared_dir"])
            publish_leaderboard()
            prod = registry.production()
            return RetrainingResult(
                status={"PROMOTE": "promoted", "REJECT": "rejected"}.get(
                    summary["decision"], "inconclusive"
                ),  # type: ignore[arg-type]
                reasons=summary["reasons"],
                trigger=trigger["primary"],
                candidate_version=candidate,
                production_version=prod.version if prod else None,
                previous_production_version=previous.version if previous else None,
                metrics=summary["metrics"],
                reports=summary["reports"],
                registry=str(settings.models_dir),
            )
    except Exception as exc:
        registry.record(
            "failed",
            version=candidate,
            error=f"{type(exc).__name__}: {exc}",
            run_id=run_id,
        )
        logger.error("Retraining failed (production untouched): %s", exc)
        raise


def main(argv: list[str] | None = None) -> int:
    """``python -m flows.retraining [--force] [--param key=value ...]``"""
    parser = argparse.ArgumentParser(description=retraining.description)
    parser.add_argument("--force", action="store_true", help="force_retrain=True")
    parser.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any flow parameter; VALUE is parsed as JSON when it can be",
    )
    args = parser.parse_args(argv)
    kwargs: dict[str, Any] = {}
    for item in args.param:
        key, _, raw = item.partition("=")
        try:
            kwargs[key] = json.loads(raw)
        except json.JSONDecodeError:
            kwargs[key] = raw
    if args.force:
        kwargs["force_retrain"] = True
    result = retraining(**kwargs)
    print(result.summary())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
