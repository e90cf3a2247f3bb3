"""The accounts flow runs over every database backend (fixtures of the contract suite)."""

from tests.contracts.conftest import database_url, postgres_url

__all__ = ["database_url", "postgres_url"]
