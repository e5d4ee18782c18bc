"""Inspect, export and delete dataset versions."""

from __future__ import annotations

import io
import json
import shutil
import time
from pathlib import Path
from typing import IO, Any

import polars as pl
import pyarrow.parquet as pq

from tunelab.data.versions import read_split, read_splits
from tunelab.errors import ConflictError, InputError
from tunelab.records import DatasetVersion
from tunelab.store import Store

EXPORT_FORMATS = ("jsonl", "parquet", "csv")
_STALE_SECONDS = 900


def card_path(store: Store, version: DatasetVersion) -> Path:
    """The version's card, written on first request for versions made before cards existed."""
    path = Path(version.path) / "card.html"
    if not path.exists():
        from tunelab.data.card import write_card

        write_card(version, read_splits(version), path)
    return path


def show(store: Store, ref: str, samples: int = 3) -> dict[str, Any]:
    version = store.get_dataset(ref)
    rows = {split: read_split(version, split).slice(0, samples).to_pylist() for split in version.splits}
    store.audit("data.show", version.id, {"sample_rows": sum(len(r) for r in rows.values())})  # raw rows were shown
    return {**version.summary(), "children": store.children(version.id), "samples": rows,
            "card": str(Path(version.path) / "card.html")}


def export(store: Store, ref: str, split: str, fmt: str, out: Path | None, stdout: IO[bytes]) -> dict[str, Any]:
    """Write one split as JSONL, Parquet or CSV (chat messages and entity spans become JSON string columns in CSV)."""
    if fmt not in EXPORT_FORMATS:
        raise InputError(f"unknown --format {fmt!r}", f"use one of: {', '.join(EXPORT_FORMATS)}")
    version = store.get_dataset(ref)
    table = read_split(version, split)
    buffer = io.BytesIO()
    if fmt == "parquet":
        pq.write_table(table, buffer)
    elif fmt == "jsonl":
        for row in table.to_pylist():
            buffer.write((json.dumps(row, ensure_ascii=False) + "\n").encode())
    else:
        frame = pl.from_arrow(table)
        for nested in ("messages", "spans"):  # CSV cells hold them as JSON, which import reads back
            if nested in frame.columns:
                frame = frame.with_columns(pl.Series(nested, [json.dumps(m, ensure_ascii=False)
                                                              for m in table.column(nested).to_pylist()]))
        frame.write_csv(buffer)
    data = buffer.getvalue()
    if out is None:
        stdout.write(data)
        stdout.flush()
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
    store.audit("data.export", version.id, {"split": split, "format": fmt, "rows": table.num_rows,
                                            "out": str(out) if out else "stdout"})
    return {"dataset": version.id, "split": split, "format": fmt, "rows": table.num_rows,
            "out": str(out) if out else None}


def delete(store: Store, ref: str, force: bool = False, scrub: bool = True) -> dict[str, Any]:
    """Remove a version's files and record, leaving no copy of its rows in the workspace.

    `scrub=False` leaves the compaction (a VACUUM, which rewrites the whole database) to a caller that deletes many
    versions and compacts once at the end, as erasure does.
    """
    version = store.get_dataset(ref)
    models = store.models_using(version.id)
    if models and not force:
        raise ConflictError(f"dataset {version.id} is used by model(s) {', '.join(models)}",
                            "delete those models first, or pass --force to delete the data anyway")
    shutil.rmtree(version.path, ignore_errors=True)
    reports = store.delete_evaluations(version.id)
    for report in reports:  # evaluation reports quote the rows they scored
        shutil.rmtree(Path(report).parent, ignore_errors=True)
    for stale in (store.workspace.artifacts / "datasets").glob(".tmp-*"):
        if time.time() - stale.stat().st_mtime > _STALE_SECONDS:  # a crashed job's half-written copy
            shutil.rmtree(stale, ignore_errors=True)
    store.delete_dataset(version.id)
    store.audit("data.delete", version.id, {"forced": bool(models), "models": models, "reports": len(reports)})
    if scrub:
        store.scrub()
    return {"deleted": version.id, "name": version.name, "rows": version.rows, "models": models,
            "reports": len(reports)}
