"""A real S3-compatible server on loopback for the tests: moto's `ThreadedMotoServer`, which
speaks the S3 wire protocol (SigV4, presigned URLs, ranges) in a thread of the test process.

moto keeps its buckets in process-wide memory, so every test names its own bucket (or
prefix). Authentication is off by default (any access key is accepted); `require_auth()`
turns it on for the credential tests: then moto knows no access key at all and refuses
every signed request with InvalidAccessKeyId.
"""

from __future__ import annotations

import logging
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from tests.support.e2e import free_port

ACCESS_KEY = "AKIAIMAGEGATETEST000"
SECRET_KEY = "imagegate-test-secret-key"
REGION = "us-east-1"


class S3Server:
    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        # werkzeug logs one line per request otherwise.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port,
                                          verbose=False)

    def start(self) -> S3Server:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def create_bucket(self, name: str | None = None) -> str:
        name = name or f"igtest-{uuid.uuid4().hex[:12]}"
        resp = httpx.put(f"{self.endpoint}/{name}", timeout=10)
        assert resp.status_code == 200, resp.text
        return name

    def keys(self, bucket: str, prefix: str = "") -> set[str]:
        """Every object key in `bucket` under `prefix` (ListObjectsV2, paged)."""
        found: set[str] = set()
        token: str | None = None
        while True:
            params = {"list-type": "2", "prefix": prefix}
            if token:
                params["continuation-token"] = token
            resp = httpx.get(f"{self.endpoint}/{bucket}", params=params, timeout=30)
            assert resp.status_code == 200, resp.text
            found.update(re.findall(r"<Key>([^<]+)</Key>", resp.text))
            m = re.search(r"<NextContinuationToken>([^<]+)</NextContinuationToken>", resp.text)
            if m is None:
                return found
            token = m.group(1)

    @contextmanager
    def require_auth(self) -> Iterator[None]:
        """Make moto check every request's credentials (it knows none), then stop again."""
        resp = httpx.post(f"{self.endpoint}/moto-api/reset-auth", content=b"0", timeout=10)
        assert resp.status_code == 200, resp.text
        try:
            yield
        finally:
            httpx.post(f"{self.endpoint}/moto-api/reset-auth", content=b"inf", timeout=10)

    def settings(self, bucket: str, prefix: str = "") -> dict[str, str]:
        """The `IMAGEGATE_*` and AWS variables of a process using `bucket` here."""
        return {
            "IMAGEGATE_BLOB_STORE": "s3",
            "IMAGEGATE_S3_BUCKET": bucket,
            "IMAGEGATE_S3_ENDPOINT": self.endpoint,
            "IMAGEGATE_S3_REGION": REGION,
            "IMAGEGATE_S3_PREFIX": prefix,
            "IMAGEGATE_S3_ALLOW_HTTP": "true",
            **aws_env(),
        }


def aws_env(access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY) -> dict[str, str]:
    return {"AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key,
            "AWS_REGION": REGION}


@contextmanager
def aws_credentials() -> Iterator[None]:
    """The test credentials in this process's environment (obstore reads them there)."""
    saved = {k: os.environ.get(k) for k in aws_env()}
    os.environ.update(aws_env())
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
