"""`tunelab data import`: raw files in, one immutable dataset version out, every bad record accounted for.

Rows in = rows kept + rows rejected, always: a rejected record goes to `rejects.jsonl` with its file, location and
reasons. A file that cannot be read, or whose every record is bad, stops the import and is named in the error.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

from tunelab.data import fastpath, readers, shapes
from tunelab.data.versions import SPLITS, VersionWriter, schema_for, table_from_rows
from tunelab.errors import InputError
from tunelab.progress import progress_bar
from tunelab.records import DatasetVersion
from tunelab.store import Store

SPLIT_ALIASES = {"train": "train", "validation": "validation", "valid": "validation", "val": "validation",
                 "dev": "validation", "test": "test"}
_PREVIEW = 10


@dataclass
class Source:
    path: Path
    split: str | None  # None: the file's own splits (a DatasetDict) or, failing that, train

    @classmethod
    def parse(cls, arg: str) -> Source:
        """`PATH` or `SPLIT=PATH` (train, validation, test)."""
        split, sep, rest = arg.partition("=")
        if sep and split in SPLIT_ALIASES and not Path(arg).exists():
            return cls(Path(rest), SPLIT_ALIASES[split])
        if sep and "/" not in split and not Path(arg).exists():
            raise InputError(f"unknown split {split!r} in {arg!r}", "use train=PATH, validation=PATH or test=PATH")
        return cls(Path(arg), None)


@dataclass
class ImportResult:
    version: DatasetVersion
    detection: shapes.Detection
    rejected: int
    rejects_path: str | None
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # the first few, for the terminal

    def to_json(self) -> dict[str, Any]:
        return {"dataset": self.version.id, "name": self.version.name, "kind": self.version.kind,
                "detected": self.detection.reason, "rows": self.version.rows, "splits": self.version.splits,
                "rejected": self.rejected, "rejects_path": self.rejects_path, "notes": self.notes}


@dataclass
class _FileResult:
    tables: dict[str, pa.Table]
    rejects: list[dict[str, Any]]
    notes: list[str]


def import_data(store: Store, paths: list[str], *, name: str | None = None, fmt: str = "auto",
                mapping: dict[str, str] | None = None, strict: bool = False, eval_set: bool = False,
                max_record_bytes: int = readers.MAX_RECORD_BYTES) -> ImportResult:
    """Read, validate and register the files as one dataset version (see the module docstring).

    `fmt` is a shape, `auto`, or `conll`: token classification read from CoNLL files whatever their names.
    """
    if fmt not in ("auto", "conll", *shapes.KINDS):
        raise InputError(f"unknown --format {fmt!r}", f"use one of: auto, {', '.join(shapes.KINDS)}, conll")
    file_format, fmt = ("conll", "token_classification") if fmt == "conll" else (None, fmt)
    sources = [Source.parse(p) for p in paths]
    for source in sources:
        if not source.path.exists():
            raise InputError(f"{source.path}: no such file or directory", "check the path")
    mapping = mapping or {}
    detection = _detect(sources, fmt, mapping, max_record_bytes, file_format)
    parts: dict[str, list[pl.DataFrame]] = {}
    rejects: list[dict[str, Any]] = []
    notes: list[str] = []
    for source in sources:
        result = _read_source(source, detection.kind, mapping, max_record_bytes, file_format)
        for split, table in result.tables.items():
            parts.setdefault(split, []).append(pl.from_arrow(table))
        rejects.extend(result.rejects)
        notes.extend(result.notes)
    if strict and rejects:
        raise InputError(f"--strict: {len(rejects)} record(s) are invalid:\n" + _preview(rejects),
                         "fix them, or drop --strict to import the valid rows and keep the rest in a rejects file")
    columns = list(dict.fromkeys([*shapes.fields_of(detection.kind),
                                  *(c for frames in parts.values() for f in frames for c in f.columns)]))
    schema = schema_for(detection.kind, columns)
    tables = {split: pl.concat(frames, how="diagonal_relaxed").select(columns).to_arrow().cast(schema)
              for split, frames in parts.items()}
    return _commit(store, sources, name, detection, tables, rejects, notes, mapping, eval_set)


def _detect(sources: list[Source], fmt: str, mapping: dict[str, str], limit: int,
            file_format: str | None) -> shapes.Detection:
    """Detect the shape from the first file's columns (union of the first records' keys)."""
    path = sources[0].path
    records, _ = readers.read_records(path, file_format or readers.detect_format(path), limit,
                                      head_bytes=max(limit, 4 << 20))
    columns: dict[str, None] = {}  # as the file names them, before --map
    unreadable: list[readers.RawRecord] = []
    for i, raw in enumerate(records):
        if raw.record is not None:
            columns.update(dict.fromkeys(raw.record))
        else:
            unreadable.append(raw)
        if i >= 1000:
            break
    if not columns:
        if not unreadable:
            raise InputError(f"{path}: no records (only blank lines or a header)", "check the file")
        first = unreadable[0]
        raise InputError(f"{path}: no readable record in the first 1,000 ({len(unreadable):,} unreadable; "
                         f"{first.location}: {'; '.join(p.text() for p in first.problems)})",
                         "check the file's format and encoding")
    unknown = [k for k in mapping if k not in columns]
    if unknown:
        raise InputError(f"--map names column(s) {', '.join(unknown)} that {path} does not have",
                         f"its columns are: {', '.join(columns)}")
    clashes = [f"{k}={v}" for k, v in mapping.items() if v in columns and v not in mapping]
    if clashes:
        raise InputError(f"--map {' '.join(clashes)} would overwrite a column {path} already has",
                         "map that column away too (e.g. --map text=original_text), or drop the --map")
    return shapes.detect_kind(list(shapes.rename(dict(columns), mapping)), fmt)


def _read_source(source: Source, kind: str, mapping: dict[str, str], limit: int,
                 file_format: str | None) -> _FileResult:
    fmt = file_format or readers.detect_format(source.path)
    clean = fastpath.read_clean(source.path, fmt, kind, mapping, limit)
    if clean is not None:
        if not clean.num_rows:
            raise InputError(f"{source.path}: no records", "check the file")
        return _FileResult({source.split or "train": clean}, [], [])
    records, file_notes = readers.read_records(source.path, fmt, limit)
    rows: dict[str, list[dict[str, Any]]] = {}
    rejects: list[dict[str, Any]] = []
    with progress_bar(f"reading {source.path.name}", None) as advance:
        for n, raw in enumerate(records, start=1):
            problems = raw.problems
            if raw.record is not None:
                row, problems = shapes.canonical(shapes.rename(raw.record, mapping), kind)
            if problems:
                rejects.append(_reject(source.path, raw, problems))
            else:
                split = source.split or (SPLIT_ALIASES.get(raw.split, raw.split) if raw.split else "train")
                rows.setdefault(split, []).append(row)
            if n % 10000 == 0:
                advance(10000)
    if not any(rows.values()):
        if not rejects:
            raise InputError(f"{source.path}: no records (only blank lines or a header)", "check the file")
        raise InputError(f"{source.path}: all {len(rejects)} record(s) are invalid; the first problems:\n"
                         + _preview(rejects), _whole_file_hint(kind))
    notes = [f"{source.path.name}: {n}" for n in file_notes.notes]
    if file_notes.blank_lines:
        notes.append(f"{source.path.name}: {file_notes.blank_lines} blank line(s) skipped")
    tables = {split: _rows_table(split_rows, kind) for split, split_rows in rows.items()}
    return _FileResult(tables, rejects, notes)


def _rows_table(rows: list[dict[str, Any]], kind: str) -> pa.Table:
    columns = list(dict.fromkeys([*shapes.fields_of(kind), *(key for row in rows for key in row)]))
    return table_from_rows(rows, kind, columns)


def _whole_file_hint(kind: str) -> str:
    return (f"the data was read as {kind} ({' + '.join(shapes.REQUIRED[kind])}); check --format and --map, "
            "or the file's encoding")


def _reject(path: Path, raw: readers.RawRecord, problems: list[readers.Problem]) -> dict[str, Any]:
    number = raw.location.rsplit(" ", 1)[-1]
    line = int(number) if raw.location.startswith("line") else None
    return {"file": str(path), "location": raw.location, "line": line,
            "record": raw.raw, "reasons": [p.text() for p in problems],
            "problems": [{"field": p.field, "problem": p.problem, "expected": p.expected} for p in problems]}


def _preview(rejects: list[dict[str, Any]]) -> str:
    lines = [f"  {r['file']}:{r['location']}: {'; '.join(r['reasons'])}" for r in rejects[:_PREVIEW]]
    if len(rejects) > _PREVIEW:
        lines.append(f"  ... and {len(rejects) - _PREVIEW} more")
    return "\n".join(lines)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        with file.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _identity(name: str, rejects: list[dict[str, Any]], eval_set: bool) -> dict[str, Any]:
    """What besides the rows makes a version distinct: its name, its rejects file, whether it is an eval set."""
    identity: dict[str, Any] = {"name": name, "rejects": len(rejects)}
    if rejects:  # the same rows with other rejects need their own rejects.jsonl
        digest = hashlib.sha256()
        for reject in rejects:
            digest.update(json.dumps({k: v for k, v in reject.items() if k != "file"}, sort_keys=True,
                                     default=str).encode())
        identity["rejects_sha256"] = digest.hexdigest()
    if eval_set:  # an eval set must not resolve to an earlier plain import of the same rows
        identity["eval_set"] = True
    return identity


def _commit(store: Store, sources: list[Source], name: str | None, detection: shapes.Detection,
            tables: dict[str, pa.Table], rejects: list[dict[str, Any]], notes: list[str], mapping: dict[str, str],
            eval_set: bool) -> ImportResult:
    writer = VersionWriter(store)
    name = name or sources[0].path.stem
    kept = sum(t.num_rows for t in tables.values())
    try:
        rejects_path = None
        if rejects:
            rejects_path = writer.file("rejects.jsonl")
            with rejects_path.open("w", encoding="utf-8") as f:
                for reject in rejects:
                    f.write(json.dumps(reject, ensure_ascii=False, default=str) + "\n")
        source_info = [{"file": str(s.path.resolve()), "sha256": _sha256(s.path), "split": s.split} for s in sources]
        ordered = {s: tables[s] for s in [*SPLITS, *sorted(set(tables) - set(SPLITS))] if s in tables}
        version = writer.commit(
            name=name, kind=detection.kind, tables=ordered, identity=_identity(name, rejects, eval_set),
            sources=source_info, rejected=len(rejects),
            rejects_path=str(rejects_path) if rejects_path else None, is_eval_set=eval_set,
            config={"format": detection.kind, "map": mapping},
            steps=[{"name": "import", "rows_in": kept + len(rejects), "rows_out": kept, "rejected": len(rejects),
                    "notes": notes}],
        )
    except BaseException:
        writer.discard()
        raise
    store.audit("data.import", version.id, {"rows": version.rows, "rejected": len(rejects), "kind": version.kind})
    return ImportResult(version, detection, len(rejects), version.rejects_path, notes,
                        [f"{r['file']}:{r['location']}: {'; '.join(r['reasons'])}" for r in rejects[:_PREVIEW]])
