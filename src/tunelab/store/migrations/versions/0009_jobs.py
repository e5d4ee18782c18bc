"""Background jobs: what a `tunelab worker` claims, heartbeats and records.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("project_id", sa.String(100), nullable=False, index=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("state", sa.String(16), nullable=False, index=True),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False, index=True),
        sa.Column("claimed_by", sa.String(300)),
        sa.Column("heartbeat_at", sa.DateTime),
        sa.Column("started_at", sa.DateTime),
        sa.Column("finished_at", sa.DateTime),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("cancel_requested_at", sa.DateTime),
        sa.Column("result", sa.JSON),
        sa.Column("error", sa.Text),
        sa.Column("run_id", sa.String(64)),
    )


def downgrade() -> None:
    op.drop_table("jobs")
