"""What a run is called and tagged in the Prefect UI: every top-level run names its model and
carries the tag ``model:<name>``, set on the run itself.

A run's tags are fixed when it is created (a deployment's runs take the deployment's), so the
model's tag, which depends on a parameter, is added by the run through the API;
``update_flow_run`` replaces the tags, so they are merged with the run's current ones and its
deployment's. Names: :mod:`model.cycle.naming`. A name the user chose is recognised as neither
one of ours nor one Prefect generated (two to four words of its ``coolname`` word lists, such
as ``brave-otter``) and is kept, with the outcome appended.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from typing import Any

from prefect.client.orchestration import get_client
from prefect.runtime import flow_run

from model.cycle.models_config import DEFAULT_MODEL, select_model
from model.cycle.naming import live_run_name, model_run_name, ours, user_run_name
from model.errors import RetrainError
from model.settings import get_settings

MODEL_TAG = "model:{}"
_chosen: dict[str, str | None] = {}
"""Per flow run id: the name the user chose, or None (read once, when the run starts)."""


def model_tag(model_name: str) -> str:
    return MODEL_TAG.format(model_name)


@functools.cache
def _generated_words() -> frozenset[str]:
    """Every word Prefect's generated run names (``coolname`` slugs) are made of."""
    from coolname.data import config  # a dependency of prefect, for its generated names

    words: set[str] = set()
    entries: dict[str, Any] = config
    for entry in entries.values():
        if entry.get("type") == "words":
            words.update(entry["words"])
        elif entry.get("type") == "phrases":
            for phrase in entry["phrases"]:
                words.update(phrase if isinstance(phrase, list | tuple) else phrase.split())
    return frozenset(words)


def generated(name: str | None) -> bool:
    """Whether ``name`` looks like a name Prefect generated (``brave-otter``)."""
    if not name:
        return True
    parts = name.split("-")
    return 2 <= len(parts) <= 4 and all(p in _generated_words() for p in parts)


def chosen_name(current: str | None) -> str | None:
    """The run's current name when the user chose it (not ours, not generated), else None."""
    return None if ours(current) or generated(current) else current


def remember_chosen_name() -> str | None:
    """Read the current run's name once (at its start) and remember whether it was chosen."""
    run_id = flow_run.id
    if not run_id:
        return None
    if run_id not in _chosen:
        _chosen[run_id] = chosen_name(flow_run.name)
    return _chosen[run_id]


def model_of_run() -> str:
    """The model the current run is for, from its ``model_name`` parameter (its default:
    ``RETRAIN_MODEL_NAME``, else the first table of ``retraining.toml``)."""
    given = flow_run.parameters.get("model_name")
    try:
        return select_model(given, get_settings(), "model_name")
    except RetrainError:  # the run itself fails with this error, at its first line
        return str(given or DEFAULT_MODEL)


def live_namer(kind: str) -> Callable[[], str]:
    """A ``flow_run_name`` for the live tests: ``<model> · <kind>-<UTC time>``."""

    def name() -> str:
        return run_name(model_of_run(), live_run_name(kind, dt.datetime.now(dt.UTC)))

    return name


def run_name(model_name: str, name: str, outcome: str | None = None) -> str:
    """The current run's name: ``<model> · <name>``, or the user's chosen name with
    ``outcome`` appended."""
    chosen = remember_chosen_name()
    return user_run_name(chosen, outcome) if chosen else model_run_name(model_name, name)


def label_run(model_name: str, name: str | None = None, outcome: str | None = None) -> None:
    """Tag the current run ``model:<model_name>`` (merged with its tags and its deployment's)
    and, with ``name``, rename it (:func:`run_name`). Outside a run: nothing."""
    run_id = flow_run.id
    if not run_id:
        return
    new_name = run_name(model_name, name, outcome) if name else None
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(run_id)
        tags = set(run.tags)
        if model_tag(model_name) in tags:
            if new_name and new_name != run.name:
                client.update_flow_run(run_id, name=new_name)
            return
        if run.deployment_id:
            tags |= set(client.read_deployment(run.deployment_id).tags)
        tags.add(model_tag(model_name))
        client.update_flow_run(run_id, name=new_name, tags=sorted(tags))
