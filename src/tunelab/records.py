"""Plain objects that pass between stages (data -> train -> evaluate -> serve) and in and out of the store."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass
class DatasetVersion:
    """One immutable version of a dataset: its rows live in Parquet files under `path`, one per split."""

    id: str
    name: str
    kind: str  # chat | instruction | completion | classification
    path: str
    splits: dict[str, int]
    parent_id: str | None = None
    sources: list[dict[str, Any]] = field(default_factory=list)  # {"file", "sha256", "split"}
    steps: list[dict[str, Any]] = field(default_factory=list)  # {"name", ...statistics}
    config: dict[str, Any] = field(default_factory=dict)
    rejected: int = 0
    rejects_path: str | None = None
    columns: list[str] = field(default_factory=list)
    pii_redacted: bool = False
    is_eval_set: bool = False
    created_at: datetime | None = None

    @property
    def rows(self) -> int:
        return sum(self.splits.values())

    def summary(self) -> dict[str, Any]:
        """The JSON shape `data list`/`data show` print."""
        return {
            "dataset": self.id,
            "name": self.name,
            "kind": self.kind,
            "parent": self.parent_id,
            "rows": self.rows,
            "splits": self.splits,
            "rejected": self.rejected,
            "rejects_path": self.rejects_path,
            "columns": self.columns,
            "pii_redacted": self.pii_redacted,
            "eval_set": self.is_eval_set,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "sources": self.sources,
            "steps": self.steps,
            "path": self.path,
        }
