"""Projects are tenants: every dataset, run, model, evaluation, API key and request-log row names its project; API
keys carry scopes.

Everything made before belongs to the `default` project, so a single-user workspace sees what it saw. Existing keys
become credentials of that project: `inference`, plus `manage` where they could load models (`admin`) or were a
user's CLI credential (`user_id`), so no key loses what it could do.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

OWNED = ("datasets", "runs", "models", "evaluations", "api_keys", "request_log")


def upgrade() -> None:
    for table in OWNED:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("project_id", sa.String(100), nullable=False, server_default="default"))
            batch.create_index(f"ix_{table}_project_id", ["project_id"])
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("scopes", sa.JSON, nullable=False, server_default='["inference"]'))
    with op.batch_alter_table("request_log") as batch:
        batch.add_column(sa.Column("actor", sa.String(200)))
    op.execute("UPDATE api_keys SET scopes = '[\"inference\", \"manage\"]' WHERE admin OR user_id IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table("request_log") as batch:
        batch.drop_column("actor")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("scopes")
    for table in OWNED:
        with op.batch_alter_table(table) as batch:
            batch.drop_index(f"ix_{table}_project_id")
            batch.drop_column("project_id")
