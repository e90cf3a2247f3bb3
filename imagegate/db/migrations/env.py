"""Alembic environment: always given a live connection by `imagegate.db.engine.migrate`."""

from __future__ import annotations

from alembic import context

from imagegate.db.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - guards a misuse, e.g. plain `alembic upgrade`
    raise RuntimeError("run migrations with `imagegate migrate`, which supplies a connection")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
