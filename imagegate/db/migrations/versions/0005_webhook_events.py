"""webhook event filter: a key's webhook_events (started, progress, completed)

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as t:
        t.add_column(sa.Column("webhook_events", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as t:
        t.drop_column("webhook_events")
