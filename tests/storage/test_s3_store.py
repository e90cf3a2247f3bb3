"""The S3 blob store beyond the shared contract: its start-up check names the setting to fix
(wrong bucket, wrong credentials, unreachable endpoint), and the bucket holds what it says.
A real S3-compatible server on loopback (moto), no mocks."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagegate.errors import BackendUnavailableError
from imagegate.storage.s3_store import PROBE_KEY, s3_store
from tests.contracts.conftest import s3_settings
from tests.support.e2e import free_port
from tests.support.s3 import S3Server

pytestmark = pytest.mark.anyio


async def refusal(settings_dir: Path, server: S3Server, bucket: str, **more: object
                  ) -> BackendUnavailableError:
    store = s3_store(s3_settings(settings_dir, server, bucket, **more))
    try:
        with pytest.raises(BackendUnavailableError) as err:
            await store.check(thorough=True)
        return err.value
    finally:
        await store.aclose()


async def test_a_missing_bucket_names_s3_bucket(tmp_path: Path, s3_server: S3Server) -> None:
    err = await refusal(tmp_path, s3_server, "no-such-bucket-here")
    assert err.setting == "s3_bucket"
    assert "'no-such-bucket-here' does not exist" in err.message
    assert s3_server.endpoint in err.message


async def test_refused_credentials_name_the_aws_variables(
        tmp_path: Path, s3_server: S3Server, s3_bucket: str) -> None:
    with s3_server.require_auth():
        err = await refusal(tmp_path, s3_server, s3_bucket)
    assert err.setting == "AWS_ACCESS_KEY_ID"
    assert "InvalidAccessKeyId" in err.message and "AWS_SECRET_ACCESS_KEY" in err.message
    assert "imagegate-test-secret-key" not in str(err)


async def test_an_unreachable_endpoint_names_s3_endpoint(
        tmp_path: Path, s3_server: S3Server) -> None:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    err = await refusal(tmp_path, s3_server, "any-bucket", s3_endpoint=closed)
    assert err.setting == "s3_endpoint" and closed in err.message


async def test_the_check_leaves_a_probe_and_keys_stay_under_the_prefix(
        tmp_path: Path, s3_server: S3Server, s3_bucket: str) -> None:
    settings = s3_settings(tmp_path, s3_server, s3_bucket)
    store = s3_store(settings)
    try:
        await store.check(thorough=True)
        await store.put("tasks/img_x/1/0.png", b"png", "image/png")
        assert s3_server.keys(s3_bucket, settings.s3_prefix) == {
            settings.s3_prefix + PROBE_KEY, settings.s3_prefix + "tasks/img_x/1/0.png"}
        assert await store.delete_prefix("tasks/") == 1
        assert s3_server.keys(s3_bucket, settings.s3_prefix + "tasks/") == set()
    finally:
        await store.aclose()
