"""Alembic environment: the store hands us an open connection; we never build one from an ini file."""

from alembic import context

from tunelab.store.schema import Base
from tunelab.store.store import VERSION_TABLE

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True,
                  version_table=VERSION_TABLE)
with context.begin_transaction():
    context.run_migrations()
