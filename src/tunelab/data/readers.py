"""Read CSV, TSV, JSONL, JSON arrays, Parquet, CoNLL and `datasets.save_to_disk` directories into raw records.

A reader never stops at the first problem: every record comes out as a `RawRecord` with its location and, when it
could not be read, the reason. Encoding quirks (a BOM, CRLF, blank lines) are handled and reported as file notes.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunelab.data import bio
from tunelab.errors import InputError

MAX_RECORD_BYTES = 1_000_000
_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
csv.field_size_limit(2**31 - 1)  # oversize records are reported by our own limit, with a clear message


@dataclass
class Problem:
    field: str | None
    problem: str
    expected: str

    def text(self) -> str:
        where = f"field {self.field!r}: " if self.field else ""
        return f"{where}{self.problem}; expected {self.expected}"


@dataclass
class RawRecord:
    location: str  # "line 12" or "record 5"
    record: dict[str, Any] | None  # None when the record could not be parsed at all
    raw: Any = None  # what the file held, for the rejects file
    problems: list[Problem] = field(default_factory=list)
    split: str | None = None  # set when the file itself carries splits (a saved DatasetDict)


@dataclass
class FileNotes:
    """What a reader noticed about the whole file, shown to the user after the import."""

    notes: list[str] = field(default_factory=list)
    blank_lines: int = 0


def detect_format(path: Path) -> str:
    """The file format from the extension, or from the first bytes when there is none."""
    if path.is_dir():
        if any((path / f).exists() for f in ("dataset_info.json", "state.json", "dataset_dict.json")):
            return "hf-disk"
        raise InputError(f"{path}: a directory that is not a `datasets.save_to_disk` folder",
                         "pass the data files themselves, or a folder with dataset_info.json / dataset_dict.json")
    suffix = path.suffix.lower()
    known = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json",
             ".parquet": "parquet", ".pq": "parquet", ".conll": "conll", ".bio": "conll", ".iob": "conll"}
    if suffix in known:
        return known[suffix]
    with path.open("rb") as f:
        head = f.read(4096).lstrip(_UTF8_BOM).lstrip()
    if head.startswith(b"["):
        return "json"
    if head.startswith(b"{"):
        return "jsonl"
    return "tsv" if b"\t" in head.split(b"\n", 1)[0] else "csv"


def read_records(path: Path, fmt: str, max_record_bytes: int = MAX_RECORD_BYTES,
                 head_bytes: int | None = None) -> tuple[Iterator[RawRecord], FileNotes]:
    """Every record of the file; with `head_bytes`, only the whole lines within its first bytes (a quick look)."""
    notes = FileNotes()
    if fmt in ("parquet", "hf-disk"):
        return _table_records(_load_table(path, fmt), max_record_bytes), notes
    text = _decode(path, notes, head_bytes if fmt != "json" else None)
    if fmt == "jsonl":
        return _jsonl_records(text, notes, max_record_bytes), notes
    if fmt == "json":
        return _json_array_records(path, text, max_record_bytes), notes
    if fmt == "conll":
        return _conll_records(text, notes, max_record_bytes), notes
    return _csv_records(path, text, "\t" if fmt == "tsv" else ",", notes, max_record_bytes), notes


class _Lines(list):
    """Decoded lines plus the numbers (1-based) of lines whose bytes were not UTF-8."""

    bad: dict[int, str]


def _decode(path: Path, notes: FileNotes, head_bytes: int | None = None) -> _Lines:
    if head_bytes is None:
        data = path.read_bytes()
    else:
        with path.open("rb") as f:
            data = f.read(head_bytes)
        if len(data) == head_bytes and b"\n" in data:
            data = data[: data.rindex(b"\n") + 1]
    if not data.strip():
        raise InputError(f"{path}: the file is empty", "check the path; an import needs at least one record")
    if data.startswith(_UTF16_BOMS):
        raise InputError(f"{path}: the file is UTF-16 encoded; expected UTF-8", "re-save the file as UTF-8")
    if data.startswith(_UTF8_BOM):
        data = data[len(_UTF8_BOM):]
        notes.notes.append("a UTF-8 byte-order mark was removed")
    if b"\r\n" in data:
        notes.notes.append("Windows (CRLF) line endings were read as plain newlines")
        data = data.replace(b"\r\n", b"\n")
    lines = _Lines()
    lines.bad = {}
    try:
        lines.extend(data.decode("utf-8").split("\n"))
    except UnicodeDecodeError:
        for number, chunk in enumerate(data.split(b"\n"), start=1):
            try:
                lines.append(chunk.decode("utf-8"))
            except UnicodeDecodeError as exc:
                lines.bad[number] = f"byte 0x{chunk[exc.start]:02x} at column {exc.start + 1} is not valid UTF-8"
                lines.append(chunk.decode("utf-8", errors="replace"))
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type, for messages ("array", not "list")."""
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number",
            type(None): "null"}.get(type(value), type(value).__name__)


