"""deadlines: tasks.deadline_at (Cancel-After / deadline_seconds), indexed for the sweeper

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
# "0003" on this branch; re-chained after 0004/0005 when the issue-14 branches merge.
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as t:
        t.add_column(sa.Column("deadline_at", sa.Float, nullable=True))
    op.create_index("ix_tasks_deadline", "tasks", ["deadline_at"])


def downgrade() -> None:
    op.drop_index("ix_tasks_deadline", table_name="tasks")
    with op.batch_alter_table("tasks") as t:
        t.drop_column("deadline_at")
