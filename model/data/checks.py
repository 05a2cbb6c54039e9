"""Checks of each source as read (duplicate or no columns, infinite values, mixed types), and
of several sources agreeing on their columns' types (a numeric column that turned into text is
named with an example value)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from model.data.messages import brief, quote, quote_list
from model.data.source import SourceTable
from model.data.spec import MAX_NAME_CHARS
from model.data.validate import _first_true, _is_numeric_type, _is_string_type
from model.errors import DataValidationError

_NUMBER_RE = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"


def _check_source(st: SourceTable) -> None:
    names = [str(n) for n in st.table.column_names]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise DataValidationError(f"{st.label}: duplicate column names: {quote_list(duplicated)}")
    if st.table.num_columns == 0:
        raise DataValidationError(f"{st.label}: empty input (no columns)")
    for name in names:
        if len(name) > MAX_NAME_CHARS:
            raise DataValidationError(
                f"{st.label}: a column name of {len(name):,} characters ({quote(name, 40)}): "
                f"column names are limited to {MAX_NAME_CHARS:,} characters"
            )
    for name, col in zip(names, st.table.columns, strict=True):
        check_column(st.label, name, col.chunks)


def check_column(label: str, name: str, arrays: Iterable[pa.Array]) -> None:
    """The checks of a column's values, given in consecutive pieces (a table's chunks, or
    record batches read one at a time): no infinite number; a text column whose values are
    mostly numbers must hold only numbers (else it has mixed types). Rows are counted over
    all the pieces."""
    check = ColumnCheck()
    for array in arrays:
        check.add(array)
    check.verify(label, name)


class ColumnCheck:
    """What :func:`check_column` counts of a column, piece by piece: a part of the column
    (say one file's row groups, checked on a Dask worker) starts at row ``offset``, and the
    parts' checks, merged in order, give the whole column's."""

    def __init__(self, offset: int = 0) -> None:
        self.offset = offset  # the row the next piece starts at
        self.inf_count = self.n_present = self.n_numeric = 0
        self.first_inf: int | None = None
        self.first_text: tuple[int, object] | None = None

    def add(self, array: pa.Array) -> None:
        if pa.types.is_dictionary(array.type) and _is_string_type(array.type.value_type):
            self._add_dictionary(array)
        elif pa.types.is_floating(array.type) and array.null_count < len(array):
            inf = pc.is_inf(array)
            count = int(pc.sum(inf).as_py() or 0)
            if count and self.first_inf is None:
                self.first_inf = self.offset + _first_true(inf)
            self.inf_count += count
        elif _is_string_type(array.type):
            present = pc.and_(
                pc.is_valid(array), pc.invert(pc.match_substring_regex(array, r"^\s*$"))
            )
            numeric = pc.fill_null(pc.match_substring_regex(array, _NUMBER_RE), False)
            self.n_present += int(pc.sum(present).as_py() or 0)
            self.n_numeric += int(pc.sum(numeric).as_py() or 0)
            bad = pc.fill_null(pc.and_(present, pc.invert(numeric)), False)
            if self.first_text is None and pc.any(bad).as_py():
                row = _first_true(bad)
                self.first_text = self.offset + row, array[row].as_py()
        self.offset += len(array)

    def _add_dictionary(self, array: pa.DictionaryArray) -> None:
        """:meth:`add` of text read as a dictionary: the patterns are matched once per
        distinct value, and each value's rows are counted (the same counts, the same first
        row and value)."""
        values = array.dictionary
        present = pc.fill_null(pc.invert(pc.match_substring_regex(values, r"^\s*$")), False)
        numeric = pc.fill_null(pc.match_substring_regex(values, _NUMBER_RE), False)
        rows = np.bincount(array.indices.drop_null().to_numpy(), minlength=len(values))
        present_v = present.to_numpy(zero_copy_only=False)
        numeric_v = numeric.to_numpy(zero_copy_only=False)
        self.n_present += int(rows[present_v].sum())
        self.n_numeric += int(rows[numeric_v].sum())
        bad_v = present_v & ~numeric_v
        if self.first_text is None and rows[bad_v].any():
            bad = pc.fill_null(pc.take(pa.array(bad_v), array.indices), False)
            row = _first_true(bad)
            self.first_text = self.offset + row, array[row].as_py()

    def merge(self, later: ColumnCheck) -> None:
        """Add the check of the part that follows this one."""
        self.inf_count += later.inf_count
        self.n_present += later.n_present
        self.n_numeric += later.n_numeric
        self.first_inf = later.first_inf if self.first_inf is None else self.first_inf
        self.first_text = later.first_text if self.first_text is None else self.first_text
        self.offset = later.offset

    def verify(self, label: str, name: str) -> None:
        """Raise the error :func:`check_column` raises of the column checked so far."""
        if self.inf_count:
            raise DataValidationError(
                f"{label}: column {quote(name)} has {self.inf_count} infinite value(s), "
                f"first at row {self.first_inf}"
            )
        n_text = self.n_present - self.n_numeric
        if self.n_numeric and n_text and self.n_numeric >= n_text and self.first_text:
            row, value = self.first_text
            raise DataValidationError(
                f"{label}: column {quote(name)} has mixed types: {self.n_numeric} numeric "
                f"value(s) and {n_text} non-numeric value(s), e.g. {quote(value)} at row {row}"
            )


def _check_schemas_agree(parts: list[SourceTable]) -> None:
    seen: dict[str, tuple[pa.DataType, str]] = {}
    for part in parts:
        for fld in part.table.schema:
            if fld.name not in seen or pa.types.is_null(seen[fld.name][0]):
                seen[fld.name] = (fld.type, part.label)
                continue
            first_type, first_label = seen[fld.name]
            if pa.types.is_null(fld.type) or first_type == fld.type:
                continue
            if _is_numeric_type(first_type) and _is_numeric_type(fld.type):
                continue
            if _is_string_type(first_type) and _is_string_type(fld.type):
                continue  # string and large_string: one kind (pandas writes either)
            if pa.types.is_dictionary(first_type) or pa.types.is_dictionary(fld.type):
                continue
            if _is_numeric_type(first_type) and _is_string_type(fld.type):
                col = part.table.column(fld.name)
                present = pc.and_(
                    pc.is_valid(col), pc.invert(pc.match_substring_regex(col, _NUMBER_RE))
                )
                example = (
                    col[_first_true(pc.fill_null(present, False))].as_py()
                    if pc.any(present).as_py()
                    else None
                )
                raise DataValidationError(
                    f"column {quote(fld.name)} is numeric in {first_label} but text in "
                    f"{part.label} (e.g. {quote(example)}): a numeric column turned into text"
                )
            raise DataValidationError(
                f"column {quote(fld.name)} has type {brief(first_type, 60)} in {first_label} "
                f"but {brief(fld.type, 60)} in {part.label}"
            )
