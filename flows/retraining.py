"""The retraining flow: check triggers → train a candidate → compare → promote or reject.

Call it from Python (``retraining(force_retrain=True)``), as ``python -m flows.retraining``,
or through the ``retraining/weekly`` deployment. Orchestration only: the work is in ``tasks/``
and ``model/``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import shutil
import sys
import uuid
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, tags
from prefect.context import get_run_context
from prefect.runtime import flow_run

from flows.ephemeral import connect_cli_run
from flows.evaluate import cycle_run_id, evaluate_and_promote
from flows.parameter_docs import MODEL_NAME_DEFAULT_TEXT, document_parameters
from flows.promotion import (  # noqa: F401  (re-exported: tests and callers use these names)
    PROMOTION_LEASE_S,
    PROMOTION_LIMIT,
    ensure_promotion_limit,
    promotion_guard,
    uses_api_server,
)
from flows.run_labels import label_run, model_of_run, run_name
from flows.sweep import train_candidates
from model.cycle.config import (
    BatchSize,
    CalibrationMargin,
    CategoricalColumns,
    CudaBatchSize,
    DataEngine,
    DataPath,
    DatasetDriftThreshold,
    Device,
    DriftReportPath,
    Dropout,
    EstimatedAucMargin,
    ExcludeColumns,
    ForceRetrain,
    GateRule,
    GuardrailMode,
    Guardrails,
    HiddenSizes,
    HoldoutMargin,
    IdColumn,
    ImprovementThreshold,
    IncomingPath,
    InconclusiveChallenger,
    LearningRate,
    MaxAucDrop,
    MaxDaysSinceTraining,
    MaxImputedRowShare,
    MinAuc,
    MinClassCount,
    MinDriftedFeatures,
    MinHoursBetweenTrainings,
    MinNewSamples,
    ModelNameParameter,
    NBootstrap,
    NewestBatches,
    NumEpochs,
    NumericColumns,
    Patience,
    PrimaryMetric,
    RetrainingConfig,
    RetrainingResult,
    RetrainOnSchedule,
    Seed,
    SignificanceLevel,
    Sweep,
    TargetColumn,
    ThresholdType,
)
from model.cycle.locks import CycleScratch, model_lock
from model.cycle.models_config import (
    BUILTIN_DEFAULTS,
    DEFAULT_MODEL,
    resolve_run,
    sources_markdown,
)
from model.cycle.naming import outcome_text, retrain_run_name, skip_run_name, suppressed_trigger
from model.errors import ParameterError, RetrainError
from model.registry import ModelRegistry
from model.settings import get_settings, model_scope
from tasks.batches import screen_batches
from tasks.cycle import recover_dead_cycles_task
from tasks.data import prepare_cycle_data
from tasks.events import FAILED_EVENT, SKIPPED_EVENT, emit_cycle_event
from tasks.faults import kill_point
from tasks.registry import record_event, register_model
from tasks.reporting import (
    publish_comparison,
    publish_leaderboard,
    publish_trigger_decision,
)
from tasks.training import train_model
from tasks.trigger import check_trigger


def _why() -> str:
    """Why the run happened, from its parameters: force, drift, schedule or check."""
    params = flow_run.parameters
    if params.get("force_retrain"):
        return "force"
    if params.get("drift_report_path"):
        return "drift"
    if _is_scheduled():
        return "schedule"
    return "check"


def _run_name() -> str:
    """``<model> · retrain-<why>-<time>`` (why: force, drift, schedule, check), or the name
    the user chose. Renamed once the triggers are evaluated, and again with the outcome
    (``model.cycle.naming``, ``flows.run_labels``)."""
    return run_name(model_of_run(), f"retrain-{_why()}-{dt.datetime.now(dt.UTC):%Y-%m-%dT%H%M%S}")


def _is_scheduled() -> bool:
    try:
        return bool(get_run_context().flow_run.auto_scheduled)  # type: ignore[union-attr]
    except Exception:  # no run context: a plain call
        return False


@flow(name="train-candidate", flow_run_name="train-candidate-{trigger[primary]}")
def train_candidate(
    config: dict[str, Any],
    trigger: dict[str, Any],
    sources: dict[str, Any],
    out_dir: str | None = None,
) -> dict[str, Any]:
    """Prepare data → train → register the candidate. Returns version and prepared folder.

    The model is written to ``out_dir`` (default: a new folder under ``runs/``), removed once
    the registry holds its copy.
    """
    cfg = RetrainingConfig(**config)
    with model_scope(cfg.model_name):
        settings = get_settings()
        run_id = cycle_run_id()
        prepared = prepare_cycle_data(cfg, sources)
        scratch = (
            settings.runs_dir / (run_id or uuid.uuid4().hex) / f"candidate-{uuid.uuid4().hex[:8]}"
        )
        out = out_dir or str(scratch)
        why = {
            "trigger": trigger["primary"],
            "reasons": trigger["reasons"],
            "drift_report_path": trigger.get("drift_report_path"),
            "sources": sources,
            "flow_run_id": run_id,
        }
        try:
            model_dir = train_model(
                prepared,
                out,
                cfg.train_params(),
                extra_metadata={"training_reason": why},
                model_name=cfg.model_name,
            )
            version = register_model(model_dir, reason=why, run_id=run_id)
            get_run_logger().info(
                "Registered %s at %s",
                version,
                ModelRegistry(settings.models_dir).version_path(version),
            )
            kill_point("registering")
        finally:  # the registry holds its own copy; a killed run's is removed by the next cycle
            shutil.rmtree(out, ignore_errors=True)
        return {"version": version, "prepared_dir": prepared}


RETRAINING_SUMMARY = "Retrain when a trigger fires, and promote the candidate only if it is better."


@flow(name="retraining", flow_run_name=_run_name, description=RETRAINING_SUMMARY)
@document_parameters(shown_defaults={"model_name": MODEL_NAME_DEFAULT_TEXT})
def retraining(
    model_name: ModelNameParameter = None,
    force_retrain: ForceRetrain = False,
    drift_report_path: DriftReportPath = None,
    dataset_drift_threshold: DatasetDriftThreshold | None = None,
    min_drifted_features: MinDriftedFeatures = None,
    estimated_auc_margin: EstimatedAucMargin = None,
    max_days_since_training: MaxDaysSinceTraining | None = None,
    min_hours_between_trainings: MinHoursBetweenTrainings | None = None,
    retrain_on_schedule: RetrainOnSchedule | None = None,
    min_auc: MinAuc = None,
    max_auc_drop: MaxAucDrop = None,
    min_new_samples: MinNewSamples = None,
    data_path: DataPath = None,
    incoming_path: IncomingPath = None,
    newest_batches: NewestBatches = None,
    target_column: TargetColumn | None = None,
    id_column: IdColumn = None,
    categorical_columns: CategoricalColumns = None,
    numeric_columns: NumericColumns = None,
    exclude_columns: ExcludeColumns = None,
    max_imputed_row_share: MaxImputedRowShare | None = None,
    primary_metric: PrimaryMetric | None = None,
    improvement_threshold: ImprovementThreshold | None = None,
    threshold_type: ThresholdType | None = None,
    significance_level: SignificanceLevel | None = None,
    n_bootstrap: NBootstrap | None = None,
    rule: GateRule | None = None,
    min_class_count: MinClassCount | None = None,
    calibration_margin: CalibrationMargin = None,
    guardrails: Guardrails = None,
    guardrail_mode: GuardrailMode | None = None,
    holdout_margin: HoldoutMargin | None = None,
    inconclusive_challenger: InconclusiveChallenger | None = None,
    num_epochs: NumEpochs | None = None,
    batch_size: BatchSize | None = None,
    cuda_batch_size: CudaBatchSize = None,
    learning_rate: LearningRate | None = None,
    patience: Patience = None,
    hidden_sizes: HiddenSizes | None = None,
    dropout: Dropout | None = None,
    seed: Seed | None = None,
    device: Device | None = None,
    sweep: Sweep = None,
    data_engine: DataEngine = None,
) -> RetrainingResult:
    """Retrain when a trigger fires, and promote the candidate only if it is better.

    A parameter left at None takes the model's value in ``retraining.toml``, else the
    built-in default (``model.cycle.models_config``); where each came from is logged and shown
    in the ``trigger-decision`` artifact. Every parameter is checked first, the gate's options
    included (one line, before any work). The cycle then holds its cycle lock and scratch
    folder (``runs/<run id>/``) for its whole life, and first settles what dead cycles left.
    """
    explicit = dict(locals())
    settings = get_settings()
    cfg, sources = resolve_run(explicit, settings)
    with model_scope(cfg.model_name):
        settings = settings.for_model(cfg.model_name)
        registry = ModelRegistry(settings.models_dir)
        run_id = str(flow_run.id) if flow_run.id else None
        cycle_id = cycle_run_id() or uuid.uuid4().hex
        started = dt.datetime.now(dt.UTC)
        _log_sources(sources)
        settings_md = sources_markdown(cfg.model_dump(), sources)
        label_run(cfg.model_name)  # the tag model:<name> on this run itself
        with CycleScratch(settings.runs_dir, cycle_id) as scratch:
            state: dict[str, str | None] = {"candidate": None, "primary": None}
            try:
                with tags("retraining", f"model:{cfg.model_name}"):
                    recovered = recover_dead_cycles_task(cycle_id)
                    for dead in recovered["failed_events"]:  # a killed run could not say it died
                        emit_cycle_event(
                            cfg.model_name,
                            FAILED_EVENT,
                            version=dead["version"],
                            error=dead["error"],
                            run_id=dead["run_id"],
                        )
                    with model_lock(settings.models_dir, on_wait=_tell_waiting):
                        return _cycle(cfg, registry, run_id, scratch, state, started, settings_md)
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                registry.record("failed", version=state["candidate"], error=error, run_id=run_id)
                get_run_logger().error("Retraining failed (production untouched): %s", exc)
                name = retrain_run_name(state.get("primary") or _why(), started, "FAILED")
                label_run(cfg.model_name, name, "FAILED")
                with contextlib.suppress(Exception):  # the failure is what the run reports
                    emit_cycle_event(
                        cfg.model_name,
                        FAILED_EVENT,
                        version=state["candidate"],
                        error=error,
                        run_id=run_id,
                    )
                raise


def _tell_waiting(path: Path) -> None:
    get_run_logger().info(
        "Waiting for this model's running cycle to finish (%s): one cycle per model at once", path
    )


def _log_sources(sources: dict[str, str]) -> None:
    """One log line per source: which parameters came from the call, the model's
    configuration and the built-in defaults."""
    by_source: dict[str, list[str]] = {}
    for name, source in sources.items():
        by_source.setdefault(source, []).append(name)
    logger = get_run_logger()
    for source, names in by_source.items():
        logger.info("settings from %s: %s", source, ", ".join(names))


def _cycle(
    cfg: RetrainingConfig,
    registry: ModelRegistry,
    run_id: str | None,
    scratch: CycleScratch,
    state: dict[str, str | None],
    started: dt.datetime,
    settings_md: str = "",
) -> RetrainingResult:
    """Trigger check → train → compare and promote; ``state["candidate"]`` once registered."""
    settings = get_settings()
    logger = get_run_logger()
    screen_batches(cfg.model_dump(), run_id)  # a bad batch is set aside, not left to block
    trigger = check_trigger(cfg.model_dump(), _is_scheduled())
    publish_trigger_decision(
        f"{trigger['markdown']}\n{settings_md}", trigger["checks"], cfg.model_name
    )
    if not trigger["should_retrain"]:
        label_run(cfg.model_name, skip_run_name(trigger, started), "skipped")
        record_event("skipped", reasons=trigger["reasons"], checks=trigger["checks"], run_id=run_id)
        emit_cycle_event(
            cfg.model_name,
            SKIPPED_EVENT,
            reasons=trigger["reasons"],
            suppressed=suppressed_trigger(trigger),
            run_id=run_id,
        )
        publish_leaderboard(cfg.model_name)
        prod = registry.production()
        logger.info("No trigger fired: %s", "; ".join(trigger["reasons"]))
        return RetrainingResult(
            status="skipped",
            reasons=trigger["reasons"],
            trigger=trigger["primary"],
            production_version=prod.version if prod else None,
            registry=str(settings.models_dir),
        )
    state["primary"] = trigger["primary"]
    label_run(cfg.model_name, retrain_run_name(trigger["primary"], started))
    previous = registry.production()
    out_dir = str(scratch.new_folder("candidate"))
    brief = {k: trigger.get(k) for k in ("primary", "reasons", "drift_report_path")}
    trainer = train_candidate if cfg.sweep is None else train_candidates  # flows/sweep.py
    trained = trainer(cfg.model_dump(), brief, trigger["sources"], out_dir)
    candidate = state["candidate"] = trained["version"]
    summary = evaluate_and_promote(cfg.model_dump(), candidate, trained["prepared_dir"])
    name = retrain_run_name(trigger["primary"], started, summary["decision"], candidate)
    label_run(cfg.model_name, name, outcome_text(summary["decision"], candidate))
    logger.info(
        "%s %s: %s (report: %s)",
        summary["decision"],
        candidate,
        "; ".join(summary["reasons"]),
        (summary.get("reports") or {}).get("comparison_html"),
    )
    publish_comparison(summary, summary["markdown"], cfg.model_name)  # on the parent run too
    publish_leaderboard(cfg.model_name, trained["prepared_dir"])
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


def flow_defaults() -> dict[str, Any]:
    """Every parameter of the ``retraining`` flow with its built-in default."""
    return {"model_name": DEFAULT_MODEL, **BUILTIN_DEFAULTS}


def parse_cli_params(items: list[str]) -> dict[str, Any]:
    """``-p KEY=VALUE`` items as keyword arguments (VALUE parsed as JSON when it can be)."""
    kwargs: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ParameterError(f"-p {item[:80]!r}: expected KEY=VALUE, e.g. -p num_epochs=10")
        try:
            kwargs[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            kwargs[key.strip()] = raw
    return kwargs


def main(argv: list[str] | None = None) -> int:
    """``python -m flows.retraining [--force] [--param key=value ...]``

    Exit 0 with the decision; 2 with one line on stderr for a bad parameter (before any work)
    or another error of input or state (``RetrainError``); 1 for anything unexpected.
    """
    parser = argparse.ArgumentParser(description=retraining.description)
    parser.add_argument("--force", action="store_true", help="force_retrain=True")
    parser.add_argument(
        "--model", default=None, metavar="NAME", help="model_name (its retraining.toml table)"
    )
    parser.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any flow parameter; VALUE is parsed as JSON when it can be",
    )
    args = parser.parse_args(argv)
    try:
        kwargs = parse_cli_params(args.param)
        if args.force:
            kwargs["force_retrain"] = True
        if args.model is not None:
            kwargs["model_name"] = args.model
        resolve_run(kwargs, get_settings(), "--model" if args.model is not None else "model_name")
        connect_cli_run()  # a running `make stack-up` server, else a temporary one
    except RetrainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        result = retraining(**kwargs)
    except RetrainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(result.summary())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
