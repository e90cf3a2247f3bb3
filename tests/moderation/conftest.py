"""The moderation store runs over every database backend (fixtures of the contract suite)."""

from tests.contracts.conftest import database_url, db, make_key, postgres_url

__all__ = ["database_url", "db", "make_key", "postgres_url"]
