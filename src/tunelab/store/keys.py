"""The `api_keys` table: the keys of `tunelab serve` (a salted hash each, never the secret).

A mixin of `Store`; `tunelab.govern.keys` makes the values and decides what they mean.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from tunelab.store.rows import Table, row_values
from tunelab.store.schema import ApiKeyRow


class KeyTable(Table):
    def add_api_key(self, **values: Any) -> None:
        """Values are the columns of `api_keys`; `tunelab.govern.keys` makes them (the hash, never the secret)."""
        with self.session() as s, s.begin():
            s.add(ApiKeyRow(**{"project_id": self.project, **values}))

    def find_api_key(self, key_id: str) -> dict[str, Any] | None:
        """Read fresh on every call, so a key revoked by another process is refused at once. Any project's key: the
        key says which project it acts in (`tunelab.govern.keys.authenticate`)."""
        with self.session() as s:
            row = s.get(ApiKeyRow, key_id)
            return row_values(row) if row else None

    def list_api_keys(self) -> list[dict[str, Any]]:
        with self.session() as s:
            return [row_values(r) for r in s.scalars(self._own(select(ApiKeyRow), ApiKeyRow)
                                                     .order_by(ApiKeyRow.created_at))]

    def update_api_key(self, key_id: str, **values: Any) -> None:
        with self.session() as s, s.begin():
            s.execute(update(ApiKeyRow).where(ApiKeyRow.id == key_id).values(**values))
