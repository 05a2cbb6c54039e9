"""The backtest flow's deployment in prefect.yaml (run from the UI's form: no schedule, no
trigger) and its run form: every parameter described, with its default."""

from __future__ import annotations

import inspect
import typing

import yaml
from fakes import REPO_ROOT
from prefect.utilities.callables import parameter_schema

from flows.backtest import backtest
from flows.parameter_docs import annotation_description, literal_angles


def test_the_backtest_is_deployed_to_run_by_hand() -> None:
    config = yaml.safe_load((REPO_ROOT / "prefect.yaml").read_text())
    (dep,) = [d for d in config["deployments"] if d["entrypoint"] == "flows/backtest.py:backtest"]
    assert dep["name"] == "manual" and not dep.get("schedules") and not dep.get("triggers")


def test_the_run_form_describes_every_parameter() -> None:
    schema = parameter_schema(backtest)
    hints = typing.get_type_hints(backtest.fn, include_extras=True)
    assert set(schema.properties) == set(inspect.signature(backtest.fn).parameters)
    assert set(schema.required or []) == {"data_path", "start"}
    for name, prop in schema.properties.items():
        text = annotation_description(hints[name])
        shown = literal_angles(text.rstrip(".")) if text else ""  # <name> as a code span
        assert text and prop["description"].startswith(shown), name
        assert "(default" in prop["description"] or "(required)" in prop["description"], name
        assert "null" not in prop["description"], name
    assert schema.properties["period"]["enum"] == ["day", "week", "month", "year"]
    assert schema.properties["period"]["default"] == "month"
