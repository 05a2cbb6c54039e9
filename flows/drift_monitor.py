"""The ``drift-monitor`` flow: drift of the data production has not seen against its training data.

The new data is every incoming batch that production's prepared manifest does not list (all
of them, concatenated; the report's ``current.selection`` says which). With none, the run says
"no new data since production was trained" and emits nothing; nor does it when a rejected or
inconclusive candidate was already trained on every one of those batches (until a newer one
arrives). On dataset drift it emits ``retraining.drift.detected`` (resource
``retraining.model.<model name>``, payload ``drift_share``, ``drifted_features``,
``report_path``), which the ``retraining/weekly`` deployment's trigger turns into a run; with
no server configured (a temporary one, which nothing listens to) it emits nothing and logs,
and returns as ``retrain_command``, the command that retrains on the report.
Run it as ``python -m flows.drift_monitor`` or through the ``drift-monitor/daily`` deployment.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from typing import Annotated, Any

from prefect import flow, get_run_logger, tags
from prefect.events import Event, emit_event
from pydantic import Field

from flows.ephemeral import connect_cli_run
from flows.parameter_docs import MODEL_NAME_DEFAULT_TEXT, document_parameters
from flows.promotion import uses_api_server
from flows.run_labels import label_run, model_tag
from model.cycle.config import DatasetDriftThreshold, IncomingPath, ModelNameParameter
from model.cycle.models_config import effective_parameters, select_model
from model.cycle.naming import drift_run_name, retrain_command
from model.drift import DriftSettings
from model.errors import RetrainError
from model.settings import check_model_name, get_settings, model_scope
from tasks.drift import compute_drift, publish_drift_report

DRIFT_EVENT = "retraining.drift.detected"


def drift_event_payload(summary: dict[str, Any]) -> dict[str, Any]:
    """The event payload: what the retraining trigger needs to know and to reproduce."""
    return {
        "drift_share": summary.get("drift_share"),
        "drifted_features": list(summary.get("drifted_features") or []),
        "report_path": summary.get("report_path"),
    }


def events_api_url() -> str | None:
    """The Prefect API that events go to (None: no running server configured)."""
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value() or None


def emit_drift_detected(
    summary: dict[str, Any],
    resource_id: str | None = None,
    *,
    flush: bool = False,
    model_name: str | None = None,
) -> Event | None:
    """Emit ``retraining.drift.detected`` for the model (resource ``retraining.model.<name>``,
    its name in ``prefect.resource.name``; default: ``RETRAIN_MODEL_NAME``).

    ``flush`` waits until the event is sent (for short-lived processes such as the CLI).
    Returns the event, or None when Prefect has nowhere to send it.
    """
    settings = get_settings()
    name = check_model_name(model_name or settings.model_name, "drift event model name")
    resource = {
        "prefect.resource.id": resource_id or settings.for_model(name).event_resource_id,
        "prefect.resource.name": name,
    }
    event = emit_event(DRIFT_EVENT, resource=resource, payload=drift_event_payload(summary))
    if flush:
        from prefect.events.worker import EventsWorker

        EventsWorker.instance().drain()  # send it before a short-lived process exits
    return event


def _name_run(model_name: str, summary: dict[str, Any]) -> None:
    """``<model> · drift-<date>-<verdict>`` (drift, no-drift, no-new-data, skipped) once it
    is known (or the name the user chose, with the verdict appended)."""
    name = drift_run_name(dt.datetime.now(dt.UTC), summary)
    label_run(model_name, name, name.split("-", 4)[-1])


DRIFT_SUMMARY = "Compute drift, write and publish the reports, and emit the event on dataset drift."


@flow(name="drift-monitor", description=DRIFT_SUMMARY)
@document_parameters(shown_defaults={"model_name": MODEL_NAME_DEFAULT_TEXT})
def drift_monitor(
    model_name: ModelNameParameter = None,
    incoming_path: IncomingPath = None,
    dataset_drift_threshold: DatasetDriftThreshold | None = None,
    reference_path: Annotated[
        str | None,
        Field(description="Reference data; default: the production model's training split."),
    ] = None,
    current_paths: Annotated[
        list[str] | None,
        Field(description="Current data; default: the batches production was not trained on."),
    ] = None,
    newest_batches: Annotated[
        int | None,
        Field(
            ge=1,
            le=366,
            description="Only the newest N of those batches (default: all of them; with a "
            "reference_path: the newest 1).",
        ),
    ] = None,
    min_drifted_features: Annotated[
        int | None,
        Field(
            ge=1,
            description="Dataset drift also when at least this many features drifted (None = off).",
        ),
    ] = None,
    alpha: Annotated[
        float, Field(gt=0, lt=1, description="Significance level (Holm-corrected).")
    ] = 0.05,
    psi_threshold: Annotated[
        float, Field(ge=0, description="Effect-size floor: PSI (either floor suffices).")
    ] = 0.1,
    distance_threshold: Annotated[
        float, Field(ge=0, description="Effect-size floor: W1/std or Jensen–Shannon distance.")
    ] = 0.1,
    with_model: Annotated[
        bool, Field(description="Also compare the production model's score distribution.")
    ] = True,
    emit: Annotated[bool, Field(description="Emit the drift event on dataset drift.")] = True,
) -> dict[str, Any]:
    """Compute drift, write and publish the reports, and emit the event on dataset drift.

    ``incoming_path`` and ``dataset_drift_threshold`` left at None (and the target and id
    columns used with an explicit ``reference_path``) come from the model's table in
    ``retraining.toml``, else the built-in defaults; where each came from is logged.
    """
    logger = get_run_logger()
    settings = get_settings()
    name = select_model(model_name, settings, "flow parameter model_name")
    with model_scope(name), tags(model_tag(name)):
        label_run(name)  # the tag model:<name> on this run itself
        settings = settings.for_model(name)
        explicit = {
            "incoming_path": incoming_path,
            "dataset_drift_threshold": dataset_drift_threshold,
            "min_drifted_features": min_drifted_features,
            "target_column": None,
            "id_column": None,
            "data_engine": None,
        }
        values, sources = effective_parameters(explicit, name, root=settings.root)
        for key, source in sources.items():
            logger.info("%s = %r (from %s)", key, values[key], source)
        drift_settings = DriftSettings(
            alpha=alpha,
            psi_threshold=psi_threshold,
            distance_threshold=distance_threshold,
            dataset_drift_threshold=values["dataset_drift_threshold"],
            min_drifted_features=values["min_drifted_features"],
        )
        summary = compute_drift(
            reference_path,
            current_paths,
            drift_settings.to_dict(),
            newest_batches,
            with_model,
            incoming_path=values["incoming_path"],
            target_column=values["target_column"],
            id_column=values["id_column"],
            data_engine=values["data_engine"],
        )
        summary["model_name"] = name
        summary["settings_sources"] = sources
        _name_run(name, summary)
        if summary["status"] == "skipped":
            return summary
        publish_drift_report(summary)
        summary["event"] = None
        if summary["dataset_drift"] and summary.get("blocked"):
            logger.info("Dataset drift, no event: %s", summary["blocked"])
        elif summary["dataset_drift"] and emit and not uses_api_server():
            summary["retrain_command"] = retrain_command(name, summary["report_path"])
            logger.warning(
                "Dataset drift, no event: no Prefect server is configured (PREFECT_API_URL), "
                "so no deployment would react. Retrain on this report: %s",
                summary["retrain_command"],
            )
        elif summary["dataset_drift"] and emit:
            event = emit_drift_detected(summary, model_name=name)
            summary["event"] = DRIFT_EVENT
            logger.info(
                "Emitted %s for %s (event id %s)",
                DRIFT_EVENT,
                settings.event_resource_id,
                event.id if event else "not sent",
            )
        return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the drift-monitor flow once.")
    parser.add_argument("--model", default=None, metavar="NAME", help="model_name")
    parser.add_argument("--incoming", default=None, metavar="PATH", help="incoming_path")
    parser.add_argument("--reference", default=None)
    parser.add_argument("--current", nargs="+", default=None)
    parser.add_argument("--batches", type=int, default=None)
    parser.add_argument("--no-emit", action="store_true")
    args = parser.parse_args(argv)
    try:
        connect_cli_run()  # a running `make stack-up` server, else a temporary one
        summary = drift_monitor(
            model_name=args.model,
            incoming_path=args.incoming,
            reference_path=args.reference,
            current_paths=args.current,
            newest_batches=args.batches,
            emit=not args.no_emit,
        )
    except RetrainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({k: v for k, v in summary.items() if k != "table"}, indent=2))
    if summary.get("retrain_command"):
        print(
            "note: dataset drift, but no Prefect server is running, so no deployment will "
            f"retrain. Retrain on this report: {summary['retrain_command']} "
            "(or: retrain drift --then-retrain)",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
