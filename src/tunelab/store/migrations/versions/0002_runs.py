"""Training runs, their metric stream, and what a model records about where it came from.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("task", sa.String(32), nullable=False),
        sa.Column("method", sa.String(32), nullable=False),
        sa.Column("dataset_id", sa.String(64), nullable=False, index=True),
        sa.Column("base_model", sa.Text, nullable=False),
        sa.Column("base_revision", sa.String(100), nullable=False),
        sa.Column("state", sa.String(32), nullable=False, index=True),
        sa.Column("config_given", sa.JSON, nullable=False),
        sa.Column("config_resolved", sa.JSON, nullable=False),
        sa.Column("environment", sa.JSON, nullable=False),
        sa.Column("output_dir", sa.Text, nullable=False),
        sa.Column("pid", sa.Integer),
        sa.Column("host", sa.String(200)),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("total_steps", sa.Integer, nullable=False),
        sa.Column("best_val_loss", sa.Float),
        sa.Column("best_val_accuracy", sa.Float),
        sa.Column("best_step", sa.Integer),
        sa.Column("warnings", sa.JSON, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("model_id", sa.String(64)),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("heartbeat_at", sa.DateTime),
        sa.Column("finished_at", sa.DateTime),
    )
    op.create_table(
        "run_metrics",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(64), nullable=False, index=True),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("values", sa.JSON, nullable=False),
        sa.Column("at", sa.DateTime, nullable=False),
    )
    with op.batch_alter_table("models") as batch:
        batch.add_column(sa.Column("run_id", sa.String(64)))
        batch.add_column(sa.Column("task", sa.String(32)))
        batch.add_column(sa.Column("base_model", sa.Text))
        batch.add_column(sa.Column("labels", sa.JSON))
        batch.add_column(sa.Column("metrics", sa.JSON))
        batch.add_column(sa.Column("stage", sa.String(32)))


def downgrade() -> None:
    with op.batch_alter_table("models") as batch:
        for column in ("stage", "metrics", "labels", "base_model", "task", "run_id"):
            batch.drop_column(column)
    op.drop_table("run_metrics")
    op.drop_table("runs")
