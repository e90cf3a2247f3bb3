"""accounts: key limits and balances, task billing, ledger, idempotency, webhook deliveries

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch mode: SQLite cannot ALTER a table to add constrained columns in place.
    with op.batch_alter_table("api_keys") as t:
        t.add_column(sa.Column("allowed_models", sa.Text, nullable=True))
        t.add_column(sa.Column("rpm", sa.Integer, nullable=True))
        t.add_column(sa.Column("concurrency", sa.Integer, nullable=True))
        t.add_column(sa.Column("expires_at", sa.Float, nullable=True))
        t.add_column(sa.Column("balance", sa.BigInteger, nullable=True))
        t.add_column(sa.Column("active_tasks", sa.Integer, nullable=False, server_default="0"))
        t.add_column(sa.Column("webhook_url", sa.Text, nullable=True))
        t.add_column(sa.Column("webhook_secret", sa.String(100), nullable=True))
    with op.batch_alter_table("tasks") as t:
        t.add_column(sa.Column("unit_price", sa.BigInteger, nullable=False, server_default="0"))
        t.add_column(sa.Column("hold_amount", sa.BigInteger, nullable=False, server_default="0"))
        t.add_column(
            sa.Column("charged_amount", sa.BigInteger, nullable=False, server_default="0")
        )
        t.add_column(
            sa.Column("charge_state", sa.String(16), nullable=False, server_default="none")
        )
    op.create_table(
        "ledger",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key_id", sa.String(40), nullable=False),
        sa.Column("task_id", sa.String(40), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("model", sa.String(100), nullable=True),
        sa.Column("tier", sa.String(8), nullable=True),
        sa.Column("images", sa.Integer, nullable=False, server_default="0"),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_ledger_key_created", "ledger", ["key_id", "created_at"])
    op.create_index("ix_ledger_task", "ledger", ["task_id"])
    op.create_table(
        "idempotency_keys",
        sa.Column("key_id", sa.String(40), primary_key=True),
        sa.Column("idem_key", sa.String(255), primary_key=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("task_id", sa.String(40), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_index("ix_idempotency_expires", "idempotency_keys", ["expires_at"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("key_id", sa.String(40), nullable=False),
        sa.Column("task_id", sa.String(40), nullable=False),
        sa.Column("event", sa.String(40), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("payload", sa.Text, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.Float, nullable=False),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_expires_at", sa.Float, nullable=True),
        sa.Column("last_status_code", sa.Integer, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("delivered_at", sa.Float, nullable=True),
    )
    op.create_index("ix_webhook_due", "webhook_deliveries", ["status", "next_attempt_at"])
    op.create_index("ix_webhook_key_created", "webhook_deliveries", ["key_id", "created_at"])


def downgrade() -> None:
    op.drop_table("webhook_deliveries")
    op.drop_table("idempotency_keys")
    op.drop_table("ledger")
    with op.batch_alter_table("tasks") as t:
        for name in ("charge_state", "charged_amount", "hold_amount", "unit_price"):
            t.drop_column(name)
    with op.batch_alter_table("api_keys") as t:
        for name in ("webhook_secret", "webhook_url", "active_tasks", "balance", "expires_at",
                     "concurrency", "rpm", "allowed_models"):
            t.drop_column(name)
