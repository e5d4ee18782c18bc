"""Governance: users, projects, grants; API keys that belong to a user; the audit log hash-chained.

Rows already in the audit log get a project (`default`), an outcome (`ok`) and their place in the chain, hashed by
`tunelab.store.audit.row_hash` as it is at this revision (a later change to the hash needs its own revision that
rehashes).

Revision ID: 0006
Revises: 0005
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _chain_existing_rows() -> None:
    from tunelab.store.audit import GENESIS, row_hash

    conn = op.get_bind()
    log = sa.table("audit_log", sa.column("id", sa.Integer), sa.column("at", sa.DateTime),
                   sa.column("actor", sa.String), sa.column("project", sa.String), sa.column("action", sa.String),
                   sa.column("target", sa.String), sa.column("detail", sa.JSON), sa.column("outcome", sa.String),
                   sa.column("prev_hash", sa.String), sa.column("hash", sa.String))
    prev_id, prev = 0, GENESIS
    for row in conn.execute(sa.select(log).order_by(log.c.id)).all():
        digest = row_hash(row, prev)
        conn.execute(sa.update(log).where(log.c.id == row.id).values(prev_hash=prev, hash=digest))
        prev_id, prev = row.id, digest
    head = sa.table("audit_head", sa.column("id", sa.Integer), sa.column("last_id", sa.Integer),
                    sa.column("last_hash", sa.String))
    conn.execute(sa.insert(head).values(id=1, last_id=prev_id, last_hash=prev))


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.Text),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("disabled_at", sa.DateTime),
    )
    op.create_table(
        "projects",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "grants",
        sa.Column("user_id", sa.String(32), primary_key=True),
        sa.Column("project", sa.String(100), primary_key=True),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("last_id", sa.Integer, nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
    )
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("user_id", sa.String(32)))
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("project", sa.String(100), nullable=False, server_default="default"))
        batch.add_column(sa.Column("outcome", sa.String(16), nullable=False, server_default="ok"))
        batch.add_column(sa.Column("prev_hash", sa.String(64), nullable=False, server_default=""))
        batch.add_column(sa.Column("hash", sa.String(64), nullable=False, server_default=""))
    projects = sa.table("projects", sa.column("name", sa.String), sa.column("created_at", sa.DateTime))
    op.get_bind().execute(sa.insert(projects).values(name="default",
                                                     created_at=datetime.now(UTC).replace(tzinfo=None)))
    _chain_existing_rows()


def downgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        for column in ("hash", "prev_hash", "outcome", "project"):
            batch.drop_column(column)
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("user_id")
    for table in ("audit_head", "grants", "projects", "users"):
        op.drop_table(table)
