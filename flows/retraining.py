"""The retraining flow: check triggers → train a candidate → compare → promote or reject.

Call it from Python (``retraining(force_retrain=True)``), as ``python -m flows.retraining``,
or through the ``retraining/weekly`` deployment. Orchestration only: the work is in ``tasks/``
and ``model/``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import inspect
import json
import shutil
import sys
import uuid
from collections.abc import Iterator
from typing import Any

from prefect import flow, get_run_logger, tags
from prefect.client.orchestration import get_client
from prefect.concurrency.sync import concurrency
from prefect.context import get_run_context
from prefect.runtime import flow_run
from prefect.settings import PREFECT_API_URL

from flows.ephemeral import start_tied_ephemeral_server
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
    MinDriftedFeatures,
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
from model.cycle.evaluation import manifest_batches
from model.cycle.locks import PROMOTION_TIMEOUT_S, CycleScratch, promotion_lock
from model.cycle.params import check_parameters
from model.errors import CycleLockError, ParameterError, RetrainError
from model.registry import ModelRegistry
from model.settings import get_settings
from tasks.compare import compare_models, history_summary
from tasks.cycle import recover_dead_cycles_task
from tasks.data import prepare_data
from tasks.faults import kill_point
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
PROMOTION_LEASE_S = 60.0
"""Lease of the global limit's slot: the shortest the server accepts. A holder that dies stops
renewing it; the server frees the slot within about 75 s (60 s + its 15 s sweep)."""
DECISION_EVENTS = {"REJECT": "rejected", "INCONCLUSIVE": "inconclusive"}
DEFAULT_HIDDEN_SIZES = [64, 32]


def ensure_promotion_limit() -> None:
    """Create the global concurrency limit (1 slot) if it does not exist; idempotent."""
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(PROMOTION_LIMIT, 1)


def uses_api_server() -> bool:
    """Whether runs report to a configured Prefect server (``PREFECT_API_URL``), not to the
    ephemeral one a process starts for itself."""
    return bool(PREFECT_API_URL.value())


@contextlib.contextmanager
def promotion_guard(timeout: float = PROMOTION_TIMEOUT_S) -> Iterator[None]:
    """Serialize compare-and-promote across every cycle on this registry.

    The guarantee is the OS lock ``models/.promotion.lock`` (the kernel frees it when its
    holder dies). With a configured server, the global limit ``retraining-promotion`` is also
    held (lease 60 s, so a dead holder's slot frees within ~75 s); the ephemeral server of a
    plain ``python -m flows.retraining`` does not take it: its leases die with the process
    and would leave the slot taken in the database for good.
    """
    with promotion_lock(get_settings().models_dir, timeout), contextlib.ExitStack() as stack:
        if uses_api_server():
            ensure_promotion_limit()
            try:
                stack.enter_context(
                    concurrency(
                        PROMOTION_LIMIT,
                        occupy=1,
                        strict=True,
                        lease_duration=PROMOTION_LEASE_S,
                        timeout_seconds=timeout,
                    )
                )
            except TimeoutError:
                raise CycleLockError(
                    f"the global concurrency limit {PROMOTION_LIMIT!r} stayed taken for "
                    f"{timeout:.0f} s; a dead run's slot frees when its {PROMOTION_LEASE_S:.0f} s "
                    "lease expires, a slot no lease holds (lost in a server restart) with "
                    f"`prefect gcl update {PROMOTION_LIMIT} --active-slots 0`"
                ) from None
        yield


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
    settings = get_settings()
    run_id = _cycle_run_id()
    paths = [*([sources["base"]] if sources["base"] else []), *sources["batches"]]
    prepared = prepare_data(paths, cfg.target_column, cfg.id_column, sources["selection"])
    scratch = settings.runs_dir / (run_id or uuid.uuid4().hex) / f"candidate-{uuid.uuid4().hex[:8]}"
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
            prepared, out, cfg.train_params(), extra_metadata={"training_reason": why}
        )
        version = register_model(model_dir, reason=why, run_id=run_id)
        kill_point("registering")
    finally:  # the registry holds its own copy; a killed run's is removed by the next cycle
        shutil.rmtree(out, ignore_errors=True)
    return {"version": version, "prepared_dir": prepared}


@flow(name="evaluate-and-promote", flow_run_name="evaluate-{candidate_version}")
def evaluate_and_promote(
    config: dict[str, Any], candidate_version: str, prepared_dir: str
) -> dict[str, Any]:
    """Compare candidate and production; promote on PROMOTE, else record the decision.

    The comparison, the promotion and the decision's record hold the promotion lock together
    (:func:`promotion_guard`), so a concurrent cycle compares against the production this one
    leaves.
    """
    cfg = RetrainingConfig(**config)
    logger = get_run_logger()
    run_id = _cycle_run_id()
    with promotion_guard():
        summary = compare_models(candidate_version, prepared_dir, cfg.comparator_params(), run_id)
        decision = summary["decision"]
        reason = "; ".join(summary["reasons"])
        if decision == "PROMOTE":
            kill_point("promoting")
            comparison = history_summary(summary)
            promote_model(candidate_version, reason, comparison=comparison, run_id=run_id)
        else:
            record_event(
                DECISION_EVENTS[decision],
                version=candidate_version,
                baseline=summary["baseline_version"],
                reasons=summary["reasons"],
                reports=summary["reports"],
                batches=manifest_batches(prepared_dir),  # judged: no re-trigger on these alone
                run_id=run_id,
            )
    publish_comparison(summary, summary["markdown"])
    if decision == "PROMOTE":
        emit_promoted_event(candidate_version, _key_metrics(summary))
        logger.info("Promoted %s: %s", candidate_version, reason)
    else:
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
    min_drifted_features: MinDriftedFeatures = None,
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
    """Retrain when a trigger fires, and promote the candidate only if it is better.

    Every parameter is checked first, the gate's options included (``ParameterError``, one
    line, before any work). The cycle then holds its cycle lock and scratch folder
    (``runs/<run id>/``) for its whole life, and first settles what dead cycles left.
    """
    cfg = check_parameters(_with_defaults(dict(locals())))
    settings = get_settings()
    registry = ModelRegistry(settings.models_dir)
    run_id = str(flow_run.id) if flow_run.id else None
    cycle_id = _cycle_run_id() or uuid.uuid4().hex
    with CycleScratch(settings.runs_dir, cycle_id) as scratch:
        state: dict[str, str | None] = {"candidate": None}
        try:
            with tags("retraining", f"model:{settings.model_name}"):
                recover_dead_cycles_task(cycle_id)
                return _cycle(cfg, registry, run_id, scratch, state)
        except Exception as exc:
            registry.record(
                "failed",
                version=state["candidate"],
                error=f"{type(exc).__name__}: {exc}",
                run_id=run_id,
            )
            get_run_logger().error("Retraining failed (production untouched): %s", exc)
            raise


def _cycle(
    cfg: RetrainingConfig,
    registry: ModelRegistry,
    run_id: str | None,
    scratch: CycleScratch,
    state: dict[str, str | None],
) -> RetrainingResult:
    """Trigger check → train → compare and promote; ``state["candidate"]`` once registered."""
    settings = get_settings()
    logger = get_run_logger()
    trigger = check_trigger(cfg.model_dump(), _is_scheduled())
    publish_trigger_decision(trigger["markdown"], trigger["checks"])
    day = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    if not trigger["should_retrain"]:
        _rename_run(f"skip-{day}")
        record_event("skipped", reasons=trigger["reasons"], checks=trigger["checks"], run_id=run_id)
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
    out_dir = str(scratch.new_folder("candidate"))
    trained = train_candidate(cfg.model_dump(), trigger, trigger["sources"], out_dir)
    candidate = state["candidate"] = trained["version"]
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


def _with_defaults(values: dict[str, Any]) -> dict[str, Any]:
    out = dict(values)
    if out.get("hidden_sizes") is None:
        out["hidden_sizes"] = list(DEFAULT_HIDDEN_SIZES)
    return out


def flow_defaults() -> dict[str, Any]:
    """Every parameter of the ``retraining`` flow with its default value."""
    sig = inspect.signature(retraining.fn)
    return _with_defaults({name: p.default for name, p in sig.parameters.items()})


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
        check_parameters(kwargs, flow_defaults())
    except ParameterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    start_tied_ephemeral_server()
    try:
        result = retraining(**kwargs)
    except RetrainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(result.summary())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
