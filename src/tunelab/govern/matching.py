"""Which rows of a dataset version an erasure request names, and the side files that quote them.

A request names rows two ways: `FIELD=VALUE` (the column holds exactly the value: a customer id, an email column)
or a text value (any text of the row contains it: a name inside a ticket). Matching is exact and case-sensitive on
the stored text, so it finds what the files hold, byte for byte; that is the guarantee the erasure gives.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tunelab.errors import InputError


@dataclass(frozen=True)
class Criteria:
    """What to erase: column -> values that must not stay, and text values no row may contain."""

    fields: dict[str, tuple[str, ...]] = field(default_factory=dict)
    texts: tuple[str, ...] = ()

    def values(self) -> list[str]:
        """Every value named, whichever way: none of them may stay in any file."""
        return sorted({v for vs in self.fields.values() for v in vs} | set(self.texts))

    def describe(self) -> dict[str, object]:
        """What the audit log may say about the request: which columns and how many values, never the values."""
        return {"fields": sorted(self.fields), "field_values": sum(len(v) for v in self.fields.values()),
                "text_values": len(self.texts)}

    def receipt(self) -> tuple[str, str]:
        """A salted SHA-256 of the values and the salt: the audit row keeps the digest, the operator the salt, so
        the request can be proven later (salt + values give the digest) without the log holding the values."""
        salt = secrets.token_hex(16)
        digest = hashlib.sha256("\n".join([salt, *self.values()]).encode()).hexdigest()
        return digest, salt


def parse(where: list[str], texts: list[str], values_file: Path | None, field_name: str | None) -> Criteria:
    """The request from the command line; a malformed one is an error that says how to write it."""
    fields: dict[str, set[str]] = {}
    for pair in where:
        column, sep, value = pair.partition("=")
        if not sep or not column or not value:
            raise InputError(f"--where {pair.split('=')[0]!r}... is not FIELD=VALUE", "e.g. --where customer=cust-001")
        fields.setdefault(column, set()).add(value)
    text_values = set(texts)
    if values_file is not None:
        if not values_file.is_file():
            raise InputError(f"--values-file {values_file} does not exist", "one value per line")
        listed = {line.strip() for line in values_file.read_text(encoding="utf-8").splitlines() if line.strip()}
        if field_name:
            fields.setdefault(field_name, set()).update(listed)
        else:
            text_values |= listed
    elif field_name:
        raise InputError("--field goes with --values-file", "e.g. --values-file ids.txt --field customer")
    if not fields and not text_values:
        raise InputError("nothing to erase was named", "use --where FIELD=VALUE, --text VALUE or --values-file FILE")
    if any(len(v) < 3 for v in text_values):
        raise InputError("a --text value is shorter than 3 characters", "it would match too much text: name more")
    return Criteria({k: tuple(sorted(v)) for k, v in fields.items()}, tuple(sorted(text_values)))


def _contains(column: pa.ChunkedArray, texts: tuple[str, ...]) -> np.ndarray:
    """Rows of a string column (or of chat messages' contents) that contain any of the texts."""
    hits = np.zeros(len(column), dtype=bool)
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        for text in texts:
            hits |= pc.fill_null(pc.match_substring(column, text), False).to_numpy(zero_copy_only=False)
        return hits
    value_type = column.type.value_type if pa.types.is_list(column.type) else None
    if value_type is not None and pa.types.is_struct(value_type) and value_type.get_field_index("content") >= 0:
        flat = column.combine_chunks()
        contents = pc.struct_field(pc.list_flatten(flat), "content")
        inner = _contains(pa.chunked_array([contents], type=contents.type), texts)
        hits[pc.list_parent_indices(flat).to_numpy()[inner]] = True
    return hits


def row_mask(table: pa.Table, criteria: Criteria) -> np.ndarray:
    """True for each row the request names."""
    mask = np.zeros(table.num_rows, dtype=bool)
    for name, values in criteria.fields.items():
        column = table.column(name) if name in table.column_names else None
        if column is not None and not pa.types.is_nested(column.type):
            as_text = pc.cast(column, pa.string())
            mask |= pc.fill_null(pc.is_in(as_text, value_set=pa.array(values)), False).to_numpy(zero_copy_only=False)
    if criteria.texts:
        for name in table.column_names:
            mask |= _contains(table.column(name), criteria.texts)
    return mask


def scrub_lines(source: Path, target: Path, values: list[str]) -> int:
    """Copy a JSONL side file (rejects, dropped rows) without the lines that quote any value; returns lines dropped.

    A line is compared as stored and as JSON escapes it, so a value with quotes or non-ASCII text is caught too.
    """
    import json

    needles = {n for v in values for n in (v, json.dumps(v)[1:-1], json.dumps(v, ensure_ascii=False)[1:-1])}
    dropped = 0
    with source.open(encoding="utf-8") as src, target.open("w", encoding="utf-8") as out:
        for line in src:
            if any(n in line for n in needles):
                dropped += 1
            else:
                out.write(line)
    return dropped
