"""The guarded fetcher against real HTTP servers on loopback (127.0.0.1, 127.0.0.2, ::1).

Each server is a small asyncio TCP server that speaks just enough HTTP/1.1 and counts the
connections it accepts, so "refused" is proved by the target seeing no connection at all.
A second proof covers targets with no server behind them: every socket connect aiohttp
attempts goes through `aiohappyeyeballs.start_connection`, which the `dials` fixture records.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import aiohappyeyeballs
import aiohttp
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from imagegate import __version__
from imagegate.net.fetch import Fetcher, FetchError, FetchLimits
from imagegate.net.guard import AddressPolicy, FetchRefusedError, GuardedResolver

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024
NO_ALLOWLIST = AddressPolicy()
ALLOW_127_0_0_1 = AddressPolicy.from_config([], ["127.0.0.1/32"])
FAST = FetchLimits(total_timeout=3.0, connect_timeout=1.0)


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"image-bytes"
    delay: float = 0.0  # before the status line
    hang: float = 0.0  # after the headers, instead of a body
    stream: int = 0  # stream this many bytes, chunked, instead of `body`


Route = Callable[[str], Reply]


class CountingServer:
    """HTTP/1.1 on one address, one request per connection, counting accepted connections."""

    def __init__(self, host: str, route: Route) -> None:
        self.host = host
        self.route = route
        self.port = 0
        self.connections = 0
        self.requests: list[str] = []  # the request heads, lower-cased
        self.streamed = 0
        self.stream_completed: bool | None = None
        self.stream_done = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[Any]] = set()

    async def __aenter__(self) -> CountingServer:
        self._server = await asyncio.start_server(self._serve, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._handlers:
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    def url(self, path: str = "/") -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{path}"

    @property
    def paths(self) -> list[str]:
        return [head.split(" ")[1] for head in self.requests]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            self.requests.append(head.lower())
            reply = self.route(head.split(" ")[1])
            await asyncio.sleep(reply.delay)
            headers = {"Connection": "close", "Content-Type": "image/png", **reply.headers}
            if reply.stream:
                headers["Transfer-Encoding"] = "chunked"
            elif "Content-Length" not in headers:
                headers["Content-Length"] = str(len(reply.body))
            lines = [f"HTTP/1.1 {reply.status} X"] + [f"{k}: {v}" for k, v in headers.items()]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            await writer.drain()
            if reply.hang:
                await asyncio.sleep(reply.hang)
            elif reply.stream:
                await self._stream(writer, reply.stream)
            else:
                writer.write(reply.body)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with suppress(ConnectionError):
                await writer.wait_closed()
            self._handlers.discard(task)

    async def _stream(self, writer: asyncio.StreamWriter, total: int) -> None:
        chunk = b"x" * (64 * 1024)
        try:
            while self.streamed < total:
                if writer.is_closing():
                    break
                writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                await writer.drain()
                self.streamed += len(chunk)
            else:
                writer.write(b"0\r\n\r\n")
                await writer.drain()
        except ConnectionError:
            pass
        self.stream_completed = self.streamed >= total and not writer.is_closing()
        self.stream_done.set()


def serve(host: str, route: Route | None = None) -> CountingServer:
    return CountingServer(host, route or (lambda path: Reply()))


class FakeResolver(AbstractResolver):
    """Maps names to fixed addresses, as a DNS server the attacker controls would."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=0,
            )
            for address in self.answers[host]
        ]

    async def close(self) -> None:
        pass


