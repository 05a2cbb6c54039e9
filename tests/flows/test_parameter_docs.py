"""The run form's descriptions are generated from the parameter types (issue 14)."""

from __future__ import annotations

import re
from typing import Annotated

import pytest
from prefect.utilities.callables import parameter_docstrings, parameter_schema
from pydantic import Field

from flows.parameter_docs import (
    FROM_CONFIG,
    MODEL_NAME_DEFAULT_TEXT,
    document_parameters,
    literal_angles,
    parameter_descriptions,
)
from flows.retraining import retraining
from model.cycle.config import NumEpochs


def test_generated_args_section_is_what_prefect_reads() -> None:
    @document_parameters()
    def toy(
        num_epochs: NumEpochs | None = None,
        limit: Annotated[int, Field(ge=1, description="A limit")] = 3,
        names: Annotated[list[int], Field(description="Widths.")] | None = None,
    ) -> None:
        """Toy flow."""

    assert parameter_docstrings(toy.__doc__) == {
        "num_epochs": f"Maximum training epochs. ({FROM_CONFIG}, else 100)",
        "limit": "A limit. (default: 3)",
        "names": "Widths. (default: null)",
    }
    assert toy.__doc__ is not None and toy.__doc__.startswith("Toy flow.\n\nArgs:\n")


def test_a_parameter_without_description_is_refused() -> None:
    def bare(x: int = 1) -> None:
        """Bare."""

    with pytest.raises(TypeError, match="bare: parameter x has no Field"):
        parameter_descriptions(bare)


def test_the_flow_schema_carries_every_description() -> None:
    """Locally (no server): Prefect's own schema of the flow holds each generated line."""
    props = parameter_schema(retraining).properties
    expected = parameter_descriptions(
        retraining.fn, shown_defaults={"model_name": MODEL_NAME_DEFAULT_TEXT}
    )
    assert retraining.fn.__doc__ is not None
    assert {k: v["description"] for k, v in props.items()} == expected
    assert retraining.description == retraining.fn.__doc__.splitlines()[0]  # no Args in it


def test_angle_bracketed_words_become_code_spans() -> None:
    """The run form renders Markdown, where ``<name>`` is a tag and vanishes (issue 24)."""
    props = parameter_schema(retraining).properties
    model_text = props["model_name"]["description"]
    assert "`[models.<name>]`" in model_text and "`retraining.model.<name>`" in model_text
    assert "`data/<model>/incoming`" in props["incoming_path"]["description"]
    for prop in props.values():  # no bare tag left anywhere
        for outside in prop["description"].split("`")[::2]:
            assert not re.search(r"<[\w-]+>", outside), prop["description"]
    assert literal_angles("p < alpha and x > 0") == "p < alpha and x > 0"
    assert literal_angles("ends a.<b>. Then `[<c>]`") == "ends `a.<b>`. Then `[<c>]`"
