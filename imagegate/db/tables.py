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
    sa.Index("ix_tasks_status_created", "status", "created_at"),
    sa.Index("ix_tasks_status_lease", "status", "lease_expires_at"),
    sa.Index("ix_tasks_expires", "expires_at"),
)
