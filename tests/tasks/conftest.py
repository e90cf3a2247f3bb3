"""The worker's tests that run over every blob store and every event bus (fixtures of the
contract suite)."""

from tests.contracts.conftest import blobs, bus_pair, s3_bucket, s3_server

__all__ = ["blobs", "bus_pair", "s3_bucket", "s3_server"]
