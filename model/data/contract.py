"""What a batch must hold for a later cycle to use it: the model's two classes in its training
encoding, ids of its id column's type, features of their training types.

:class:`BatchContract` comes from the manifest of the data a model was trained on (its
``target_labels`` and the train split's schema). ``retrain labels add`` writes its batch
through it (:meth:`BatchContract.conform_table`), so a label such as ``yes``, ``2`` or ``0.5``
for a 0/1 model, an id ``abc`` for an integer id column, or text codes for an integer-coded
feature is refused there, naming the file, the column and the value, and ``True``/``False``
labels for a 0/1 model are written as 1/0: two label files in one folder always agree. The
cycle checks every new batch against the same contract (:meth:`BatchContract.problem`) and sets
aside a batch that breaks it (``model.cycle.quarantine``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from model.data.manifest import Manifest
from model.data.messages import quote
from model.data.read import CSV_SUFFIXES
from model.data.validate import _is_numeric_type, _is_string_type, number_range_problem
from model.errors import DataValidationError

_TRUE = frozenset({"true", "t", "yes", "y"})
_FALSE = frozenset({"false", "f", "no", "n"})


def _number(value: Any) -> float | None:
    """``value`` as a number when it is one (bool, int, float or numeric text), else None."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _class_kind(classes: tuple[str, str]) -> str:
    """How the training data held its classes: ``integer``, ``number``, ``bool`` or ``text``."""
    lowered = {c.lower() for c in classes}
    if lowered == {"true", "false"}:
        return "bool"
    numbers = [_number(c) for c in classes]
    if all(n is not None and math.isfinite(n) for n in numbers):
        integral = all(float(n).is_integer() for n in numbers if n is not None)
        return "integer" if integral and all(c.lstrip("-").isdigit() for c in classes) else "number"
    return "text"


_KIND_TYPES = {
    "bool": pa.bool_(),
    "integer": pa.int64(),
    "number": pa.float64(),
    "text": pa.string(),
}