@pytest.fixture
def dials(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every address aiohttp tries to open a socket to, in order."""
    dialled: list[Any] = []
    real = aiohappyeyeballs.start_connection

    async def spy(addr_infos: list[Any], **kwargs: Any) -> socket.socket:
        dialled.extend(info[4][:2] for info in addr_infos)
        return await real(addr_infos, **kwargs)

    monkeypatch.setattr(aiohappyeyeballs, "start_connection", spy)
    return dialled


async def fetch_error(fetcher: Fetcher, url: str, **kwargs: Any) -> FetchError:
    try:
        await fetcher.fetch(url, **kwargs)
    except FetchError as exc:
        return exc
    finally:
        await fetcher.aclose()
    raise AssertionError(f"{url} was fetched")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --- the happy path -----------------------------------------------------------------------


async def test_fetches_from_an_allowed_network(dials: list[Any]) -> None:
    async with serve("127.0.0.1") as server:
        fetcher = Fetcher(ALLOW_127_0_0_1, FAST)
        try:
            assert await fetcher.fetch(server.url("/cat.png")) == b"image-bytes"
        finally:
            await fetcher.aclose()
    assert server.connections == 1
    assert dials == [("127.0.0.1", server.port)]  # the spy sees real connects
    head = server.requests[0]
    assert head.startswith("get /cat.png http/1.1")
    assert f"user-agent: imagegate/{__version__}" in head
    assert "accept: image/*" in head


async def test_fetches_from_an_allowed_host_name() -> None:
    resolver = FakeResolver({"store.internal": ["127.0.0.1"]})
    policy = AddressPolicy.from_config(["Store.Internal"], [])
    async with serve("127.0.0.1") as server:
        fetcher = Fetcher(policy, FAST, resolver=resolver)
        try:
            data = await fetcher.fetch(f"http://store.internal:{server.port}/a.png")
        finally:
            await fetcher.aclose()
    assert data == b"image-bytes"
    assert resolver.asked == ["store.internal"]


# --- refusals: loopback targets with a counting server behind them ---------------------------

LOOPBACK_URLS = [
    "http://127.0.0.1:{port}/x",
    "http://0x7f000001:{port}/",
    "http://2130706433:{port}/",
    "http://0177.0.0.1:{port}/",
    "http://127.1:{port}/",
    "http://0x7f.1:{port}/",
    "http://[::ffff:127.0.0.1]:{port}/",
    "http://user:hunter2@127.0.0.1:{port}/",
]


@pytest.mark.parametrize("template", LOOPBACK_URLS)
async def test_loopback_literals_are_refused(template: str, dials: list[Any]) -> None:
    async with serve("127.0.0.1") as server:
        exc = await fetch_error(Fetcher(NO_ALLOWLIST, FAST), template.format(port=server.port))
    assert (exc.code, exc.status) == ("url_refused", 400)
    assert "loopback address" in exc.message
    assert "hunter2" not in exc.message and "user" not in exc.message
    assert server.connections == 0
    assert dials == []


async def test_ipv6_loopback_is_refused(dials: list[Any]) -> None:
    try:
        server = await serve("::1").__aenter__()
    except OSError as bind_error:
        pytest.skip(f"no IPv6 loopback here: {bind_error}")
    try:
        refused = await fetch_error(Fetcher(NO_ALLOWLIST, FAST), server.url())
    finally:
        await server.__aexit__(None, None, None)
    assert refused.code == "url_refused"
    assert "loopback" in refused.message
    assert server.connections == 0
    assert dials == []


async def test_localhost_is_refused_after_real_dns(dials: list[Any]) -> None:
    async with serve("127.0.0.1") as server:
        exc = await fetch_error(Fetcher(NO_ALLOWLIST, FAST), f"http://localhost:{server.port}/")
    assert exc.code == "url_refused"
    assert "localhost resolves to a loopback address" in exc.message
    assert server.connections == 0
    assert dials == []


async def test_name_resolving_to_loopback_is_refused(dials: list[Any]) -> None:
    resolver = FakeResolver({"images.example.test": ["127.0.0.1"]})
    async with serve("127.0.0.1") as server:
        fetcher = Fetcher(NO_ALLOWLIST, FAST, resolver=resolver)
        exc = await fetch_error(fetcher, f"http://images.example.test:{server.port}/cat.png")
    assert exc.code == "url_refused"
    assert "images.example.test resolves to a loopback address" in exc.message
    assert resolver.asked == ["images.example.test"]
    assert server.connections == 0
    assert dials == []


# --- refusals: names whose addresses have nothing listening (the dial spy is the proof) -------

NAMED_TARGETS = [
    (["10.0.0.1"], "private address"),
    (["192.168.1.20"], "private address"),
    (["169.254.169.254"], "cloud metadata address"),
    (["100.64.0.1"], "CGNAT"),
    (["fd00:ec2::254"], "cloud metadata address"),
    (["::1"], "loopback address"),
    (["::ffff:10.0.0.1"], "private address"),
    (["0.0.0.0"], "unspecified address"),
    (["93.184.216.34", "10.0.0.1"], "private address"),  # a rebinding-style mixed answer
]


@pytest.mark.parametrize(("addresses", "kind"), NAMED_TARGETS)
async def test_name_resolving_to_refused_address(
    addresses: list[str], kind: str, dials: list[Any]
) -> None:
    resolver = FakeResolver({"images.example.test": addresses})
    fetcher = Fetcher(NO_ALLOWLIST, FAST, resolver=resolver)
    exc = await fetch_error(fetcher, "https://images.example.test/cat.png")
    assert exc.code == "url_refused"
    assert f"images.example.test resolves to a{'n' if kind[0] in 'aeiou' else ''} {kind}" in (
        exc.message
    )
    # The client learns the class, not what internal DNS answered.
    assert not any(address in exc.message for address in addresses)
    assert resolver.asked == ["images.example.test"]
    assert dials == []


# --- redirects --------------------------------------------------------------------------------


async def test_redirect_to_a_refused_address_is_refused(dials: list[Any]) -> None:
    async with serve("127.0.0.2") as inner:
        target = inner.url("/secret")
        async with serve("127.0.0.1", lambda p: Reply(302, {"Location": target})) as outer:
            exc = await fetch_error(Fetcher(ALLOW_127_0_0_1, FAST), outer.url("/img"))
    assert exc.code == "url_refused"
    assert "127.0.0.2 is a loopback address" in exc.message
    assert outer.connections == 1
    assert inner.connections == 0
    assert dials == [("127.0.0.1", outer.port)]


async def test_redirect_to_a_name_resolving_privately_is_refused(dials: list[Any]) -> None:
    resolver = FakeResolver({"internal.example.test": ["10.0.0.1"]})
    location = "http://internal.example.test/admin"
    async with serve("127.0.0.1", lambda p: Reply(301, {"Location": location})) as server:
        fetcher = Fetcher(ALLOW_127_0_0_1, FAST, resolver=resolver)
        exc = await fetch_error(fetcher, server.url("/img"))
    assert exc.code == "url_refused"
    assert "resolves to a private address" in exc.message
    assert dials == [("127.0.0.1", server.port)]


def chain(path: str) -> Reply:
    """/r/N redirects (relatively) to /r/N-1; /r/0 is the image."""
    left = int(path.rsplit("/", 1)[1])
    if left == 0:
        return Reply(body=b"end-of-chain")
    return Reply(302, {"Location": f"/r/{left - 1}"})


async def test_three_redirects_are_followed() -> None:
    async with serve("127.0.0.1", chain) as server:
        fetcher = Fetcher(ALLOW_127_0_0_1, FAST)
        try:
            assert await fetcher.fetch(server.url("/r/3")) == b"end-of-chain"
        finally:
            await fetcher.aclose()
    assert server.paths == ["/r/3", "/r/2", "/r/1", "/r/0"]


async def test_four_redirects_are_too_many() -> None:
    async with serve("127.0.0.1", chain) as server:
        exc = await fetch_error(Fetcher(ALLOW_127_0_0_1, FAST), server.url("/r/4"))
    assert (exc.code, exc.status) == ("too_many_redirects", 400)
    assert "3 redirects" in exc.message
    assert server.paths == ["/r/4", "/r/3", "/r/2", "/r/1"]  # /r/0 was never requested


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_each_redirect_status_is_followed(status: int) -> None:
    def route(path: str) -> Reply:
        return Reply(status, {"Location": "/final#frag"}) if path == "/start" else Reply()

    async with serve("127.0.0.1", route) as server:
        fetcher = Fetcher(ALLOW_127_0_0_1, FAST)
        try:
            assert await fetcher.fetch(server.url("/start")) == b"image-bytes"
        finally:
            await fetcher.aclose()
    assert server.paths == ["/start", "/final"]


async def test_redirect_to_another_scheme_is_refused(dials: list[Any]) -> None:
    location = "ftp://127.0.0.1/x.png"
    async with serve("127.0.0.1", lambda p: Reply(302, {"Location": location})) as server:
        exc = await fetch_error(Fetcher(ALLOW_127_0_0_1, FAST), server.url("/img"))
    assert exc.code == "url_scheme"
    assert "ftp" in exc.message
    assert server.connections == 1


async def test_redirect_without_location_is_a_bad_status() -> None:
    async with serve("127.0.0.1", lambda p: Reply(302)) as server:
        exc = await fetch_error(Fetcher(ALLOW_127_0_0_1, FAST), server.url("/img"))
    assert exc.code == "bad_status"


# --- size cap -----------------------------------------------------------------------------------


async def test_content_length_over_the_cap_is_refused_before_the_body() -> None:
    # The server announces 50 MiB and then sends nothing: reading any body would hang until
    # the deadline and report a timeout instead.
    big = Reply(headers={"Content-Length": str(50 * MiB)}, hang=10)
    async with serve("127.0.0.1", lambda p: big) as server:
        started = time.monotonic()
        exc = await fetch_error(Fetcher(ALLOW_127_0_0_1, FAST), server.url(), max_bytes=MiB)
        elapsed = time.monotonic() - started
    assert (exc.code, exc.status) == ("too_large", 413)
    assert "1 MiB" in exc.message
    assert elapsed < 1.0


async def test_streamed_body_over_the_cap_stops_early() -> None:
    total = 64 * MiB
    async with serve("127.0.0.1", lambda p: Reply(stream=total)) as server:
        exc = await fetch_error(Fetcher(ALLOW_127_0_0_1, FAST), server.url(), max_bytes=256 * 1024)
        await asyncio.wait_for(server.stream_done.wait(), 5)
    assert (exc.code, exc.status) == ("too_large", 413)
    # The client hung up: the server's writes failed long before the body was complete.
    assert server.stream_completed is False
    assert server.streamed < total // 4


async def test_body_of_exactly_the_cap_is_accepted() -> None:
    async with serve("127.0.0.1", lambda p: Reply(body=b"x" * 1000)) as server:
        fetcher = Fetcher(ALLOW_127_0_0_1, FAST)
        try:
            assert len(await fetcher.fetch(server.url(), max_bytes=1000)) == 1000
        finally:
            await fetcher.aclose()
        exc = await fetch_error(Fetcher(ALLOW_127_0_0_1, FAST), server.url(), max_bytes=999)
    assert exc.code == "too_large"


async def test_limits_default_cap_applies() -> None:
    limits = FetchLimits(max_bytes=10, total_timeout=3.0)
    async with serve("127.0.0.1", lambda p: Reply(stream=MiB)) as server:
        exc = await fetch_error(Fetcher(ALLOW_127_0_0_1, limits), server.url())
    assert exc.code == "too_large"


# --- bad input -----------------------------------------------------------------------------------


async def test_slow_server_times_out() -> None:
    limits = FetchLimits(total_timeout=0.5, connect_timeout=0.5)
    async with serve("127.0.0.1", lambda p: Reply(delay=5)) as server:
        started = time.monotonic()
        exc = await fetch_error(Fetcher(ALLOW_127_0_0_1, limits), server.url())
        elapsed = time.monotonic() - started
    assert (exc.code, exc.status) == ("fetch_timeout", 400)
    assert "timed out after 0.5 s" in exc.message
    assert elapsed < 2.0


async def test_slow_body_times_out() -> None:
    limits = FetchLimits(total_timeout=0.5, connect_timeout=0.5)
    trickle = Reply(headers={"Content-Length": "100"}, hang=5)
    async with serve("127.0.0.1", lambda p: trickle) as server:
        exc = await fetch_error(Fetcher(ALLOW_127_0_0_1, limits), server.url())
    assert exc.code == "fetch_timeout"


async def test_connect_that_hangs_times_out() -> None:
    # A listener whose accept queue is full drops further SYNs, so connect() just waits.
    listener = socket.socket()
    fillers: list[socket.socket] = []
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        for _ in range(3):
            filler = socket.socket()
            fillers.append(filler)
            filler.setblocking(False)
            with suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
        await asyncio.sleep(0.05)
        limits = FetchLimits(connect_timeout=0.3, total_timeout=3.0)
        started = time.monotonic()
        exc = await fetch_error(Fetcher(ALLOW_127_0_0_1, limits), f"http://127.0.0.1:{port}/")
        elapsed = time.monotonic() - started
    finally:
        for sock in [*fillers, listener]:
            sock.close()
    assert exc.code == "fetch_timeout"
    assert exc.message == "Connecting to 127.0.0.1 timed out after 0.3 s"
    assert elapsed < 2.0


async def test_closed_port_fails_clearly() -> None:
    url = f"http://127.0.0.1:{free_port()}/img.png"
    exc = await fetch_error(Fetcher(ALLOW_127_0_0_1, FAST), url)
    assert (exc.code, exc.status) == ("fetch_failed", 400)
    assert exc.message == "Could not fetch the image: 127.0.0.1 could not be reached"


async def test_unknown_host_fails_clearly(dials: list[Any]) -> None:
    fetcher = Fetcher(NO_ALLOWLIST, FAST, resolver=FakeResolver({}))
    exc = await fetch_error(fetcher, "http://nowhere.example.test/img.png")
    assert exc.code == "fetch_failed"
    assert "nowhere.example.test could not be reached" in exc.message
    assert dials == []


async def test_not_found_is_a_bad_status() -> None:
    async with serve("127.0.0.1", lambda p: Reply(404, body=b"nope")) as server:
        exc = await fetch_error(Fetcher(ALLOW_127_0_0_1, FAST), server.url("/missing.png"))
    assert (exc.code, exc.status) == ("bad_status", 400)
    assert "HTTP 404" in exc.message


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "gopher://127.0.0.1:70/_x",
        "ftp://example.com/a.png",
        "data:image/png;base64,AAAA",
        "blob:https://example.com/0f0f",
        "//example.com/a.png",
        "/relative/a.png",
        "http:///no-host",
    ],
)
async def test_bad_schemes_and_urls(url: str, dials: list[Any]) -> None:
    exc = await fetch_error(Fetcher(NO_ALLOWLIST, FAST), url)
    assert (exc.code, exc.status) == ("url_scheme", 400)
    assert dials == []


async def test_fetcher_can_be_reused_and_closed_twice() -> None:
    async with serve("127.0.0.1") as server:
        fetcher = Fetcher(ALLOW_127_0_0_1, FAST)
        assert await fetcher.fetch(server.url("/1")) == b"image-bytes"
        assert await fetcher.fetch(server.url("/2")) == b"image-bytes"
        await fetcher.aclose()
        await fetcher.aclose()
        assert await fetcher.fetch(server.url("/3")) == b"image-bytes"
        await fetcher.aclose()


# --- the aiohttp behaviours the guard depends on ----------------------------------------------


async def test_aiohttp_skips_the_resolver_for_ip_literals() -> None:
    """Why the fetcher judges literal hosts itself: aiohttp never asks the resolver."""
    resolver = FakeResolver({})
    async with serve("127.0.0.1") as server:
        fetcher = Fetcher(ALLOW_127_0_0_1, FAST, resolver=resolver)
        try:
            await fetcher.fetch(server.url())
        finally:
            await fetcher.aclose()
    assert resolver.asked == []


async def test_aiohttp_wraps_resolver_refusals() -> None:
    """aiohttp raises ClientConnectorDNSError with the refusal as os_error and __cause__."""
    guarded = GuardedResolver(NO_ALLOWLIST, FakeResolver({"x.example.test": ["10.0.0.1"]}))
    connector = aiohttp.TCPConnector(resolver=guarded, use_dns_cache=False)
    async with aiohttp.ClientSession(connector=connector) as session:
        with pytest.raises(aiohttp.ClientConnectorDNSError) as caught:
            await session.get("http://x.example.test/")
    assert isinstance(caught.value.os_error, FetchRefusedError)
    assert caught.value.__cause__ is caught.value.os_error
