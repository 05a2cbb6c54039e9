"""The ``backtest`` flow: replay dated history through the real cycle, one scratch working root
per policy, and report what each policy would have given.

For each policy (:mod:`model.backtest.policies`) and each batch, in simulated time
(:mod:`model.clock`: the batch's own dates, not the wall clock):

1. while the batch's period runs, the scoring service's model set scores its rows into the
   prediction log: production's AUC on rows no model was trained on (prequential);
2. when the period ends, its labels join the log and the batch lands in ``incoming/``; the
   ``challenger-evaluation`` and ``post-promotion-watch`` flows look, when they have something
   to look at (policies with live evaluation); the ``drift-monitor`` flow runs (no event);
3. a second later the ``retraining`` flow runs, on the drift monitor's report (as the drift
   event would start it); the ``always`` policy forces every candidate into production.

The simulated clock (:class:`model.clock.SimulatedClock`) starts at those times and ticks a
millisecond at each reading, so the replay is deterministic whatever the machine's speed.

Every cycle works in its policy's scratch root (``working_root``: never the user's registry;
events under ``retraining.sandbox.<run>-<policy>.<model>``, artifacts unkeyed), and candidates
two policies would train identically are trained once (``Settings.training_cache``). Policies
run one after the other in this process, or ``workers`` at a time on Dask (the sweep's cluster
set-up). The report (``backtest.json``, ``backtest.html``) and its artifact sum them up.
Run it as ``retrain backtest`` (or ``python -m flows.backtest``).
"""

from __future__ import annotations

import datetime as dt
import shutil
import sys
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.settings import (
    PREFECT_API_URL,
    PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
    temporary_settings,
)

from flows.challenger_evaluation import challenger_evaluation
from flows.drift_monitor import drift_monitor
from flows.parameter_docs import MODEL_NAME_DEFAULT_TEXT, document_parameters
from flows.post_promotion_watch import post_promotion_watch
from flows.retraining import retraining
from flows.sweep import dask_runner, parent_api_url, worker_environment
from model import clock
from model.backtest.params import (
    BacktestData,
    Baselines,
    End,
    KeepScratch,
    OutDir,
    Period,
    Start,
    TimeColumn,
    Variants,
    Workers,
)
from model.backtest.policies import Policy, build_policies, check_policies
from model.backtest.result import assemble
from model.backtest.timeline import Batch, Timeline
from model.cycle.config import ModelNameParameter
from model.cycle.models_config import effective_parameters, select_model
from model.settings import get_settings, model_scope, working_root
from tasks.backtest import (
    cut_history,
    land_batch,
    live_due,
    promote_anyway,
    publish_backtest,
    serve_batch,
    stage_base_data,
    sum_up_policy,
    write_backtest_reports,
)

CYCLE_AFTER = dt.timedelta(seconds=1)
"""The retraining cycle starts this long after its batch arrived (after the live looks and the
drift monitor, whose readings of the simulated clock stay below it): each cycle's trigger check
then comes the same number of clock readings after its start, batch after batch."""
DRIFT_RULE = ("dataset_drift_threshold", "min_drifted_features")
"""Policy parameters the drift monitor reads too (a variant's drift rule)."""
NO_HEARTBEATS = {PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}
"""The replay's flows send no heartbeats: ending one waits for its heartbeat thread's one-second
sleep (1.1 s a flow run here, against 0.1 s without); the backtest flow's own heartbeat still
tells the server it is alive."""


def _cycle(model: str, policy: Policy, params: dict[str, Any], drift: dict[str, Any]) -> Any:
    """The retraining flow as the deployment would start it now, on the drift monitor's report
    (the drift event carries it; without drift the cycle would compute the same verdict
    again). Not when the monitor computed nothing, or its drift may not trigger (a rejected
    candidate judged these batches already): the cycle then finds that itself, as a scheduled
    run does."""
    report = None if drift.get("blocked") else drift.get("report_path")
    result = retraining(model_name=model, drift_report_path=report, **params)
    record = _cycle_record(result)
    if policy.always_promote and result.status != "promoted" and result.candidate_version:
        reason = f"backtest policy '{policy.name}': every candidate is promoted (the gate said "
        reason += f"{result.status})"
        record["forced"] = promote_anyway(result.candidate_version, reason)
        if record["forced"]:
            record["production"] = result.candidate_version
    return record


