"""The feature spec: which columns are features (numeric / categorical), the target, the id,
the timestamp and which columns are excluded; inferred from dtypes (``infer_spec``) or resolved
for a table about to be prepared. ``MISSING_LEVEL`` is the category a missing value becomes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd
import pyarrow as pa

from model.data.messages import quote, quote_list
from model.errors import DataValidationError

MISSING_LEVEL = "missing"
AUTO_ID_COLUMNS = ("id",)
MAX_LEVEL_CHARS = 1_000
"""A categorical level or target label longer than this is an error (levels are stored in the
manifest and in ``model.json``: a 50 MB value must not become a 50 MB model file)."""
MAX_NAME_CHARS = 1_000
"""A column name longer than this is an error (names are stored in the spec and model.json)."""
RESERVED_LOG_COLUMNS = (
    "__request_time__",
    "__served_version__",
    "__role__",
    "__served_score__",
    "__shadow_version__",
    "__shadow_score__",
    "__label__",
    "__shadow2_version__",
    "__shadow2_score__",
)
"""The prediction log's own columns (``model.serving.log``): never features; a table that
has them (a labelled batch from ``retrain labels add``) gets them as excluded columns."""


@dataclass
class FeatureSpec:
    """Which columns are features (numeric / categorical), the target, and what is excluded."""

    target: str = "target"
    numeric: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    id_column: str | None = None
    timestamp_column: str | None = None
    excluded: list[str] = field(default_factory=list)

    @property
    def features(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSpec:
        if not isinstance(data, dict):
            raise DataValidationError(
                f"feature spec must be a JSON object, got {type(data).__name__}"
            )
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise DataValidationError(
                f"feature spec has unknown keys: {quote_list(sorted(unknown, key=str))}"
            )
        for key in ("numeric", "categorical", "excluded"):
            value = data.get(key, [])
            if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
                raise DataValidationError(
                    f"feature spec: {quote(key)} must be a list of column names, got {quote(value)}"
                )
        for key in ("target", "id_column", "timestamp_column"):
            value = data.get(key)
            if value is not None and not isinstance(value, str):
                raise DataValidationError(
                    f"feature spec: {quote(key)} must be a column name, got {quote(value)}"
                )
        return cls(
            target=str(data.get("target", "target")),
            numeric=list(data.get("numeric", [])),
            categorical=list(data.get("categorical", [])),
            id_column=data.get("id_column"),
            timestamp_column=data.get("timestamp_column"),
            excluded=list(data.get("excluded", [])),
        )

    def check(
        self,
        df: pd.DataFrame | pa.Table,
        source: str = "data",
        *,
        require_target: bool = True,
        strict: bool = False,
    ) -> None:
        """Raise DataValidationError naming missing feature (and target) columns.

        With ``strict``, columns the spec does not mention (not a feature, the target, the id,
        the timestamp or an excluded column) are an error too.
        """
        self.check_roles(source)
        columns = [str(c) for c in _column_names(df)]
        needed = list(self.features)
        if require_target:
            needed.append(self.target)
        missing = [c for c in needed if c not in columns]
        if missing:
            raise DataValidationError(
                f"{source}: columns required by the feature spec are missing: {quote_list(missing)}"
            )
        if strict:
            known = {*self.features, self.target, self.id_column, self.timestamp_column}
            known.update(self.excluded)
            unexpected = [c for c in columns if c not in known]
            if unexpected:
                raise DataValidationError(
                    f"{source}: columns not in the feature spec: {quote_list(unexpected)} "
                    "(declare them as features or excluded columns)"
                )

    def check_roles(self, source: str = "feature spec") -> None:
        """Each column has one role: a feature once, never also the target, id, timestamp or
        an excluded column (a target declared as a feature would leak the label)."""
        features = self.features
        repeated = sorted({c for c in features if features.count(c) > 1})
        if repeated:
            raise DataValidationError(
                f"{source}: features listed more than once: {quote_list(repeated)}"
            )
        roles = {"target": self.target, "id": self.id_column, "timestamp": self.timestamp_column}
        clashes = [
            f"{quote(c)} ({role})" for role, c in roles.items() if c is not None and c in features
        ]
        clashes += [f"{quote(c)} (excluded)" for c in self.excluded if c in features]
        if self.target in (self.id_column, self.timestamp_column):
            clashes.append(f"{quote(self.target)} (target, also declared as id or timestamp)")
        if clashes:
            raise DataValidationError(
                f"{source}: the feature spec declares as features columns with another role: "
                + ", ".join(clashes[:2])
                + (f" and {len(clashes) - 2} more" if len(clashes) > 2 else "")
            )


def _column_names(df: pd.DataFrame | pa.Table) -> list[Any]:
    return list(df.column_names) if isinstance(df, pa.Table) else list(df.columns)


def is_categorical_dtype(series: pd.Series) -> bool:
    """pandas category, string, object and bool columns are categorical."""
    dtype = series.dtype
    return bool(
        isinstance(dtype, pd.CategoricalDtype)
        or pd.api.types.is_string_dtype(dtype)
        or pd.api.types.is_object_dtype(dtype)
        or pd.api.types.is_bool_dtype(dtype)
    )


def infer_spec(
    df: pd.DataFrame,
    target: str = "target",
    id_column: str | None = None,
    timestamp_column: str | None = None,
    exclude: Iterable[str] = (),
    categorical_columns: Iterable[str] = (),
    numeric_columns: Iterable[str] = (),
) -> FeatureSpec:
    """Infer numeric vs categorical features from dtypes; id/timestamp/excluded are not features.

    Declared ``categorical_columns`` (e.g. integer codes) and ``numeric_columns`` override the
    dtype; a declared numeric column must hold numbers.
    """
    excluded = [c for c in exclude if c in df.columns]
    skip = {target, id_column, timestamp_column, *excluded}
    declared_cat, declared_num = set(categorical_columns), set(numeric_columns)
    numeric: list[str] = []
    categorical: list[str] = []
    for col in df.columns:
        if col in skip:
            continue
        if col in declared_cat:
            categorical.append(str(col))
        elif col in declared_num:
            if not pd.api.types.is_numeric_dtype(df[col]) or pd.api.types.is_bool_dtype(df[col]):
                raise DataValidationError(
                    f"column {quote(str(col))} is declared numeric but holds {df[col].dtype} values"
                )
            numeric.append(str(col))
        elif is_categorical_dtype(df[col]):
            categorical.append(str(col))
        elif pd.api.types.is_numeric_dtype(df[col]):
            numeric.append(str(col))
        else:  # datetimes and other non-feature types
            excluded.append(str(col))
    return FeatureSpec(
        target=target,
        numeric=numeric,
        categorical=categorical,
        id_column=id_column,
        timestamp_column=timestamp_column,
        excluded=excluded,
    )


def _resolve_spec(
    table: pa.Table,
    spec: FeatureSpec | None,
    *,
    target: str,
    id_column: str | None,
    timestamp_column: str | None,
    exclude: Sequence[str],
    partition_columns: Sequence[str],
    label: str,
    detect_id: bool = True,
    categorical_columns: Sequence[str] = (),
    numeric_columns: Sequence[str] = (),
) -> FeatureSpec:
    names = [str(n) for n in table.column_names]
    both = sorted(set(categorical_columns) & set(numeric_columns))
    if both:
        raise DataValidationError(
            f"{label}: column(s) {quote_list(both)} declared both categorical and numeric"
        )
    for role, declared in (("categorical", categorical_columns), ("numeric", numeric_columns)):
        unknown = [c for c in declared if c not in names]
        if unknown:
            raise DataValidationError(
                f"{label}: declared {role} column(s) {quote_list(unknown)} are not in the data "
                f"(columns: {quote_list(names, 60)})"
            )
    if spec is not None:
        spec = FeatureSpec.from_dict(spec.to_dict())
        extra = [c for c in partition_columns if c not in spec.excluded and c not in spec.features]
        extra += [c for c in RESERVED_LOG_COLUMNS if c in names and c not in spec.excluded]
        spec.excluded.extend(extra)
        return spec
    if target not in names:
        raise DataValidationError(
            f"{label}: missing target column {quote(target)} (columns: {quote_list(names)})"
        )
    if id_column is None and detect_id:
        id_column = next((c for c in AUTO_ID_COLUMNS if c in names and c != target), None)
    for role, col in (("id", id_column), ("timestamp", timestamp_column)):
        if col is not None and col not in names:
            raise DataValidationError(
                f"{label}: declared {role} column {quote(col)} is not in the data"
            )
    unknown = [c for c in exclude if c not in names]
    if unknown:
        raise DataValidationError(
            f"{label}: excluded column(s) {quote_list(unknown)} are not in the data "
            f"(columns: {quote_list(names, 60)})"
        )
    empty = table.schema.empty_table().to_pandas(date_as_object=False)
    return infer_spec(
        empty,
        target=target,
        id_column=id_column,
        timestamp_column=timestamp_column,
        exclude=[*partition_columns, *exclude, *(c for c in RESERVED_LOG_COLUMNS if c in names)],
        categorical_columns=categorical_columns,
        numeric_columns=numeric_columns,
    )
