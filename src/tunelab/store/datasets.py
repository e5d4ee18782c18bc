"""The `datasets` table: dataset versions, their lineage (parent ids) and the evaluation sets.

A mixin of `Store`; `tunelab.data` is its only writer. Ids are content hashes, so registering is idempotent.
"""

from __future__ import annotations

from dataclasses import fields

from sqlalchemy import select

from tunelab.errors import NotFoundError, TunelabError
from tunelab.records import DatasetVersion
from tunelab.store.rows import Table, now
from tunelab.store.schema import DatasetRow


class DatasetTable(Table):
    def add_dataset(self, version: DatasetVersion) -> DatasetVersion:
        """Register a version; the same content imported twice is the same version (ids are content hashes)."""
        with self.session() as s, s.begin():
            existing = s.get(DatasetRow, version.id)
            if existing is not None:
                return _to_version(existing)
            values = {f.name: getattr(version, f.name) for f in fields(DatasetVersion)}
            values["created_at"], values["project_id"] = version.created_at or now(), self.project
            s.add(DatasetRow(**values))
        return self.get_dataset(version.id)

    def find_dataset(self, dataset_id: str) -> DatasetVersion | None:
        with self.session() as s:
            row = self._mine(s.get(DatasetRow, dataset_id))
            return _to_version(row) if row else None

    def get_dataset(self, ref: str) -> DatasetVersion:
        """Resolve an id, a unique id prefix, or a name (its newest version)."""
        with self.session() as s:
            row = self._mine(s.get(DatasetRow, ref))
            if row is None:
                mine = self._own(select(DatasetRow), DatasetRow)
                rows = s.scalars(mine.where(DatasetRow.id.startswith(ref))).all() if len(ref) >= 4 else []
                if len(rows) > 1:
                    raise TunelabError(f"dataset id prefix {ref!r} is ambiguous: {', '.join(r.id for r in rows)}")
                row = rows[0] if rows else s.scalars(
                    mine.where(DatasetRow.name == ref).order_by(DatasetRow.created_at.desc())).first()
            if row is None:
                known = s.scalars(self._own(select(DatasetRow.name), DatasetRow).distinct()).all()
                raise NotFoundError(
                    f"no dataset {ref!r}",
                    f"known datasets: {', '.join(sorted(known))}" if known
                    else "import one with `tunelab data import PATH`",
                )
            return _to_version(row)

    def list_datasets(self) -> list[DatasetVersion]:
        with self.session() as s:
            return [_to_version(r) for r in s.scalars(self._own(select(DatasetRow), DatasetRow)
                                                      .order_by(DatasetRow.created_at))]

    def eval_sets(self) -> list[DatasetVersion]:
        with self.session() as s:
            return [_to_version(r) for r in s.scalars(self._own(select(DatasetRow), DatasetRow)
                                                      .where(DatasetRow.is_eval_set))]

    def children(self, dataset_id: str) -> list[str]:
        with self.session() as s:
            return list(s.scalars(self._own(select(DatasetRow.id), DatasetRow)
                                  .where(DatasetRow.parent_id == dataset_id)))

    def delete_dataset(self, dataset_id: str) -> None:
        with self.session() as s, s.begin():
            row = s.get(DatasetRow, dataset_id)
            if row is not None:
                s.delete(row)


def _to_version(row: DatasetRow) -> DatasetVersion:
    return DatasetVersion(**{f.name: getattr(row, f.name) for f in fields(DatasetVersion)})
