"""The S3 server of the contract suite, for the S3 store's own tests."""

from tests.contracts.conftest import s3_bucket, s3_server

__all__ = ["s3_bucket", "s3_server"]
