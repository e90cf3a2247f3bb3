"""moderation: per-key blocklists and allow_low_moderation, the global list, refusals

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as t:
        t.add_column(sa.Column("moderation_blocklist", sa.Text, nullable=True))
        t.add_column(sa.Column("allow_low_moderation", sa.Boolean, nullable=False,
                               server_default=sa.false()))
    op.create_table(
        "moderation_lists",
        sa.Column("scope", sa.String(40), primary_key=True),
        sa.Column("entries", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "moderation_refusals",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key_id", sa.String(40), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("category", sa.String(64), nullable=False),
        sa.Column("model", sa.String(100), nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_moderation_refusals_key_created", "moderation_refusals",
                    ["key_id", "created_at"])
    op.create_index("ix_moderation_refusals_created", "moderation_refusals", ["created_at"])


def downgrade() -> None:
    op.drop_table("moderation_refusals")
    op.drop_table("moderation_lists")
    with op.batch_alter_table("api_keys") as t:
        t.drop_column("allow_low_moderation")
        t.drop_column("moderation_blocklist")
