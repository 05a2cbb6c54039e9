"""Flow parameter descriptions for the Prefect UI's run form, from one source of truth.

Prefect 3 takes a parameter's description from the flow docstring's ``Args:`` section (not
from ``Annotated[..., Field(description=...)]``). :func:`document` writes that section from the
descriptions of :class:`~model.cycle.config.RetrainingConfig`'s fields (or a given mapping), so
the form, the validation and ``retrain``'s messages say the same thing; a parameter whose
default comes from the model's configuration says so, with the built-in default beside it.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from model.cycle.config import RetrainingConfig
from model.cycle.models_config import BUILTIN_DEFAULTS

F = TypeVar("F", bound=Callable[..., Any])
FROM_CONFIG = "default: from the model's configuration"


def describe(name: str) -> str:
    """The description of ``RetrainingConfig`` field ``name``."""
    field = RetrainingConfig.model_fields[name]
    text = field.description
    if not text:
        for meta in field.metadata:
            text = getattr(meta, "description", None) or text
    if not text:
        raise ValueError(f"parameter {name!r} has no description")
    return text


def _shown(value: Any) -> str:
    return json.dumps(value) if value is not None else "none"


def document(summary: str, descriptions: Mapping[str, str] | None = None) -> Callable[[F], F]:
    """Set ``fn.__doc__`` to ``summary`` plus an ``Args:`` section covering every parameter.

    A parameter whose signature default is None and that has a built-in default is described as
    coming from the model's configuration (built-in default shown); others show their default.
    """

    def wrap(fn: F) -> F:
        lines = [summary.strip(), "", "Args:"]
        for name, param in inspect.signature(fn).parameters.items():
            text = (descriptions or {}).get(name) or describe(name)
            text = text.rstrip(".")
            if param.default is None and name in BUILTIN_DEFAULTS and name != "drift_report_path":
                text += f"; {FROM_CONFIG} (built-in: {_shown(BUILTIN_DEFAULTS[name])})."
            else:
                text += f"; default: {_shown(param.default)}."
            lines.append(f"    {name}: {text}")
        fn.__doc__ = "\n".join(lines) + "\n"
        return fn

    return wrap
