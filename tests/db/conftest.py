"""The PostgreSQL fixtures of the contract suite, for the PostgreSQL-only tests here."""

from tests.contracts.conftest import postgres_url

__all__ = ["postgres_url"]
