"""The SSRF guard's address policy, literal parsing and resolver (DESIGN §6).

Expected classes are written out from the IANA special-purpose registries, not derived from
the code under test.
"""

from __future__ import annotations

import socket
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from imagegate.net.guard import (
    AddressPolicy,
    FetchRefusedError,
    GuardedResolver,
    parse_host_literal,
)

NO_ALLOWLIST = AddressPolicy()

REFUSED_V4 = [
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "unspecified"),
    ("10.0.0.5", "private"),
    ("10.255.255.255", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("100.64.0.1", "CGNAT"),
    ("100.127.255.254", "CGNAT"),
    ("169.254.1.1", "link-local"),
    ("169.254.169.254", "cloud metadata"),
    ("169.254.170.2", "cloud metadata"),
    ("192.0.0.1", "reserved"),
    ("192.0.0.170", "reserved"),
    ("192.0.2.1", "documentation"),
    ("198.18.0.1", "benchmarking"),
    ("198.19.255.255", "benchmarking"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.254", "reserved"),
    ("255.255.255.255", "broadcast"),
]

REFUSED_V6 = [
    ("::1", "loopback"),
    ("::", "unspecified"),
    ("fe80::1", "link-local"),
    ("febf:ffff::1", "link-local"),
    ("fc00::1", "private"),
    ("fd12:3456::1", "private"),
    ("fd00:ec2::254", "cloud metadata"),
    ("ff02::1", "multicast"),
    ("ff0e::1", "multicast"),
    ("fec0::1", "site-local"),
    ("2001:db8::1", "documentation"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
    ("100::1", "discard"),
    ("4000::1", "reserved"),
    # IPv4-mapped: judged as the IPv4 address the kernel will actually connect to.
    ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:10.0.0.1", "private"),
    ("::ffff:169.254.169.254", "cloud metadata"),
    ("::ffff:100.64.0.1", "CGNAT"),
    # NAT64 and 6to4 reach the IPv4 address they embed.
    ("64:ff9b::10.0.0.1", "private"),
    ("64:ff9b::127.0.0.1", "loopback"),
    ("64:ff9b::169.254.169.254", "cloud metadata"),
    ("2002:a00:1::1", "private"),  # 6to4 for 10.0.0.1
    ("2002:7f00:1::", "loopback"),  # 6to4 for 127.0.0.1
    ("64:ff9b:1::1", "NAT64"),  # local-use NAT64: a private translator
    # Deprecated IPv4-compatible form: refused whatever it embeds.
    ("::127.0.0.1", "loopback"),
    ("::8.8.8.8", "IPv4-compatible"),
]

ALLOWED = [
    "93.184.216.34",
    "8.8.8.8",
    "1.1.1.1",
    "100.63.255.255",  # just below CGNAT
    "100.128.0.0",  # just above CGNAT
    "172.32.0.1",  # just above 172.16/12
    "2606:4700::1",
    "2001:4860:4860::8888",
    "::ffff:93.184.216.34",
    "64:ff9b::93.184.216.34",  # NAT64 to a public address is how IPv6-only hosts reach it
    "2002:5db8:d822::1",  # 6to4 for 93.184.216.34
]


@pytest.mark.parametrize(("address", "kind"), REFUSED_V4 + REFUSED_V6)
def test_refused_classes(address: str, kind: str) -> None:
    reason = NO_ALLOWLIST.refusal(ip_address(address))
    assert reason is not None
    assert kind in reason


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_are_allowed(address: str) -> None:
    assert NO_ALLOWLIST.refusal(ip_address(address)) is None


def test_reason_names_the_address() -> None:
    assert NO_ALLOWLIST.refusal(IPv4Address("127.0.0.1")) == "loopback address 127.0.0.1"
    assert NO_ALLOWLIST.refusal(IPv4Address("10.0.0.5")) == "private address 10.0.0.5"
    metadata = NO_ALLOWLIST.refusal(IPv4Address("169.254.169.254"))
    assert metadata == "cloud metadata address 169.254.169.254"
    cgnat = NO_ALLOWLIST.refusal(IPv4Address("100.64.0.1"))
    assert cgnat is not None and "100.64.0.0/10" in cgnat


def test_mapped_address_is_judged_as_its_ipv4() -> None:
    reason = NO_ALLOWLIST.refusal(IPv6Address("::ffff:127.0.0.1"))
    assert reason is not None and reason.startswith("loopback address 127.0.0.1")


LITERALS = [
    ("127.0.0.1", "127.0.0.1"),
    ("0x7f000001", "127.0.0.1"),
    ("0X7F000001", "127.0.0.1"),
    ("2130706433", "127.0.0.1"),
    ("017700000001", "127.0.0.1"),
    ("0177.0.0.1", "127.0.0.1"),
    ("0x7f.0.0.1", "127.0.0.1"),
    ("127.1", "127.0.0.1"),
    ("127.0.1", "127.0.0.1"),
    ("0x7f.1", "127.0.0.1"),
    ("10.0x10000", "10.1.0.0"),
    ("0", "0.0.0.0"),
    ("127.0.0.1.", "127.0.0.1"),
    ("%31%32%37.0.0.1", "127.0.0.1"),
    ("[::1]", "::1"),
    ("::1", "::1"),
    ("[::ffff:127.0.0.1]", "::ffff:7f00:1"),
    ("[FE80::1]", "fe80::1"),
]


@pytest.mark.parametrize(("host", "expected"), LITERALS)
def test_parse_host_literal(host: str, expected: str) -> None:
    assert parse_host_literal(host) == ip_address(expected)


@pytest.mark.parametrize(
    "host",
    [
        "example.com",
        "localhost",
        "images.example.test",
        "127.0.0.1.nip.io",
        "1.2.3.4.5",
        "256.0.0.1",
        "1.2.3.256",
        "1.2.65536",
        "4294967296",
        "08.0.0.1",
        "0x1g",
        "1e3",
        "",
        "[not-v6]",
        "::zz",
    ],
)
def test_names_are_not_literals(host: str) -> None:
    assert parse_host_literal(host) is None


@pytest.mark.parametrize(
    "host", ["0x7f000001", "2130706433", "0177.0.0.1", "127.1", "0x7f.1", "[::1]", "0"]
)
def test_odd_literal_forms_are_refused(host: str) -> None:
    literal = parse_host_literal(host)
    assert literal is not None
    assert NO_ALLOWLIST.refusal(literal) is not None


def test_allowed_networks() -> None:
    policy = AddressPolicy.from_config([], ["127.0.0.1/32", "10.0.0.0/8", "fd00::/8"])
    assert policy.refusal(IPv4Address("127.0.0.1")) is None
    assert policy.refusal(IPv4Address("127.0.0.2")) is not None
    assert policy.refusal(IPv4Address("10.1.2.3")) is None
    assert policy.refusal(IPv6Address("::ffff:10.1.2.3")) is None  # mapped: judged as IPv4
    assert policy.refusal(IPv6Address("fd00:ec2::254")) is None  # the operator said so
    assert policy.refusal(IPv4Address("192.168.0.1")) is not None
    assert policy.refusal(IPv4Address("169.254.169.254")) is not None


def test_allowed_hosts_are_exact_and_case_insensitive() -> None:
    policy = AddressPolicy.from_config(["Store.Internal.", "10.0.0.7"], [])
    assert policy.host_allowed("store.internal")
    assert policy.host_allowed("STORE.INTERNAL.")
    assert not policy.host_allowed("evil.store.internal")
    assert not policy.host_allowed("store.internal.evil")
    # An IP literal in the host list is an allowed single address.
    assert policy.allow_networks == (ip_network("10.0.0.7/32"),)
    assert policy.refusal(IPv4Address("10.0.0.7")) is None
    assert AddressPolicy(allow_hosts=frozenset({"A.Example"})).host_allowed("a.example")


@pytest.mark.parametrize("network", ["10.0.0.0/33", "not-a-network", "10.0.0.5/8", "", "::1/129"])
def test_bad_cidr_in_config(network: str) -> None:
    with pytest.raises(ValueError, match="not a valid CIDR"):
        AddressPolicy.from_config([], [network])


@pytest.mark.parametrize("host", ["*.example.com", "", "  "])
def test_bad_host_in_config(host: str) -> None:
    with pytest.raises(ValueError, match="exact host name"):
        AddressPolicy.from_config([host], [])


def test_refused_error_is_an_oserror_without_errno() -> None:
    # aiohttp re-raises resolver OSErrors whose errno is None *only* when they are also
    # TimeoutErrors; anything else it wraps, which the fetcher relies on.
    exc = FetchRefusedError("h.example", "h.example resolves to a private address 10.0.0.1")
    assert isinstance(exc, OSError)
    assert not isinstance(exc, TimeoutError)
    assert exc.errno is None
    assert exc.public_reason == exc.reason
    assert "h.example" in str(exc)


class FakeResolver(AbstractResolver):
    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        return [
            ResolveResult(hostname=host, host=a, port=port, family=family, proto=0, flags=0)
            for a in self.answers[host]
        ]

    async def close(self) -> None:
        pass


@pytest.mark.anyio
async def test_resolver_refuses_mixed_answers() -> None:
    inner = FakeResolver({"rebind.example": ["93.184.216.34", "127.0.0.1"]})
    guarded = GuardedResolver(NO_ALLOWLIST, inner)
    with pytest.raises(FetchRefusedError) as caught:
        await guarded.resolve("rebind.example", 80)
    assert caught.value.reason == "rebind.example resolves to a loopback address 127.0.0.1"
    # The client-facing reason leaves out what internal DNS said.
    assert caught.value.public_reason == "rebind.example resolves to a loopback address"


@pytest.mark.anyio
async def test_resolver_returns_checked_public_answers() -> None:
    inner = FakeResolver({"cdn.example": ["93.184.216.34", "2606:4700::1"]})
    answers = await GuardedResolver(NO_ALLOWLIST, inner).resolve("cdn.example", 443)
    assert [a["host"] for a in answers] == ["93.184.216.34", "2606:4700::1"]


@pytest.mark.anyio
async def test_resolver_passes_allowlisted_names_through() -> None:
    inner = FakeResolver({"store.internal": ["10.0.0.9"]})
    policy = AddressPolicy.from_config(["store.internal"], [])
    answers = await GuardedResolver(policy, inner).resolve("store.internal", 80)
    assert [a["host"] for a in answers] == ["10.0.0.9"]


@pytest.mark.anyio
async def test_resolver_judges_literal_names_without_dns() -> None:
    inner = FakeResolver({})
    guarded = GuardedResolver(NO_ALLOWLIST, inner)
    with pytest.raises(FetchRefusedError, match="loopback"):
        await guarded.resolve("0x7f.1", 80)
    answers = await guarded.resolve("0x5db8d822", 80)  # 93.184.216.34
    assert [(a["host"], a["port"]) for a in answers] == [("93.184.216.34", 80)]
    assert inner.asked == []


@pytest.mark.anyio
async def test_resolver_refuses_a_non_address_answer() -> None:
    inner = FakeResolver({"odd.example": ["not-an-ip"]})
    with pytest.raises(FetchRefusedError, match="non-address"):
        await GuardedResolver(NO_ALLOWLIST, inner).resolve("odd.example", 80)


@pytest.mark.anyio
async def test_resolver_fails_on_an_empty_answer() -> None:
    inner = FakeResolver({"empty.example": []})
    with pytest.raises(OSError, match="no addresses"):
        await GuardedResolver(NO_ALLOWLIST, inner).resolve("empty.example", 80)
