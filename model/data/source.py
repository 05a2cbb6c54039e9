"""One source read into Arrow (``SourceTable``): shared by reading and its checks."""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa


@dataclass
class SourceTable:
    """One source read into Arrow: the table, what it was, its files and partition columns."""

    table: pa.Table
    label: str
    kind: str
    files: list[str] = field(default_factory=list)
    partition_columns: list[str] = field(default_factory=list)
    rows: int | None = None
    """Its rows when ``table`` holds only its schema (a source streamed, not read whole)."""

    @property
    def num_rows(self) -> int:
        return self.table.num_rows if self.rows is None else self.rows
