"""The import fast path: a clean JSONL or Parquet file read and checked column by column, not record by record.

Most files are clean, and for them Python-level validation per record is the whole cost of an import. Here Arrow
parses the file (strictly: a field that changes type is an error, not a silent cast) and vectorised checks confirm
that no record would be rejected. Any doubt returns None, and the caller takes the record-by-record path, which
finds and explains every problem. Both paths give the same rows for a clean file (tests/data hold the proof).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson
import pyarrow.parquet as pq

from tunelab.data.shapes import OPTIONAL, REQUIRED

_TEXT = (pa.string(), pa.large_string())
_SCALAR_LABEL = (*_TEXT, pa.int64(), pa.bool_())


def read_clean(path: Path, fmt: str, kind: str, mapping: dict[str, str], limit: int) -> pa.Table | None:
    """Canonical rows of the whole file, or None when a record might need a closer look."""
    if kind in ("chat", "token_classification") or fmt not in ("jsonl", "parquet"):
        return None  # nested fields: every record is checked on its own
    table = _load(path, fmt, limit)
    if table is None:
        return None
    table = table.rename_columns([mapping.get(c, c) for c in table.column_names])
    if len(set(table.column_names)) != table.num_columns:
        return None
    try:
        return _canonical(table, kind)
    except pa.ArrowInvalid:
        return None


def _load(path: Path, fmt: str, limit: int) -> pa.Table | None:
    try:
        if fmt == "parquet":
            table = pq.read_table(path)
            return table if _largest_row(table) <= limit else None
        data = path.read_bytes()
        if not data.endswith(b"\n") or data.startswith((b"\xef\xbb\xbf", b"\n")) or b"\n\n" in data or b"\r" in data:
            return None  # BOM, blank lines, CRLF: the record path reports them as notes
        data.decode("utf-8")  # Arrow's JSON reader does not check; a bad byte needs the record path's message
        newlines = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
        if np.diff(newlines, prepend=-1).max() > limit:
            return None
        table = pajson.read_json(io.BytesIO(data))
        return table if table.num_rows == newlines.size else None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError, UnicodeDecodeError):
        return None


def _largest_row(table: pa.Table) -> int:
    """Bytes of text in the largest row: a lower bound of its JSON size, enough to send big rows to the record path."""
    sizes = [pc.binary_length(table.column(i)).fill_null(0) for i, f in enumerate(table.schema)
             if f.type in _TEXT]
    if not sizes or not table.num_rows:
        return 0
    total = sizes[0]
    for size in sizes[1:]:
        total = pc.add(total, size)
    return int(pc.max(total).as_py() or 0)


def _blank(column: pa.ChunkedArray) -> bool:
    """Any null, empty or whitespace-only value."""
    if column.null_count:
        return True
    return bool(pc.any(pc.equal(pc.utf8_trim_whitespace(column), "")).as_py())


def _canonical(table: pa.Table, kind: str) -> pa.Table | None:
    columns: dict[str, pa.ChunkedArray] = {}
    for name in REQUIRED[kind]:
        if name not in table.column_names:
            return None
        column = table.column(name)
        allowed = _SCALAR_LABEL if name == "label" else _TEXT
        if column.type not in allowed:
            return None
        column = column.cast(pa.string())
        if _blank(column):
            return None
        columns[name] = column
    for name in OPTIONAL.get(kind, ()):
        if name in table.column_names:
            column = table.column(name)
            if column.type not in (*_TEXT, pa.null()):
                return None
            column = column.cast(pa.string()).fill_null("")
            columns[name] = pc.if_else(pc.equal(pc.utf8_trim_whitespace(column), ""), "", column)
        else:
            columns[name] = pa.chunked_array([pa.array([""] * table.num_rows, pa.string())])
    for name in table.column_names:
        if name in columns:
            continue
        column = table.column(name)
        if column.type not in (*_TEXT, pa.int64(), pa.bool_(), pa.null()):
            return None  # floats and nested values: the record path formats them
        column = column.cast(pa.string())
        columns[name] = pc.if_else(pc.equal(column, ""), pa.scalar(None, pa.string()), column)
    return pa.table(columns)