def _cycle_record(result: Any) -> dict[str, Any]:
    return {
        "status": result.status,
        "trigger": result.trigger,
        "reasons": list(result.reasons),
        "candidate": result.candidate_version,
        "production": result.production_version,
        "previous": result.previous_production_version,
        "forced": False,
    }


def _live_looks(model: str) -> dict[str, Any]:
    """One look of each live test that has something to look at, as deployed: the
    challenger's evaluation first, then the watch."""
    due = live_due()
    looks: dict[str, Any] = {}
    if due["challenger"]:
        looks["challenger"] = _brief(challenger_evaluation(model_name=model))
    if due["watch"]:
        looks["watch"] = _brief(post_promotion_watch(model_name=model))
    return looks


def _brief(outcome: dict[str, Any]) -> dict[str, Any]:
    keys = ("status", "decision", "candidate_version", "baseline_version", "restored")
    return {k: outcome.get(k) for k in keys} | {"reasons": list(outcome.get("reasons") or [])}


def _drift_record(summary: dict[str, Any]) -> dict[str, Any]:
    keys = ("status", "dataset_drift", "drift_share", "drifted_features", "blocked", "reason")
    return {k: summary.get(k) for k in keys} | {"report": summary.get("report_path")}


def _replay_batch(
    model: str,
    policy: Policy,
    batch: Batch,
    params: dict[str, Any],
    target: str,
    after: dt.datetime,
) -> tuple[dict[str, Any], dt.datetime]:
    """Serve one batch (from its start, or from ``after``, when the previous cycle ended), let
    its period end, and run what runs then (see the module). Returns the step and when its
    cycle ended."""
    logger = get_run_logger()
    with clock.at(max(batch.start_time, after)):
        served = serve_batch(asdict(batch), target, "watch" if policy.live else "off")
    with clock.at(batch.arrival_time):
        land_batch(asdict(batch), target)
        live = _live_looks(model) if policy.live else {}
        rule = {k: params[k] for k in DRIFT_RULE if k in params}
        drift = drift_monitor(
            model_name=model, incoming_path=params["incoming_path"], emit=False, **rule
        )
        ended = clock.now()
    cycle = None
    if policy.retrains:
        with clock.at(batch.arrival_time + CYCLE_AFTER):
            try:
                cycle = _cycle(model, policy, params, drift)
            except Exception as exc:  # a failed cycle leaves production as it was, as live
                logger.warning("%s: the cycle failed: %s", batch.name, exc)
                cycle = {"status": "failed", "reasons": [f"{type(exc).__name__}: {exc}"]}
            ended = clock.now()
    step = {
        "batch": batch.name,
        "arrives": batch.arrives,
        "auc": served["auc"],
        "served": served,
        "live": live,
        "drift": _drift_record(drift),
        "cycle": cycle,
    }
    return step, ended


@flow(name="backtest-policy", flow_run_name="backtest-{policy[slug]}")
def backtest_policy(plan: dict[str, Any], policy: dict[str, Any]) -> dict[str, Any]:
    """Replay every batch through one policy in its own scratch working root; its steps and
    summary (the root is removed afterwards unless the plan keeps it)."""
    timeline = Timeline.from_dict(plan["timeline"])
    chosen = Policy.from_dict(policy)
    model = plan["model_name"]
    home = Path(plan["scratch"]) / chosen.slug
    sandbox = f"{plan['run']}-{chosen.slug}"
    cache = Path(plan["cache"])
    with (
        working_root(home, sandbox=sandbox, training_cache=cache),
        model_scope(model),
        temporary_settings(NO_HEARTBEATS),
    ):
        base = stage_base_data(timeline.base_path)
        params = {
            "data_path": base,
            "incoming_path": str(get_settings().incoming_dir),
            **chosen.cycle_parameters(),
        }
        with clock.at(timeline.start_time + CYCLE_AFTER):  # the first model, on the start window
            first = _cycle_record(retraining(model_name=model, **params))
            ended = clock.now()
        steps = []
        for batch in timeline.batches:
            step, ended = _replay_batch(model, chosen, batch, params, timeline.target_column, ended)
            steps.append(step)
        summary = sum_up_policy([s["auc"] for s in steps])
    kept = bool(plan.get("keep_scratch"))
    if not kept:
        shutil.rmtree(home, ignore_errors=True)
    return {
        **chosen.to_dict(),
        "scratch": str(home) if kept else None,
        "first": first,
        "steps": steps,
        "summary": summary,
    }


