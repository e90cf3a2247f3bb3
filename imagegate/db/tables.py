"""Table definitions (SQLAlchemy Core). Migrations in `db/migrations` create exactly these.

Times are epoch seconds as floats: the same type on SQLite and PostgreSQL, cheap to compare
in the claim and reaper statements, and free of time-zone handling.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("prefix", sa.String(32), nullable=False),
    # sha256 of the whole key: keys are 256-bit random, so a slow KDF would add nothing.
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("revoked_at", sa.Float, nullable=True),
    # -- limits and billing (0002). NULL means "no limit" for each of these.
    sa.Column("allowed_models", sa.Text, nullable=True),  # JSON list of model names
    sa.Column("rpm", sa.Integer, nullable=True),  # requests per minute
    sa.Column("concurrency", sa.Integer, nullable=True),  # queued + running tasks at once
    sa.Column("expires_at", sa.Float, nullable=True),
    # Money is integer micro-units (1e-6 of the price currency): exact sums, no float drift.
    # NULL balance = postpaid (usage is still recorded in the ledger, never refused).
    sa.Column("balance", sa.BigInteger, nullable=True),
    # Tasks of this key not yet finished; moved only together with the task's own state, in
    # one transaction, so the concurrency limit is a conditional update like the balance.
    sa.Column("active_tasks", sa.Integer, nullable=False, server_default="0"),
    sa.Column("webhook_url", sa.Text, nullable=True),
    sa.Column("webhook_secret", sa.String(100), nullable=True),  # "whsec_<base64>"
    # -- moderation (0003): this key's own blocklist entries (JSON list; NULL: none), and
    # whether its requests' `moderation: low` relaxes the model check.
    sa.Column("moderation_blocklist", sa.Text, nullable=True),
    sa.Column("allow_low_moderation", sa.Boolean, nullable=False, server_default=sa.false()),
    # -- webhook event filter (0005): JSON list ⊆ started, progress, completed; NULL: the
    # end only. A request's own `webhook_events` wins.
    sa.Column("webhook_events", sa.Text, nullable=True),
)

tasks = sa.Table(
    "tasks",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("key_id", sa.String(40), nullable=False, index=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("progress", sa.Integer, nullable=False, default=0),
    sa.Column("operation", sa.String(16), nullable=False),
    sa.Column("model", sa.String(100), nullable=False),
    sa.Column("provider", sa.String(100), nullable=True),
    sa.Column("request", sa.Text, nullable=False),  # ImageRequest.to_json(), as JSON text
    sa.Column("result", sa.Text, nullable=True),  # stored images and usage, as JSON text
    sa.Column("error", sa.Text, nullable=True),  # {"message","type","param","code"}
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("started_at", sa.Float, nullable=True),
    sa.Column("completed_at", sa.Float, nullable=True),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Column("lease_owner", sa.String(64), nullable=True),
    sa.Column("lease_expires_at", sa.Float, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    # Set the moment an upstream accepts the job, so recovery resumes instead of resubmitting.
    sa.Column("upstream_task_id", sa.String(200), nullable=True),
    # -- billing (0002): price per image and the hold placed at submit (micro-units).
    sa.Column("unit_price", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("hold_amount", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("charged_amount", sa.BigInteger, nullable=False, server_default="0"),
    # none | held | settled | refunded: each transition is conditional on the one before,
    # so a hold is settled or refunded exactly once whoever races to do it.
    sa.Column("charge_state", sa.String(16), nullable=False, server_default="none"),
    # -- deadlines (0006): when a task not finished by then is cancelled (epoch seconds);
    # NULL: none. In the row, so a restarted worker (or any sweeper) enforces it.
    sa.Column("deadline_at", sa.Float, nullable=True),
    sa.Index("ix_tasks_status_created", "status", "created_at"),
    sa.Index("ix_tasks_status_lease", "status", "lease_expires_at"),
    sa.Index("ix_tasks_expires", "expires_at"),
    # -- listing (0004): keyset pages of GET /v1/tasks (per key) and GET /admin/tasks (all).
    sa.Index("ix_tasks_key_created", "key_id", "created_at", "id"),
    sa.Index("ix_tasks_created", "created_at", "id"),
    sa.Index("ix_tasks_deadline", "deadline_at"),
)

ledger = sa.Table(
    "ledger",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key_id", sa.String(40), nullable=False),
    sa.Column("task_id", sa.String(40), nullable=True),
    # topup | adjust | hold | settle | refund. The sum of `amount` over a key is its balance.
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),  # signed micro-units
    sa.Column("model", sa.String(100), nullable=True),
    sa.Column("tier", sa.String(8), nullable=True),
    sa.Column("images", sa.Integer, nullable=False, server_default="0"),
    sa.Column("note", sa.Text, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Index("ix_ledger_key_created", "key_id", "created_at"),
    sa.Index("ix_ledger_task", "task_id"),
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("key_id", sa.String(40), primary_key=True),
    sa.Column("idem_key", sa.String(255), primary_key=True),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("task_id", sa.String(40), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Index("ix_idempotency_expires", "expires_at"),
)

webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),  # the `webhook-id` header ("msg_...")
    sa.Column("key_id", sa.String(40), nullable=False),
    sa.Column("task_id", sa.String(40), nullable=False),
    sa.Column("event", sa.String(40), nullable=False),  # e.g. "task.succeeded" (SSE names)
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("payload", sa.Text, nullable=True),  # JSON body, rendered at the first attempt
    sa.Column("status", sa.String(16), nullable=False),  # pending | delivered | failed
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", sa.Float, nullable=False),
    sa.Column("lease_owner", sa.String(64), nullable=True),
    sa.Column("lease_expires_at", sa.Float, nullable=True),
    sa.Column("last_status_code", sa.Integer, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("delivered_at", sa.Float, nullable=True),
    sa.Index("ix_webhook_due", "status", "next_attempt_at"),
    sa.Index("ix_webhook_key_created", "key_id", "created_at"),
)

# The operator's global blocklist entries kept in the database (the admin API replaces them);
# one row per scope, today only "global". Entries from the config and the blocklist file are
# not stored here.
moderation_lists = sa.Table(
    "moderation_lists",
    metadata,
    sa.Column("scope", sa.String(40), primary_key=True),
    sa.Column("entries", sa.Text, nullable=False),  # JSON list of entry lines
    sa.Column("updated_at", sa.Float, nullable=False),
)

# One row per refused request (no task, no ledger row exists for it): what usage reports and
# `GET /admin/moderation/refusals` count. Never the prompt. Purged after retention_seconds.
moderation_refusals = sa.Table(
    "moderation_refusals",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key_id", sa.String(40), nullable=False),
    sa.Column("source", sa.String(16), nullable=False),  # blocklist | model | upstream
    sa.Column("category", sa.String(64), nullable=False),
    sa.Column("model", sa.String(100), nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Index("ix_moderation_refusals_key_created", "key_id", "created_at"),
    sa.Index("ix_moderation_refusals_created", "created_at"),
)
