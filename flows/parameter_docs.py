"""Flow parameter descriptions for the Prefect run form, generated from the parameter types.

Prefect builds the form's descriptions from the flow docstring's ``Args:`` section (Google
style), not from ``Annotated[..., Field(description=...)]``. :func:`document_parameters` writes
that section from the annotations, so the types stay the one source of truth: each line is
the ``Field`` description plus the default, "default: from the model's configuration, else
<built-in>" for a parameter the configuration fills (``None`` in the signature), else the
default as it is.

The run form renders descriptions as Markdown, where ``<name>`` is an HTML tag and vanishes:
every word with an angle-bracketed part (``[models.<name>]``, ``data/<model>/incoming``) is
written as a code span (:func:`literal_angles`), which shows it as text.
"""

from __future__ import annotations

import inspect
import json
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from pydantic.fields import FieldInfo

from model.cycle.models_config import builtin_default, configurable_keys

F = TypeVar("F", bound=Callable[..., Any])
FROM_CONFIG = "default: from the model's configuration"
MODEL_NAME_DEFAULT_TEXT = 'RETRAIN_MODEL_NAME, else "demo"'
NONE_MEANS = {
    "data_path": "data/<model>/raw/customers.parquet under RETRAIN_HOME",
    "incoming_path": "data/<model>/incoming under RETRAIN_HOME",
    "newest_batches": "all batches",
    "id_column": "a hash of the row",
}
"""What a built-in default of None means, where "null" would not say (else: off)."""
ANGLED_WORD = re.compile(r"[\w.\[\]/:=-]*<[\w-]+>(?:[\w\[\]/:=<>-]|\.(?=[\w\[<]))*")
"""A word with an ``<angle-bracketed>`` part; a sentence's closing full stop is not in it."""
CODE_SPAN = re.compile(r"(`+[^`]*`+)")


def literal_angles(text: str) -> str:
    """``text`` with each word that has an angle-bracketed part as a Markdown code span
    (code spans already there are left as they are)."""
    parts = CODE_SPAN.split(text)  # odd items: code spans
    return "".join(
        part if i % 2 else ANGLED_WORD.sub(lambda m: f"`{m.group(0)}`", part)
        for i, part in enumerate(parts)
    )


def annotation_description(annotation: Any) -> str | None:
    """The ``Field(description=...)`` inside an annotation (also inside ``X | None``)."""
    if typing.get_origin(annotation) is typing.Annotated:
        for meta in annotation.__metadata__:
            if isinstance(meta, FieldInfo) and meta.description:
                return meta.description
        return annotation_description(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = annotation_description(arg)
            if found:
                return found
    return None


def show_default(value: Any, name: str | None = None) -> str:
    """A default as the run form's JSON shows it (``[64, 32]``, ``"auto"``); a built-in None
    in words (:data:`NONE_MEANS`, else "off")."""
    if value is None and name is not None:
        return NONE_MEANS.get(name, "off")
    return json.dumps(value)


def parameter_descriptions(
    fn: Callable[..., Any],
    config_filled: Iterable[str] | None = None,
    shown_defaults: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Each parameter's form description: its type's description and its default.

    A parameter is filled from the configuration when its default is None and it is a
    configurable key (``config_filled`` overrides which); ``shown_defaults`` gives the words
    for a default that is computed (e.g. the model name's)."""
    hints = typing.get_type_hints(fn, include_extras=True)
    filled = set(configurable_keys() if config_filled is None else config_filled)
    out: dict[str, str] = {}
    for name, param in inspect.signature(fn).parameters.items():
        text = annotation_description(hints.get(name))
        if not text:
            raise TypeError(f"{fn.__name__}: parameter {name} has no Field(description=...)")
        text = text.rstrip()
        if not text.endswith("."):
            text += "."
        if shown_defaults and name in shown_defaults:
            out[name] = f"{text} (default: {shown_defaults[name]})"
        elif param.default is None and name in filled:
            out[name] = f"{text} ({FROM_CONFIG}, else {show_default(builtin_default(name), name)})"
        elif param.default is inspect.Parameter.empty:
            out[name] = f"{text} (required)"
        else:
            out[name] = f"{text} (default: {show_default(param.default)})"
    return {name: literal_angles(text) for name, text in out.items()}


def args_section(descriptions: dict[str, str]) -> str:
    """A Google-style ``Args:`` section (one entry per parameter)."""
    lines = ["Args:"]
    for name, text in descriptions.items():
        lines.append(f"    {name}: {text}")
    return "\n".join(lines)


def document_parameters(
    config_filled: Iterable[str] | None = None, shown_defaults: Mapping[str, str] | None = None
) -> Callable[[F], F]:
    """Decorator (below ``@flow``): append the generated ``Args:`` section to the docstring."""

    def decorate(fn: F) -> F:
        doc = inspect.cleandoc(fn.__doc__ or "")
        section = args_section(parameter_descriptions(fn, config_filled, shown_defaults))
        fn.__doc__ = f"{doc}\n\n{section}\n" if doc else f"{section}\n"
        return fn

    return decorate
