"""The guarded session factory: what makes every outbound session safe, in one place."""

from __future__ import annotations

import aiohttp
import pytest
from yarl import URL

from imagegate.net.guard import AddressPolicy, FetchRefusedError, GuardedResolver
from imagegate.net.session import GuardedSession

pytestmark = pytest.mark.anyio


def _session(policy: AddressPolicy | None = None) -> GuardedSession:
    return GuardedSession(policy or AddressPolicy(), timeout=aiohttp.ClientTimeout(total=5),
                          headers={"User-Agent": "test"}, limit=7)


@pytest.mark.parametrize("url", ["http://127.0.0.1/x", "http://[::1]/x", "http://10.1.2.3/",
                                 "http://169.254.169.254/latest", "http://2130706433/",
                                 "http://0x7f.1/", "http://[::ffff:127.0.0.1]/"])
async def test_refused_literals(url: str) -> None:
    with pytest.raises(FetchRefusedError) as info:
        _session().check_target(URL(url))
    assert "address" in info.value.public_reason


async def test_names_are_left_to_the_resolver_and_public_literals_pass() -> None:
    guarded = _session()
    assert guarded.check_target(URL("http://example.com/a")) == URL("http://example.com/a")
    assert guarded.check_target(URL("http://93.184.216.34/a")) == URL("http://93.184.216.34/a")


async def test_legacy_ipv4_forms_are_rewritten_to_the_checked_address() -> None:
    allowed = _session(AddressPolicy.from_config([], ["127.0.0.0/8"]))
    assert allowed.check_target(URL("http://2130706433:8080/p")) == URL(
        "http://127.0.0.1:8080/p")


async def test_allowed_host_names_skip_the_literal_check() -> None:
    guarded = _session(AddressPolicy.from_config(["images.internal"], []))
    assert guarded.check_target(URL("http://images.internal/x")).raw_host == "images.internal"


async def test_session_is_guarded_lazily_opened_and_closed() -> None:
    guarded = _session()
    session = guarded.session
    try:
        assert guarded.session is session  # reused while open
        connector = session.connector
        assert isinstance(connector, aiohttp.TCPConnector)
        assert connector.limit == 7
        assert connector.use_dns_cache is False  # a cached answer would skip the guard
        assert isinstance(connector._resolver, GuardedResolver)
        assert session.trust_env is False  # no environment proxies
        assert isinstance(session.cookie_jar, aiohttp.DummyCookieJar)
    finally:
        await guarded.aclose()
    assert session.closed
    reopened = guarded.session
    assert reopened is not session
    await guarded.aclose()