@task(name="replay_policy")
def replay_policy(plan: dict[str, Any], policy: dict[str, Any]) -> dict[str, Any]:
    """:func:`backtest_policy` as a task, so policies can run in parallel on Dask.

    The flow is imported here, in the worker: this function travels to it by value
    (cloudpickle), and a flow it carried along would lose the module globals its parameter
    types are resolved in."""
    from flows.backtest import backtest_policy as replay

    return replay(plan, policy)


@flow(name="backtest-policies")
def replay_policies(plan: dict[str, Any], policies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every policy as a task on this flow's task runner (Dask); their results in order."""
    futures = [replay_policy.submit(plan, p) for p in policies]
    return [f.result() for f in futures]


def _run_policies(plan: dict[str, Any], policies: list[Policy], workers: int) -> list[Any]:
    if workers <= 1 or len(policies) <= 1:
        return [backtest_policy(plan, p.to_dict()) for p in policies]
    api_url = parent_api_url()
    runner = dask_runner(min(workers, len(policies)), api_url)
    api = {PREFECT_API_URL: api_url} if api_url else {}
    with temporary_settings(api), worker_environment():
        return replay_policies.with_options(task_runner=runner)(
            plan, [p.to_dict() for p in policies]
        )


BACKTEST_SUMMARY = "Replay dated history through the real cycle, policy by policy, and compare."


@flow(name="backtest", description=BACKTEST_SUMMARY)
@document_parameters(
    config_filled=(),
    shown_defaults={
        "model_name": MODEL_NAME_DEFAULT_TEXT,
        "baselines": "all three",
        "variants": "none",
        "time_column": "the date= partition",
        "end": "all rows",
        "out_dir": "backtests/<model>/<run> under RETRAIN_HOME",
    },
)
def backtest(
    data_path: BacktestData,
    start: Start,
    period: Period = "month",
    model_name: ModelNameParameter = None,
    time_column: TimeColumn = None,
    end: End = None,
    baselines: Baselines | None = None,
    variants: Variants | None = None,
    workers: Workers = 1,
    keep_scratch: KeepScratch = False,
    out_dir: OutDir = None,
) -> dict[str, Any]:
    """Replay dated history through the real cycle, policy by policy, and compare.

    Each policy runs in a scratch working root under ``backtests/<model>/<run>/``, never the
    model's registry; its cycles see the batches' dates as the time. Returns the result (the
    content of ``backtest.json``) with where the reports are.
    """
    settings = get_settings()
    name = select_model(model_name, settings, "flow parameter model_name")
    with model_scope(name):
        settings = settings.for_model(name)
        policies = build_policies(
            baselines if baselines is not None else ["configured", "never", "always"],
            variants or [],
        )
        check_policies(policies, name, settings, {"data_path": "-", "incoming_path": "-"})
        target = effective_parameters({"target_column": None}, name)[0]["target_column"]
        run = f"bt-{clock.now():%Y%m%d%H%M%S}-{uuid.uuid4().hex[:6]}"
        folder = settings.backtests_dir / run
        timeline = cut_history(
            data_path, str(folder / "data"), start, period, target, time_column, end
        )
        plan = {
            "run": run,
            "model_name": name,
            "timeline": timeline,
            "scratch": str(folder / "homes"),
            "cache": str(folder / "cache"),
            "keep_scratch": keep_scratch,
        }
        started = clock.WALL.now()
        results = _run_policies(plan, policies, workers)
        seconds = (clock.WALL.now() - started).total_seconds()
        result = assemble(name, timeline, results, seconds, workers)
        reports = write_backtest_reports(result, out_dir or str(folder))
        publish_backtest(result, reports)
        if not keep_scratch:
            for part in ("homes", "cache", "data"):
                shutil.rmtree(folder / part, ignore_errors=True)
            if folder.is_dir() and not any(folder.iterdir()):  # the report went to out_dir
                folder.rmdir()
        get_run_logger().info("Backtest report: %s", reports.get("html"))
        return {**result, "reports": reports}


def main(argv: list[str] | None = None) -> int:
    """``python -m flows.backtest``: the same as ``retrain backtest``."""
    from model.cli import main as cli

    return cli(["backtest", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