def _oversize(size: int, limit: int) -> Problem:
    return Problem(None, f"the record is {size:,} bytes", f"at most {limit:,} bytes (raise --max-record-bytes)")


def _jsonl_records(lines: _Lines, notes: FileNotes, limit: int) -> Iterator[RawRecord]:
    loads = json.loads
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            notes.blank_lines += 1
            continue
        where = f"line {number}"
        if number in lines.bad:
            yield RawRecord(where, None, line, [Problem(None, lines.bad[number], "UTF-8 text")])
            continue
        if len(line) > limit // 4 and len(line.encode()) > limit:
            yield RawRecord(where, None, line[:2000], [_oversize(len(line.encode()), limit)])
            continue
        try:
            record = loads(line)
        except json.JSONDecodeError as exc:
            yield RawRecord(where, None, line, [Problem(None, f"invalid JSON ({exc.msg} at column {exc.colno})",
                                                        "one JSON object per line")])
            continue
        if not isinstance(record, dict):
            yield RawRecord(where, None, record, [Problem(None, f"a JSON {json_type(record)}", "a JSON object")])
            continue
        yield RawRecord(where, record, record)


def _json_array_records(path: Path, lines: _Lines, limit: int) -> Iterator[RawRecord]:
    if lines.bad:
        number, reason = next(iter(lines.bad.items()))
        raise InputError(f"{path}: line {number}: {reason}", "re-save the file as UTF-8")
    try:
        data = json.loads("\n".join(lines))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: line {exc.lineno}, column {exc.colno}: invalid JSON ({exc.msg})",
                         "a .json file must hold one array of objects; use .jsonl for one object per line") from exc
    if isinstance(data, dict) and len(data) == 1 and isinstance(next(iter(data.values())), list):
        data = next(iter(data.values()))  # {"data": [...]} is a common wrapper
    if not isinstance(data, list):
        raise InputError(f"{path}: the JSON holds a {type(data).__name__}", "an array of objects")
    for index, record in enumerate(data, start=1):
        yield _checked_record(f"record {index}", record, limit)


def _checked_record(where: str, record: Any, limit: int) -> RawRecord:
    if not isinstance(record, dict):
        return RawRecord(where, None, record, [Problem(None, f"a JSON {json_type(record)}", "an object")])
    size = len(json.dumps(record, default=str))
    if size > limit:
        return RawRecord(where, None, None, [_oversize(size, limit)])
    return RawRecord(where, record, record)


def _csv_records(path: Path, lines: _Lines, delimiter: str, notes: FileNotes, limit: int) -> Iterator[RawRecord]:
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    reader = csv.reader((line + "\n" for line in lines), delimiter=delimiter, quoting=quoting, strict=False)
    header = _csv_header(path, reader, lines)
    width = len(header)
    previous_end = reader.line_num
    for cells in reader:
        start, previous_end = previous_end + 1, reader.line_num
        if not cells or (len(cells) == 1 and not cells[0].strip()):
            notes.blank_lines += previous_end - start + 1
            continue
        where = f"line {start}"
        bad = [lines.bad[n] for n in range(start, previous_end + 1) if n in lines.bad]
        if bad:
            yield RawRecord(where, None, delimiter.join(cells), [Problem(None, bad[0], "UTF-8 text")])
        elif len(cells) != width:
            yield RawRecord(where, None, cells, [Problem(
                None, f"the row has {len(cells)} fields", f"{width} fields like the header ({', '.join(header)})")])
        elif sum(len(c) for c in cells) > limit // 4 and len(delimiter.join(cells).encode()) > limit:
            yield RawRecord(where, None, None, [_oversize(len(delimiter.join(cells).encode()), limit)])
        else:
            yield RawRecord(where, dict(zip(header, cells, strict=True)), cells)


