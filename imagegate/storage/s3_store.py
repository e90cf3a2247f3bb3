"""`blob_store = "s3"`: a bucket of S3 or any S3-compatible service, through obstore.

Every process of a distributed deployment reads and writes the same bucket, so a result
written by a worker on one host is served by an API process on another. Credentials come the
standard AWS way (`AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, web
identity or the instance role), read by obstore itself: imagegate never holds or logs them.

Objects are written with their `Content-Type`, so a presigned URL (`s3_presigned_redirect`)
serves them as images. At start-up `check(thorough=True)` writes and reads back a small probe
object (`<s3_prefix>.imagegate/probe`), which proves in one go that the endpoint answers,
the bucket exists and the credentials may write; the readiness probe only asks for its
metadata, so it never writes.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import obstore
from obstore.store import S3Store

from imagegate.config import Settings
from imagegate.errors import BackendUnavailableError
from imagegate.storage.base import BlobStore
from imagegate.storage.obstore_store import ObstoreBlobStore

if TYPE_CHECKING:
    from obstore.store import S3Config

PROBE_KEY = ".imagegate/probe"
# obstore's own default retries a failing request for up to 3 minutes; a worker has its own
# retries (task attempts) and a start-up check must answer quickly.
_RETRY: dict[str, Any] = {
    "max_retries": 4,
    "retry_timeout": timedelta(seconds=20),
    "backoff": {"init_backoff": timedelta(milliseconds=100),
                "max_backoff": timedelta(seconds=2), "base": 2},
}
_CHECK_TIMEOUT = 30.0
# Markers in S3's error replies (and obstore's wording of them), most specific first.
_CREDENTIAL_ERRORS = ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied",
                      "InvalidToken", "ExpiredToken", "403 Forbidden", "401 Unauthorized")
_CONNECT_ERRORS = ("error sending request", "Connect", "dns error", "timed out")


class S3BlobStore(ObstoreBlobStore):
    def __init__(self, store: S3Store, *, bucket: str, endpoint: str | None) -> None:
        super().__init__(store)
        self._bucket = bucket
        self._where = endpoint or "AWS S3"

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        await obstore.put_async(self._store, key, data,
                                attributes={"Content-Type": content_type})

    async def presigned_url(self, key: str, seconds: float) -> str | None:
        url: str = await obstore.sign_async(self._store, "GET", key,
                                            timedelta(seconds=max(1, int(seconds))))
        return url

    async def check(self, *, thorough: bool = False) -> None:
        try:
            async with asyncio.timeout(_CHECK_TIMEOUT):
                if thorough:
                    await obstore.put_async(self._store, PROBE_KEY, b"imagegate",
                                            attributes={"Content-Type": "text/plain"})
                    await obstore.get_async(self._store, PROBE_KEY)
                else:
                    try:
                        await obstore.head_async(self._store, PROBE_KEY)
                    except FileNotFoundError:
                        pass  # the service answered; the probe is written at start-up only
        except TimeoutError:
            raise BackendUnavailableError(
                "s3_endpoint", f"{self._where} did not answer within {_CHECK_TIMEOUT:.0f} s"
            ) from None
        except Exception as exc:
            raise self._explain(exc) from None

    def _explain(self, exc: Exception) -> BackendUnavailableError:
        """S3's refusal as one line naming the setting to fix (obstore's message goes on
        for pages of debug output, which names URLs but never credentials)."""
        text = str(exc)
        first = text.splitlines()[0][:300] if text else type(exc).__name__
        if "NoSuchBucket" in text:
            return BackendUnavailableError(
                "s3_bucket", f"the bucket {self._bucket!r} does not exist at {self._where}")
        code = next((m for m in _CREDENTIAL_ERRORS if m in text), None)
        if code is None and type(exc).__name__ in ("PermissionDeniedError",
                                                   "UnauthenticatedError"):
            code = type(exc).__name__
        if code is not None:
            return BackendUnavailableError(
                "AWS_ACCESS_KEY_ID",
                f"{self._where} refused the credentials for bucket {self._bucket!r} ({code}); "
                "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or the instance role) and "
                "the bucket's policy")
        if any(marker in text for marker in _CONNECT_ERRORS):
            return BackendUnavailableError("s3_endpoint", f"cannot reach {self._where}: {first}")
        return BackendUnavailableError("blob_store", f"S3 bucket {self._bucket!r}: {first}")


def s3_store(settings: Settings) -> BlobStore:
    """`blob_store = "s3"`: the bucket `s3_bucket` (under `s3_prefix`) at `s3_endpoint`."""
    if not settings.s3_bucket:  # Settings refuses this already; a direct call may not
        raise BackendUnavailableError("s3_bucket", 'required when blob_store = "s3"')
    config: S3Config = {}
    if settings.s3_endpoint:
        config["endpoint"] = settings.s3_endpoint
    if settings.s3_region:
        config["region"] = settings.s3_region
    store = S3Store(
        settings.s3_bucket,
        prefix=settings.s3_prefix or None,
        config=config,
        client_options={"allow_http": settings.s3_allow_http, "connect_timeout": "5s",
                        "timeout": "300s"},
        retry_config=_RETRY,  # type: ignore[arg-type]
    )
    return S3BlobStore(store, bucket=settings.s3_bucket, endpoint=settings.s3_endpoint)
