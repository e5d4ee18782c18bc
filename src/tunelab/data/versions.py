"""Dataset versions on disk: one Parquet file per split, written atomically and named by a hash of their content."""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from tunelab.errors import InputError
from tunelab.records import DatasetVersion
from tunelab.store import Store
from tunelab.store.store import DEFAULT_PROJECT

SPLITS = ("train", "validation", "test")
_MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
SPANS = pa.list_(pa.struct([("start", pa.int64()), ("end", pa.int64()), ("label", pa.string())]))
_NESTED = {("chat", "messages"): _MESSAGES, ("token_classification", "spans"): SPANS}


def schema_for(kind: str, columns: list[str]) -> pa.Schema:
    """Every column is a string except chat messages and entity spans: extras are kept as text so any source fits."""
    return pa.schema([(c, _NESTED.get((kind, c), pa.string())) for c in columns])


def table_from_rows(rows: list[dict[str, Any]], kind: str, columns: list[str]) -> pa.Table:
    schema = schema_for(kind, columns)
    return pa.Table.from_pydict({c: [r.get(c) for r in rows] for c in columns}, schema=schema)


class VersionWriter:
    """Collects a version's files in a temporary folder, then names it by content and moves it into place."""

    def __init__(self, store: Store) -> None:
        self.store = store
        root = store.workspace.artifacts / "datasets"
        root.mkdir(parents=True, exist_ok=True)
        self.tmp = root / f".tmp-{uuid.uuid4().hex}"
        self.tmp.mkdir()

    def file(self, name: str) -> Path:
        return self.tmp / name

    def commit(self, *, name: str, kind: str, tables: dict[str, pa.Table], parent_id: str | None = None,
               identity: dict[str, Any] | None = None, **fields: Any) -> DatasetVersion:
        """Write the splits, hash them with what made them (`identity`), register and return the version.

        Outside the default project the project is part of the hash: the same file imported by two tenants makes two
        versions, each invisible to the other (and the default project's ids stay what they always were).
        """
        tenant = {} if self.store.project == DEFAULT_PROJECT else {"project": self.store.project}
        digest = hashlib.sha256(json.dumps({"kind": kind, "parent": parent_id, **(identity or {}), **tenant},
                                           sort_keys=True, default=str).encode())
        for split in sorted(tables):
            path = self.tmp / f"{split}.parquet"
            pq.write_table(tables[split], path, compression="zstd")
            digest.update(split.encode())
            digest.update(path.read_bytes())
        dataset_id = "ds-" + digest.hexdigest()[:12]
        final = self.store.workspace.dataset_dir(dataset_id)
        existing = self.store.find_dataset(dataset_id)
        if existing is not None and final.exists():
            self.discard()
            return existing
        shutil.rmtree(final, ignore_errors=True)
        rejects = fields.pop("rejects_path", None)
        self.tmp.rename(final)
        first = next(iter(tables.values()))
        version = DatasetVersion(
            id=dataset_id, name=name, kind=kind, path=str(final), parent_id=parent_id,
            splits={s: tables[s].num_rows for s in _ordered(tables)}, columns=first.column_names,
            rejects_path=str(final / Path(rejects).name) if rejects else None, **fields)
        version = self.store.add_dataset(version)
        from tunelab.data.card import write_card

        write_card(version, tables)
        return version

    def discard(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def _ordered(tables: dict[str, Any]) -> list[str]:
    return [s for s in SPLITS if s in tables] + sorted(s for s in tables if s not in SPLITS)


def read_split(version: DatasetVersion, split: str) -> pa.Table:
    if split not in version.splits:
        raise InputError(f"dataset {version.id} has no split {split!r}",
                         f"its splits are: {', '.join(version.splits)}")
    return pq.read_table(Path(version.path) / f"{split}.parquet")


def read_splits(version: DatasetVersion) -> dict[str, pa.Table]:
    return {split: read_split(version, split) for split in version.splits}
