"""The accounts flow runs over every database backend, the image links over every blob store
(fixtures of the contract suite)."""

from tests.contracts.conftest import database_url, postgres_url, s3_bucket, s3_server

__all__ = ["database_url", "postgres_url", "s3_bucket", "s3_server"]
