"""The live flows' deployments in prefect.yaml: entrypoints that import, daily schedules, and a
``retraining.labels.added`` trigger whose templates name real parameters with ``default(None)``
(a missing payload field must still start a run)."""

from __future__ import annotations

import importlib
import inspect
import re
import typing

import pytest
import yaml
from fakes import REPO_ROOT
from prefect.utilities.callables import parameter_schema

from flows.parameter_docs import annotation_description

ENTRYPOINTS = (
    "flows/challenger_evaluation.py:challenger_evaluation",
    "flows/post_promotion_watch.py:post_promotion_watch",
)


@pytest.mark.parametrize("entrypoint", ENTRYPOINTS)
def test_live_deployment_is_scheduled_and_triggered_by_labels(entrypoint: str) -> None:
    config = yaml.safe_load((REPO_ROOT / "prefect.yaml").read_text())
    (dep,) = [d for d in config["deployments"] if d["entrypoint"] == entrypoint]
    path, name = entrypoint.split(":")
    flow = getattr(importlib.import_module(path[:-3].replace("/", ".")), name)
    params = inspect.signature(flow.fn).parameters
    assert dep["schedules"] and dep["schedules"][0]["active"]
    (trigger,) = dep["triggers"]
    assert trigger["expect"] == ["retraining.labels.added"]
    assert trigger["match"]["prefect.resource.id"] == "retraining.model.*"
    # the event's model (its resource name, not the whole resource id) and payload fields
    assert trigger["parameters"]["model_name"] == "{{ event.resource.name | default(None) }}"
    for key, template in trigger["parameters"].items():
        assert key in params
        field = r"(resource\.name|payload\.\w+)"
        assert re.fullmatch(rf"\{{\{{ event\.{field} \| default\(None\) \}}\}}", template)


@pytest.mark.parametrize("entrypoint", ENTRYPOINTS)
def test_the_run_form_shows_each_parameters_field_description(entrypoint: str) -> None:
    """Prefect's run form shows the docstring's Args, generated from the Field descriptions
    (with the default): Prefect's own schema of the flow carries each one."""
    path, name = entrypoint.split(":")
    flow = getattr(importlib.import_module(path[:-3].replace("/", ".")), name)
    props = parameter_schema(flow).properties
    hints = typing.get_type_hints(flow.fn, include_extras=True)
    assert set(props) == set(inspect.signature(flow.fn).parameters)
    for pname, prop in props.items():
        text = annotation_description(hints[pname])
        assert text and prop["description"].startswith(text.rstrip(".")), pname
        assert "(default" in prop["description"], pname
    if name == "challenger_evaluation":  # the gate's T and alpha come from the model's table
        assert (
            "from the model's configuration, else 0.005"
            in props["improvement_threshold"]["description"]
        )