@dataclass(frozen=True)
class BatchContract:
    """A model's expectations of a batch (see the module)."""

    target: str
    classes: tuple[str, str]
    """``(negative, positive)`` as the training data's manifest records them (text)."""
    id_column: str | None = None
    id_type: pa.DataType | None = None
    features: dict[str, pa.DataType] = field(default_factory=dict)
    source: str = "the model's training data"

    @property
    def kind(self) -> str:
        return _class_kind(self.classes)

    @property
    def target_type(self) -> pa.DataType:
        return _KIND_TYPES[self.kind]

    @classmethod
    def from_manifest(cls, manifest: Manifest, source: str | None = None) -> BatchContract:
        labels = manifest.target_labels
        if "negative" not in labels or "positive" not in labels:
            raise DataValidationError(
                f"{manifest.path}: the manifest records no target classes (target_labels)"
            )
        try:
            split = {f.name: f.type for f in pq.read_schema(manifest.split_path("train"))}
        except (OSError, pa.ArrowInvalid) as exc:
            raise DataValidationError(
                f"{manifest.split_path('train')}: the training split is unreadable: {exc}"
            ) from exc
        raw = _raw_types(manifest)
        spec = manifest.spec
        features = {c: raw.get(c, split.get(c)) for c in spec.numeric}
        features.update({c: raw[c] for c in spec.categorical if c in raw})  # split: text
        id_col = spec.id_column
        return cls(
            target=spec.target,
            classes=(str(labels["negative"]), str(labels["positive"])),
            id_column=id_col,
            id_type=(raw.get(id_col) or split.get(id_col)) if id_col else None,
            features={c: t for c, t in features.items() if t is not None},
            source=source or str(manifest.path),
        )

    @classmethod
    def from_table(
        cls, table: pa.Table, target: str, id_column: str | None, source: str
    ) -> BatchContract | None:
        """The contract of base data not yet trained on (the first cycle): its two classes
        and column types; None when it has no target column or not exactly two classes (its
        own preparation then says what is wrong)."""
        if target not in table.column_names:
            return None
        classes = [v for v in pc.unique(table.column(target)).to_pylist() if v is not None]
        if len(classes) != 2:
            return None
        negative, positive = sorted(classes, key=lambda v: (str(v).lower() in _TRUE, str(v)))
        types = {f.name: f.type for f in table.schema}
        id_col = id_column if id_column in types else None
        return cls(
            target=target,
            classes=(str(negative), str(positive)),
            id_column=id_col,
            id_type=types.get(id_col) if id_col else None,
            features={n: t for n, t in types.items() if n not in (target, id_col)},
            source=source,
        )

    def describe_classes(self) -> str:
        return f"{quote(self.classes[0])} or {quote(self.classes[1])}"

    # ------------------------------------------------------------------ one value at a time

    def label_class(self, value: Any) -> int | None:
        """0 (negative) or 1 (positive) for a label that names one of the two classes in the
        training encoding (1/0, 1.0, "1" and True/False for a 0/1 model; the text, any case,
        for a text model), else None."""
        if value is None:
            return None
        kind = self.kind
        if kind in ("integer", "number"):
            n = _number(value)
            if n is None:
                return None
            for k, c in enumerate(self.classes):
                if _number(c) == n:
                    return k
            return None
        if kind == "bool":
            true_class = 1 if self.classes[1].lower() == "true" else 0
            text = str(value).strip().lower()
            if value is True or text in _TRUE or text == "1" or _number(value) == 1.0:
                return true_class
            if value is False or text in _FALSE or text == "0" or _number(value) == 0.0:
                return 1 - true_class
            return None
        text = str(value).strip()
        for k, c in enumerate(self.classes):
            if text == c or text.lower() == c.lower():
                return k
        return None

    def target_array(self, values: Sequence[Any], where: str, column: str) -> pa.Array:
        """The labels in the training encoding; a value that is not one of the two classes is
        an error naming ``where`` (the file), ``column``, the row and the value."""
        out: list[Any] = []
        for row, value in enumerate(values):
            k = self.label_class(value)
            if k is None:
                raise DataValidationError(
                    f"{where}: column {quote(column)}, row {row}: label {quote(value)} is not one "
                    f"of the model's two classes {self.describe_classes()} (as in {self.source})"
                )
            out.append(self.classes[k])
        typed = pa.array(out, pa.string())
        if self.kind == "bool":
            return pc.equal(pc.utf8_lower(typed), "true")
        return typed.cast(self.target_type)

    def id_array(self, values: Sequence[Any], where: str, column: str) -> pa.Array:
        """Ids as the model's id column has them (an integer id accepts integers, integral
        numbers and digit text; a text id accepts text and integers)."""
        if self.id_type is None or not pa.types.is_integer(self.id_type):
            return pa.array([_id_text(v) for v in values], pa.string())
        out: list[int] = []
        for row, value in enumerate(values):
            n = _integer(value)
            if n is None:
                raise DataValidationError(
                    f"{where}: column {quote(column)}, row {row}: id {quote(value)} is not an "
                    f"integer, the type of the model's id column {quote(self.id_column)}"
                )
            out.append(n)
        return pa.array(out, pa.int64())

    # ------------------------------------------------------------------ whole columns

    def feature_array(self, name: str, array: pa.Array | pa.ChunkedArray, where: str) -> Any:
        """A feature column in a type that reads together with the training data: text codes
        of an integer-coded feature go back to integers, numbers of a text feature to text;
        numbers stay numbers (integers and floats mix)."""
        want = self.features.get(name)
        have = array.type
        if want is None or have == want or pa.types.is_null(have):
            return array
        if _is_numeric_type(want) and _is_numeric_type(have):
            return array
        if _is_string_type(want):
            return pc.cast(array, want)
        try:
            return pc.cast(array, want)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise DataValidationError(
                f"{where}: column {quote(name)} has values that are not {want} as in the model's "
                f"training data ({exc})"
            ) from exc

    def problem(self, table: pa.Table, where: str) -> str | None:
        """Why a later cycle cannot use ``table`` (a batch read whole), or None: the target
        missing or holding other values than the two classes, an id column of another type, a
        feature of another kind (text where the model has numbers, or the reverse)."""
        names = table.column_names
        if self.target not in names:
            return f"{where}: no target column {quote(self.target)}"
        target = table.column(self.target)
        if target.null_count:
            return f"{where}: column {quote(self.target)} has {target.null_count} missing label(s)"
        for value in pc.unique(target).to_pylist():
            if self.label_class(value) is None:
                return (
                    f"{where}: column {quote(self.target)}: label {quote(value)} is not one of the "
                    f"model's two classes {self.describe_classes()}"
                )
        if self.id_column and self.id_type is not None and self.id_column in names:
            have = table.column(self.id_column).type
            if pa.types.is_integer(self.id_type) and not pa.types.is_integer(have):
                return (
                    f"{where}: id column {quote(self.id_column)} has type {have}; the model's "
                    f"ids are {self.id_type}"
                )
        numeric = [n for n, t in self.features.items() if _is_numeric_type(t)]
        too_big = number_range_problem(table, numeric, where)
        if too_big is not None:
            return too_big
        for name, want in self.features.items():
            if name not in names or pa.types.is_null(table.column(name).type):
                continue  # a schema change: imputed by the cycle's rule
            have = table.column(name).type
            if _type_kind(want) != _type_kind(have):
                return (
                    f"{where}: column {quote(name)} has type {have}; the model was trained on "
                    f"{want}"
                )
        return None


def _raw_types(manifest: Manifest) -> dict[str, pa.DataType]:
    """The column types of the first source the data was prepared from, when it is still
    there: a Parquet file's footer, or a CSV file's first block (the prepared splits hold
    categorical features as text, whatever the raw data had)."""
    for name in manifest.sources:
        path = Path(name)
        try:
            if not path.is_file():
                continue
            if path.name.lower().endswith(CSV_SUFFIXES):
                with pacsv.open_csv(path) as reader:
                    return {f.name: f.type for f in reader.schema}
            return {f.name: f.type for f in pq.read_schema(path)}
        except (OSError, pa.ArrowInvalid):
            continue
    return {}


def _type_kind(t: pa.DataType) -> str:
    """Which types read together: numbers (integers and floats mix), text, bool, others."""
    if pa.types.is_dictionary(t):
        t = t.value_type
    if _is_numeric_type(t):
        return "number"
    if _is_string_type(t):
        return "text"
    return str(t)


def _id_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _integer(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**63 else None
    if isinstance(value, float):
        return int(value) if value.is_integer() and abs(value) < 2**63 else None
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit():
            n = int(text)
            return n if -(2**63) <= n < 2**63 else None
    return None
