"""Hypothesis strategies of request bodies for ``POST /predict`` (JSON and Arrow: stream, file,
Parquet), well-formed and not, for the models of ``serving_models`` (features ``x`` numeric,
``c`` and ``city`` categorical, id ``id``)."""

from __future__ import annotations

import io
import json
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
from hypothesis import strategies as st

ARROW_STREAM = "application/vnd.apache.arrow.stream"
ARROW_FILE = "application/vnd.apache.arrow.file"
PARQUET = "application/vnd.apache.parquet"
NAMES = ["id", "x", "c", "city"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["a", "b", "p", "q", "1", "2.5", "", " "]),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=6,
)
good_value = {
    "id": st.one_of(
        st.integers(-(2**63), 2**63 - 1), st.integers(0, 10**6), st.integers(0, 10**6).map(str)
    ),
    "x": st.one_of(st.none(), st.floats(-1e6, 1e6), st.integers(-(10**6), 10**6)),
    "c": st.one_of(st.none(), st.sampled_from(["a", "b", "zz", ""]), st.integers(0, 9)),
    "city": st.one_of(st.none(), st.sampled_from(["p", "q", "r", "new"])),
}


@st.composite
def json_rows(draw: st.DrawFn) -> list[Any]:
    """Rows mostly right (each key's usual values), some with any value or a key missing."""
    rows = []
    wild = draw(st.integers(0, 2)) == 0  # a third of the bodies hold any values
    for _ in range(draw(st.integers(0, 6))):
        row: dict[str, Any] = {}
        for name in NAMES:
            if wild and draw(st.integers(0, 9)) == 0:
                continue  # a missing key
            if wild and draw(st.integers(0, 5)) == 0:
                row[name] = draw(values | st.text(max_size=8))  # text ids among them
            else:
                row[name] = draw(good_value[name])
        if draw(st.integers(0, 6)) == 0:
            row[draw(st.text(max_size=5))] = draw(values)
        rows.append(row if draw(st.integers(0, 15)) else draw(values))
    return rows


@st.composite
def json_bodies(draw: st.DrawFn) -> tuple[bytes, str]:
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(st.binary(max_size=64)), "application/json"
    if kind == 1:
        return json.dumps(draw(values)).encode(), "application/json"
    if kind == 2:
        depth = draw(st.integers(1, 5000))
        return b'{"rows": ' + b"[" * depth + b"]" * depth + b"}", "application/json"
    text = json.dumps({"rows": draw(json_rows())}, allow_nan=True)
    if draw(st.integers(0, 9)) == 0:
        text = text[: draw(st.integers(0, len(text)))]  # cut short
    return text.encode(), draw(st.sampled_from(["application/json", "", "application/json; x=1"]))


ARROW_TYPES = [
    pa.int8(),
    pa.int64(),
    pa.uint64(),
    pa.float16(),
    pa.float32(),
    pa.float64(),
    pa.string(),
    pa.large_string(),
    pa.bool_(),
    pa.null(),
    pa.timestamp("ms"),
    pa.dictionary(pa.int32(), pa.string()),
    pa.list_(pa.int64()),
]


def _column(draw: st.DrawFn, kind: pa.DataType, n: int) -> pa.Array:
    if pa.types.is_null(kind):
        return pa.nulls(n)
    if pa.types.is_dictionary(kind):
        return pa.array(
            draw(st.lists(st.sampled_from(["a", "p", None]), min_size=n, max_size=n))
        ).dictionary_encode()
    if pa.types.is_list(kind):
        return pa.array([[1, 2]] * n, kind)
    if pa.types.is_boolean(kind):
        return pa.array(draw(st.lists(st.booleans() | st.none(), min_size=n, max_size=n)), kind)
    if pa.types.is_timestamp(kind):
        return pa.array(
            draw(st.lists(st.integers(0, 2**40), min_size=n, max_size=n)), pa.int64()
        ).cast(kind)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        texts = (
            st.sampled_from(["a", "b", "p", "q", "7", "", "k-1"]) | st.text(max_size=6) | st.none()
        )
        return pa.array(draw(st.lists(texts, min_size=n, max_size=n)), kind)
    if pa.types.is_floating(kind):
        floats = st.floats(
            allow_nan=True, allow_infinity=True, width=16 if kind == pa.float16() else 64
        )
        values_ = draw(st.lists(floats | st.none(), min_size=n, max_size=n))
        if kind == pa.float16():
            return pa.array(values_, pa.float32()).cast(kind)
        return pa.array(values_, pa.float64()).cast(kind, safe=False)
    info = {pa.int8(): (-128, 127), pa.int64(): (-(2**63), 2**63 - 1), pa.uint64(): (0, 2**64 - 1)}
    low, high = info.get(kind, (0, 100))
    return pa.array(
        draw(st.lists(st.integers(low, high) | st.none(), min_size=n, max_size=n)), kind
    )


@st.composite
def arrow_tables(draw: st.DrawFn) -> pa.Table:
    n = draw(st.integers(0, 5))
    names = draw(st.lists(st.sampled_from([*NAMES, "extra"]), max_size=6))
    if draw(st.integers(0, 2)):
        names = [*NAMES, *names[:1]]  # usually every feature
    usual = {"id": pa.int64(), "x": pa.float64(), "c": pa.string(), "city": pa.string()}
    arrays = []
    for name in names:
        kind = (
            usual.get(name, pa.string())
            if draw(st.integers(0, 3))
            else draw(st.sampled_from(ARROW_TYPES))
        )
        arrays.append(_column(draw, kind, n))
    return pa.table(arrays, names=names) if names else pa.table({})


def _stream(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def _file(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def _parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


@st.composite
def arrow_bodies(draw: st.DrawFn) -> tuple[bytes, str]:
    table = draw(arrow_tables())
    kind = draw(st.sampled_from([ARROW_STREAM, ARROW_FILE, PARQUET]))
    try:
        body = {ARROW_STREAM: _stream, ARROW_FILE: _file, PARQUET: _parquet}[kind](table)
    except (pa.ArrowException, ValueError):  # e.g. Parquet cannot hold this table: send bytes
        body = draw(st.binary(max_size=64))
    damage = draw(st.integers(0, 9))
    if damage == 0:
        body = body[: draw(st.integers(0, len(body)))]
    elif damage == 1:
        body = body + body  # two streams
    elif damage == 2:
        at = draw(st.integers(0, max(0, len(body) - 1)))
        body = body[:at] + bytes([draw(st.integers(0, 255))]) + body[at + 1 :]
    return body, kind


bodies = st.one_of(json_bodies(), arrow_bodies())
"""Any body the service may get, with its content type."""
