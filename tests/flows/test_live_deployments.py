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
def test_flow_docstring_args_match_the_field_descriptions(entrypoint: str) -> None:
    """Prefect's run form shows the docstring's Args; the Field descriptions must say the same."""
    path, name = entrypoint.split(":")
    flow = getattr(importlib.import_module(path[:-3].replace("/", ".")), name)
    doc = inspect.getdoc(flow.fn) or ""
    args = doc.split("Args:", 1)[1]
    described = {
        m.group(1): " ".join(m.group(2).split())
        for m in re.finditer(r"^    (\w+): (.*?)(?=^    \w+: |\Z)", args, re.S | re.M)
    }
    hints = typing.get_type_hints(flow.fn, include_extras=True)
    for pname in inspect.signature(flow.fn).parameters:
        field = next(m for m in hints[pname].__metadata__ if hasattr(m, "description"))
        assert described.get(pname) == field.description, pname