def _csv_header(path: Path, reader: Any, lines: _Lines) -> list[str]:
    header = next(reader, None)
    while header is not None and not any(cell.strip() for cell in header):
        header = next(reader, None)
    if header is None:
        raise InputError(f"{path}: no header row", "a first line naming the columns")
    if reader.line_num in lines.bad:
        raise InputError(f"{path}: line {reader.line_num} (header): {lines.bad[reader.line_num]}",
                         "re-save the file as UTF-8")
    header = [h.strip() for h in header]
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes or not all(header):
        what = "duplicate names " + ", ".join(dupes) if dupes else "an empty name"
        raise InputError(f"{path}: the header has {what}",
                         "a first line with one distinct name per column")
    return header


def _load_table(path: Path, fmt: str) -> Any:
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return {"": pq.read_table(path)}
        import datasets

        loaded = datasets.load_from_disk(str(path))
        if isinstance(loaded, datasets.DatasetDict):
            return {split: ds.data.table for split, ds in loaded.items()}
        return {"": loaded.data.table}
    except Exception as exc:
        raise InputError(f"{path}: cannot read it as {fmt} ({type(exc).__name__}: {exc})",
                         "check that the file is complete and in the format its name says") from exc


def _table_records(tables: dict[str, Any], limit: int) -> Iterator[RawRecord]:
    for split, table in tables.items():
        prefix = f"{split} " if split else ""
        offset = 0
        for batch in table.to_batches(max_chunksize=65536):
            for index, record in enumerate(batch.to_pylist(), start=offset + 1):
                raw = _checked_record(f"{prefix}record {index}", record, limit)
                raw.split = split or None
                yield raw
            offset += batch.num_rows



def _conll_records(lines: _Lines, notes: FileNotes, limit: int) -> Iterator[RawRecord]:
    """One record per sentence (lines up to a blank line): {text: tokens joined by single spaces, spans}."""
    sentence: list[tuple[int, str]] = []
    skipped = 0
    for number, line in enumerate([*lines, ""], start=1):
        if line.strip():
            sentence.append((number, line))
            continue
        if sentence and sentence[0][1].split()[0] == "-DOCSTART-":
            skipped += 1
        elif sentence:
            yield _conll_sentence(sentence, lines.bad, limit)
        sentence = []
    if skipped:
        notes.notes.append(f"{skipped} -DOCSTART- line(s) skipped")


def _conll_sentence(rows: list[tuple[int, str]], bad: dict[int, str], limit: int) -> RawRecord:
    """Tokens and tags (the last column) -> text and character spans; any bad line rejects the sentence."""
    tokens, tags, problems, where = [], [], [], None
    for number, line in rows:
        cells = line.split()
        problem = _conll_problem(number, cells, bad)
        if problem is not None:
            problems.append(problem)
            where = where or number
            continue
        tokens.append(cells[0])
        tags.append(cells[-1])
    raw = "\n".join(line for _, line in rows)
    if len(raw) > limit // 4 and len(raw.encode()) > limit:
        return RawRecord(f"line {rows[0][0]}", None, raw[:2000], [_oversize(len(raw.encode()), limit)])
    if problems:
        return RawRecord(f"line {where}", None, raw, problems)
    starts = [0]
    for token in tokens[:-1]:
        starts.append(starts[-1] + len(token) + 1)
    spans = [{"start": starts[first], "end": starts[end - 1] + len(tokens[end - 1]), "label": kind}
             for first, end, kind in bio.entities(tags)]
    return RawRecord(f"line {rows[0][0]}", {"text": " ".join(tokens), "spans": spans}, raw)


def _conll_problem(number: int, cells: list[str], bad: dict[int, str]) -> Problem | None:
    if number in bad:
        return Problem("line", f"line {number}: {bad[number]}", "UTF-8 text")
    if len(cells) < 2:
        return Problem("tag", f"line {number} has one column ({cells[0][:40]!r})",
                       "a token and its tag, separated by whitespace")
    if not bio.is_tag(cells[-1]):
        return Problem("tag", f"{cells[-1][:40]!r} on line {number} is not a BIO tag",
                       "O, B-TYPE or I-TYPE (BIO, IOB1 and IOB2 files read alike)")
    return None
