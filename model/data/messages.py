"""Bounded quoting for error messages: a message names the file, column and value, but never
carries a whole 50 MB value (or a pyarrow error that embeds one) along.

``quote`` is the one way a message in ``model.data`` shows a value or a column name;
``quote_list`` shows a list of them, ``brief`` the text of an underlying exception.
"""

from __future__ import annotations

from collections.abc import Iterable

QUOTE_CHARS = 80
"""At most this many characters of a quoted value (plus its length when cut)."""
LIST_CHARS = 100
"""A quoted list stops adding items past this many characters (the rest are counted)."""
BRIEF_CHARS = 160
"""At most this many characters of an underlying exception's text."""


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def quote(value: object, limit: int = QUOTE_CHARS) -> str:
    """``repr(value)`` in at most about ``limit`` characters.

    A longer string is cut (``'abc…'``) and its length stated, so ``quote("x" * 50_000_000)``
    is ``'xxx…xx…' (50,000,000 characters)``; other values are cut after their ``repr``.
    """
    if isinstance(value, str):
        shown = repr(value[: limit + 1])
        if len(value) <= limit and len(shown) <= limit + 2:
            return shown
        return f"{_cut(shown, limit)} ({len(value):,} characters)"
    if isinstance(value, bytes | bytearray):
        shown = repr(bytes(value[: limit + 1]))
        if len(value) <= limit and len(shown) <= limit + 3:
            return shown
        return f"{_cut(shown, limit)} ({len(value):,} bytes)"
    return _cut(repr(value), limit)


def quote_list(values: Iterable[object], limit: int = LIST_CHARS) -> str:
    """``[a, b, ...]`` with each item quoted, stopping near ``limit`` characters
    (``['a', 'b', … 3 more]``): at most about ``limit + 40`` characters in all."""
    items = list(values)
    shown: list[str] = []
    used = 0
    for item in items:
        text = quote(item, min(QUOTE_CHARS, limit))
        if shown and used + len(text) > limit:
            break
        shown.append(text)
        used += len(text) + 2
    rest = len(items) - len(shown)
    if rest:
        shown.append(f"… {rest} more")
    return "[" + ", ".join(shown) + "]"


def brief(exc: object, limit: int = BRIEF_CHARS) -> str:
    """An exception's (or a type's) text on one line, cut to ``limit`` characters (pyarrow and
    OS errors may quote a whole value or span lines; a struct type can be long)."""
    text = str(exc) if not isinstance(exc, OSError) or not exc.strerror else exc.strerror
    return _cut(" ".join(text.split()), limit)
