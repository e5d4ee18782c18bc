"""The schema the migrations build is the one the ORM declares: a new column needs both, or this fails."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from tunelab.store.schema import Base
from tunelab.store.store import VERSION_TABLE


def test_the_migrated_schema_equals_the_orm(store):
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert [d for d in diff if not (d[0] == "remove_table" and d[1].name == VERSION_TABLE)] == []
