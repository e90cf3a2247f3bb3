"""task listing: indexes for keyset paging of GET /v1/tasks and GET /admin/tasks

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A key's tasks newest first, and everyone's (the admin list): each page is one index
    # range from the cursor's (created_at, id), whatever the depth.
    op.create_index("ix_tasks_key_created", "tasks", ["key_id", "created_at", "id"])
    op.create_index("ix_tasks_created", "tasks", ["created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_tasks_created", "tasks")
    op.drop_index("ix_tasks_key_created", "tasks")
