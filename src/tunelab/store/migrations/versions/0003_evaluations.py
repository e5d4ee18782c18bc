"""Evaluation results: one row per model scored in an evaluation, pointing at the report they share.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "evaluations",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("evaluation_id", sa.String(64), nullable=False, index=True),
        sa.Column("model_key", sa.String(300), nullable=False),
        sa.Column("model_id", sa.String(64), index=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("dataset_id", sa.String(64), nullable=False, index=True),
        sa.Column("split", sa.String(64), nullable=False),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("report_path", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("evaluations")
