"""Checking a cycle's flow parameters before any work: every error is one line that names the
parameter and says which values are accepted (:class:`~model.errors.ParameterError`).

``check_parameters`` refuses unknown names, validates the values with
:class:`~model.cycle.config.RetrainingConfig` (types and bounds) and then the options of the
promotion gate with ``ModelComparator`` itself (guardrail metrics, margins, combinations), so a
bad ``guardrails`` is refused before training rather than after registering.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from pydantic import ValidationError

from model.cycle.config import RetrainingConfig
from model.errors import ParameterError, RetrainError

MAX_QUOTE = 80
"""At most this many characters of a value are quoted in a message."""
_GATE_NAMES = {"random_state": "seed"}
"""Comparator option -> flow parameter, where the names differ."""


def known_parameters() -> list[str]:
    return list(RetrainingConfig.model_fields)


def check_parameters(
    values: Mapping[str, Any], defaults: Mapping[str, Any] | None = None
) -> RetrainingConfig:
    """The validated configuration of ``defaults`` updated with ``values``, or ParameterError."""
    known = known_parameters()
    unknown = [k for k in values if k not in known]
    if unknown:
        names = ", ".join(repr(_quote(k)) for k in unknown)
        what = "parameter" if len(unknown) == 1 else "parameters"
        raise ParameterError(f"unknown {what} {names}; known: {', '.join(known)}")
    merged = {**(defaults or {}), **values}
    try:
        cfg = RetrainingConfig(**merged)
    except ValidationError as exc:
        raise ParameterError(_describe(exc, merged)) from None
    check_gate_options(cfg)
    return cfg


def check_gate_options(cfg: RetrainingConfig) -> None:
    """Build the promotion gate's ``ModelComparator`` once from ``cfg``; a refused option is a
    ParameterError naming the flow parameter (each option alone, else the combination)."""
    from model.gate.comparator import ModelComparator

    options = cfg.comparator_params()
    try:
        ModelComparator(**options)
        return
    except RetrainError as exc:
        combined = exc
    for key, value in options.items():
        try:
            ModelComparator(**{key: value})
        except RetrainError as exc:
            name = _GATE_NAMES.get(key, key)
            raise ParameterError(f"parameter {name}: {_quote(str(exc), 300)}") from None
    names = ", ".join(_GATE_NAMES.get(k, k) for k in options)
    raise ParameterError(
        f"the gate's parameters ({names}) do not fit together: {_quote(str(combined), 300)}"
    )


def _describe(exc: ValidationError, values: Mapping[str, Any]) -> str:
    problems = []
    for err in exc.errors():
        loc = err.get("loc") or ("?",)
        name = str(loc[0])
        if name in OBJECT_PARAMETERS:
            problems.append(f"parameter {object_problem(err)}")
        elif err.get("type") == "missing":
            problems.append(f"parameter {name} is required ({accepted(name)})")
        elif err.get("type") == "extra_forbidden":
            problems.append(f"unknown parameter {name!r}; known: {', '.join(known_parameters())}")
        else:
            value = _quote(repr(values.get(name, err.get("input"))))
            problems.append(
                f"parameter {name}: {value} is not accepted; accepted: {accepted(name)}"
            )
    seen: list[str] = []
    for p in problems:  # one line per parameter (a list may fail at several positions)
        if p not in seen:
            seen.append(p)
    return "; ".join(seen)


OBJECT_PARAMETERS = frozenset({"sweep"})
"""Parameters whose value is an object: a problem is named by its key inside it."""


def object_problem(err: Any) -> str:
    """``sweep.learning_rate.0: ...``: where inside an object parameter, and what is wrong."""
    loc = [str(p) for p in err.get("loc") or ("?",)]
    message = str(err.get("msg", "")).removeprefix("Value error, ")
    if err.get("type") == "extra_forbidden" and len(loc) > 1:
        from model.cycle.sweep import SweepSpec

        message = f"unknown key; known: {', '.join(SweepSpec.model_fields)}"
    elif err.get("type") != "value_error":
        message += f" (got {_quote(repr(err.get('input')))})"
    return f"{'.'.join(loc)}: {message}"


def _quote(text: str, limit: int = MAX_QUOTE) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@cache
def _schema() -> dict[str, Any]:
    return RetrainingConfig.model_json_schema()


def accepted(name: str) -> str:
    """The values parameter ``name`` accepts, in words (from the configuration's schema)."""
    schema = _schema()
    prop = schema.get("properties", {}).get(name)
    if prop is None:
        return "unknown parameter"
    return _words(prop, schema.get("$defs", {}))


def _num(x: Any) -> str:
    return str(int(x)) if isinstance(x, float) and x.is_integer() and abs(x) < 1e15 else str(x)


def _words(prop: dict[str, Any], defs: dict[str, Any]) -> str:
    if "$ref" in prop:
        return _words(defs.get(prop["$ref"].rsplit("/", 1)[-1], {}), defs)
    if "anyOf" in prop:
        parts = [_words(p, defs) for p in prop["anyOf"]]
        text = " or ".join(p for p in parts if p != "null")
        return f"{text}, or null" if "null" in parts else text
    if "enum" in prop:
        return "one of " + ", ".join(repr(v) for v in prop["enum"])
    if "const" in prop:
        return repr(prop["const"])
    kind = prop.get("type")
    if kind == "null":
        return "null"
    if kind == "boolean":
        return "true or false"
    if kind in ("integer", "number"):
        word = "an integer" if kind == "integer" else "a number"
        lo, hi = prop.get("minimum"), prop.get("maximum")
        xlo, xhi = prop.get("exclusiveMinimum"), prop.get("exclusiveMaximum")
        if lo is not None and hi is not None:
            return f"{word} from {_num(lo)} to {_num(hi)}"
        bounds = []
        if lo is not None:
            bounds.append(f">= {_num(lo)}")
        if xlo is not None:
            bounds.append(f"> {_num(xlo)}")
        if hi is not None:
            bounds.append(f"<= {_num(hi)}")
        if xhi is not None:
            bounds.append(f"< {_num(xhi)}")
        return f"{word} {' and '.join(bounds)}".strip()
    if kind == "string":
        n = prop.get("minLength")
        return f"a string of at least {n} character(s)" if n else "a string"
    if kind == "array":
        item = _words(prop.get("items", {}), defs)
        lo, hi = prop.get("minItems"), prop.get("maxItems")
        size = f" of {lo} to {hi}" if lo is not None and hi is not None else ""
        return f"a list{size} items, each {item}"
    if kind == "object":
        extra = prop.get("additionalProperties")
        inner = _words(extra, defs) if isinstance(extra, dict) else "any value"
        return f"an object mapping names to {inner}"
    return "a value of the documented type"
