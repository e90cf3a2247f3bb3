"""The SSRF guard: which addresses a user-supplied URL may make this server connect to.

The guard sits in aiohttp's resolver hook (DESIGN §6), so it judges the addresses that DNS
actually returned, and aiohttp connects to exactly the addresses the resolver hands back: the
address that was checked is the address that is dialled, with no second lookup an attacker's
DNS server could answer differently (DNS rebinding).

aiohttp does not call the resolver for hosts it takes for IP literals (`_resolve_host` returns
them as they are when `helpers.is_ip_address` says so: anything with a colon, or digits and
dots), so the fetcher must also judge literal hosts itself before connecting; `parse_host_literal`
is shared by both. Names aiohttp does hand to the resolver can still be IP literals in the odd
forms `inet_aton` accepts (`0x7f000001`, `0x7f.1`), which getaddrinfo would turn into addresses
without asking DNS, so the resolver recognises those too.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from ipaddress import (
    IPv4Address,
    IPv4Network,
    IPv6Address,
    IPv6Network,
    ip_address,
    ip_network,
)
from typing import NamedTuple
from urllib.parse import unquote

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

# Instance-metadata services hand out cloud credentials; named on their own so the reason an
# operator reads says so. AWS/GCP/Azure/OCI 169.254.169.254, AWS ECS task metadata
# 169.254.170.2, AWS IPv6 IMDS fd00:ec2::254, Azure WireServer 168.63.129.16 (a public
# address that is only special inside Azure, hence listed explicitly), Alibaba 100.100.100.200.
_METADATA = frozenset(
    ip_address(a)
    for a in (
        "169.254.169.254",
        "169.254.170.2",
        "168.63.129.16",
        "100.100.100.200",
        "fd00:ec2::254",
    )
)

# First match wins, so narrower blocks come before the wider ones that contain them.
_V4_BLOCKS: tuple[tuple[IPv4Network, str], ...] = tuple(
    (IPv4Network(net), kind)
    for net, kind in (
        ("255.255.255.255/32", "broadcast address"),
        # Linux treats a connect to 0.0.0.0 as a connect to this host.
        ("0.0.0.0/8", "unspecified address"),
        ("127.0.0.0/8", "loopback address"),
        ("10.0.0.0/8", "private address"),
        ("172.16.0.0/12", "private address"),
        ("192.168.0.0/16", "private address"),
        ("100.64.0.0/10", "CGNAT (100.64.0.0/10) address"),
        ("169.254.0.0/16", "link-local address"),
        ("192.0.0.0/24", "reserved (IETF protocol assignment) address"),
        ("192.0.2.0/24", "documentation address"),
        ("198.51.100.0/24", "documentation address"),
        ("203.0.113.0/24", "documentation address"),
        ("192.88.99.0/24", "reserved (6to4 relay) address"),
        ("198.18.0.0/15", "benchmarking address"),
        ("224.0.0.0/4", "multicast address"),
        ("240.0.0.0/4", "reserved address"),
    )
)

_V6_BLOCKS: tuple[tuple[IPv6Network, str], ...] = tuple(
    (IPv6Network(net), kind)
    for net, kind in (
        ("::/128", "unspecified address"),
        ("::1/128", "loopback address"),
        ("fe80::/10", "link-local address"),
        ("fec0::/10", "site-local address"),
        ("fc00::/7", "private address"),
        ("ff00::/8", "multicast address"),
        # Teredo tunnels to whatever IPv4 address the suffix encodes; nothing legitimate
        # serves reference images from one, so all of it is refused.
        ("2001::/32", "Teredo address"),
        ("64:ff9b:1::/48", "local-use NAT64 address"),
        ("100::/64", "discard-only address"),
        ("2001:db8::/32", "documentation address"),
        ("3fff::/20", "documentation address"),
        ("2001:10::/28", "reserved (ORCHID) address"),
        ("2001:20::/28", "reserved (ORCHIDv2) address"),
    )
)

_NAT64 = IPv6Network("64:ff9b::/96")
_V4_COMPATIBLE = IPv6Network("::/96")
_GLOBAL_UNICAST = IPv6Network("2000::/3")


class Refusal(NamedTuple):
    """Why an address is refused: `kind` is safe to show a client, `address` may not be."""

    kind: str
    address: str

    def __str__(self) -> str:
        return f"{self.kind} {self.address}"

    @property
    def phrase(self) -> str:
        """E.g. 'a private address 10.0.0.5', to follow "is" or "resolves to"."""
        return f"{_article(self.kind)} {self}"

    @property
    def kind_phrase(self) -> str:
        """E.g. 'a private address': for clients, when the address came from DNS."""
        return f"{_article(self.kind)} {self.kind}"


class FetchRefusedError(OSError):
    """The guard refused to connect. An OSError so aiohttp treats it like a failed lookup.

    `reason` names the address (for operators' logs); `public_reason` leaves out addresses
    that came from DNS, so a client cannot use refusals to map internal names.
    """

    def __init__(self, host: str, reason: str, public_reason: str | None = None) -> None:
        super().__init__(f"refused to connect to {host}: {reason}")
        self.host = host
        self.reason = reason
        self.public_reason = public_reason if public_reason is not None else reason


def _normalize_host(host: str) -> str:
    return host.strip().lower().removeprefix("[").removesuffix("]").removesuffix(".")


@dataclass(frozen=True)
class AddressPolicy:
    """Refuse every non-public address unless the operator allowed its host name or network."""

    allow_hosts: frozenset[str] = frozenset()
    allow_networks: tuple[IPNetwork, ...] = field(default=())

    def __post_init__(self) -> None:
        # Host names compare case-insensitively and without the root dot; normalize once here
        # so a directly-built policy behaves like one from config.
        object.__setattr__(
            self, "allow_hosts", frozenset(_normalize_host(h) for h in self.allow_hosts)
        )

    @classmethod
    def from_config(cls, hosts: list[str], networks: list[str]) -> AddressPolicy:
        nets: list[IPNetwork] = []
        for text in networks:
            try:
                # strict: "10.0.0.5/8" is more likely a typo than a wish to open all of 10/8.
                nets.append(ip_network(text.strip(), strict=True))
            except ValueError as exc:
                raise ValueError(f"allowed network {text!r} is not a valid CIDR: {exc}") from None
        names: set[str] = set()
        for host in hosts:
            name = _normalize_host(host)
            if not name or "*" in name:
                raise ValueError(f"allowed host {host!r} must be an exact host name")
            literal = parse_host_literal(name)
            if literal is not None:
                # aiohttp never sees an IP literal as a name, so it belongs with the networks.
                nets.append(ip_network(literal))
            else:
                names.add(name)
        return cls(allow_hosts=frozenset(names), allow_networks=tuple(nets))

    def host_allowed(self, host: str) -> bool:
        return _normalize_host(host) in self.allow_hosts

    def refusal(self, ip: IPAddress) -> str | None:
        """A human reason to refuse `ip` ("private address 10.0.0.5"), or None to allow it."""
        verdict = self.classify(ip)
        return None if verdict is None else str(verdict)

    def classify(self, ip: IPAddress) -> Refusal | None:
        if any(ip.version == net.version and ip in net for net in self.allow_networks):
            return None
        if ip in _METADATA:
            return Refusal("cloud metadata address", str(ip))
        if isinstance(ip, IPv4Address):
            return self._classify_v4(ip)
        return self._classify_v6(ip)

    def _classify_v4(self, ip: IPv4Address) -> Refusal | None:
        for net, kind in _V4_BLOCKS:
            if ip in net:
                return Refusal(kind, str(ip))
        if not ip.is_global:  # whatever Python knows of that the table above does not
            return Refusal("reserved address", str(ip))
        return None

    def _classify_v6(self, ip: IPv6Address) -> Refusal | None:
        # Addresses that carry an IPv4 address reach that IPv4 address (the kernel for
        # ::ffff:a.b.c.d, a NAT64 gateway, a 6to4 relay), so the IPv4 address is judged.
        embedded = _embedded_v4(ip)
        if embedded is not None:
            inner = self.classify(embedded)
            if inner is not None:
                return Refusal(inner.kind, f"{inner.address} (embedded in {ip})")
            if ip in _V4_COMPATIBLE:  # deprecated form, nothing routes it legitimately
                return Refusal("deprecated IPv4-compatible address", str(ip))
            return None
        for net, kind in _V6_BLOCKS:
            if ip in net:
                return Refusal(kind, str(ip))
        if ip not in _GLOBAL_UNICAST or not ip.is_global:
            return Refusal("reserved address", str(ip))
        return None


def _embedded_v4(ip: IPv6Address) -> IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64 or (ip in _V4_COMPATIBLE and int(ip) > 1):  # :: and ::1 are their own
        return IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def parse_host_literal(host: str) -> IPAddress | None:
    """The address a URL host denotes when it is an IP literal, in any form; None for names.

    Besides dotted quads and (bracketed) IPv6 this accepts every form `inet_aton` does
    (`2130706433`, `0x7f000001`, `0177.0.0.1`, `127.1`, `0x7f.1`), because getaddrinfo turns
    those into addresses without DNS, and percent-escapes, which some resolvers decode.
    """
    text = _normalize_host(unquote(host))
    if ":" in text:
        try:
            return IPv6Address(text)
        except ValueError:
            return None
    return _parse_inet_aton(text)


def _parse_inet_aton(text: str) -> IPv4Address | None:
    parts = text.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values: list[int] = []
    for part in parts:
        value = _parse_aton_part(part)
        if value is None:
            return None
        values.append(value)
    *head, last = values
    # a.b.c.d, a.b.c (c fills 16 bits), a.b (b fills 24 bits), a (32 bits)
    if any(v > 0xFF for v in head) or last >= 1 << (8 * (5 - len(values))):
        return None
    number = last
    for i, value in enumerate(head):
        number |= value << (8 * (3 - i))
    return IPv4Address(number)


def _parse_aton_part(part: str) -> int | None:
    if not part or not part.isascii():
        return None
    if part.startswith("0x"):
        digits, base, allowed = part[2:], 16, "0123456789abcdef"
    elif len(part) > 1 and part.startswith("0"):
        digits, base, allowed = part[1:], 8, "01234567"
    else:
        digits, base, allowed = part, 10, "0123456789"
    if not all(c in allowed for c in digits):
        return None
    return int(digits, base) if digits else 0  # glibc reads a bare "0x" as zero


def _article(kind: str) -> str:
    return "an" if kind[0] in "aeiou" else "a"


class GuardedResolver(AbstractResolver):
    """Resolve through `inner`, then refuse the whole answer if any address is refused.

    Every address is checked, not just the first: an answer mixing a public and a private
    address is how DNS rebinding gets a connection attempt to the private one. aiohttp
    connects only to the addresses this returns (it builds its addr_infos from them and does
    no lookup of its own), so checked addresses are the only ones it can dial.
    """

    def __init__(self, policy: AddressPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner
        self._owns_inner = inner is None

    def _resolver(self) -> AbstractResolver:
        if self._inner is None:  # ThreadedResolver wants a running loop, so make it here
            self._inner = ThreadedResolver()
        return self._inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if self._policy.host_allowed(host):
            return await self._resolver().resolve(host, port, family)
        literal = parse_host_literal(host)
        if literal is not None:
            verdict = self._policy.classify(literal)
            if verdict is not None:
                raise FetchRefusedError(host, f"{host} is {verdict.kind_phrase}")
            return [_result(host, literal, port)]
        answers = await self._resolver().resolve(host, port, family)
        if not answers:
            raise OSError(f"no addresses found for {host}")
        for answer in answers:
            try:
                resolved = ip_address(answer["host"])
            except ValueError:
                raise FetchRefusedError(host, f"{host} resolved to a non-address") from None
            verdict = self._policy.classify(resolved)
            if verdict is not None:
                raise FetchRefusedError(
                    host,
                    f"{host} resolves to {verdict.phrase}",
                    f"{host} resolves to {verdict.kind_phrase}",
                )
        return answers

    async def close(self) -> None:
        if self._owns_inner and self._inner is not None:
            await self._inner.close()


def _result(host: str, ip: IPAddress, port: int) -> ResolveResult:
    family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
    return ResolveResult(hostname=host, host=str(ip), port=port, family=family, proto=0, flags=0)


def find_refusal(exc: BaseException) -> FetchRefusedError | None:
    """The guard's refusal inside whatever aiohttp wrapped it in.

    aiohttp turns an OSError from the resolver into ClientConnectorDNSError, keeping the
    original as `os_error` and as `__cause__`; both are searched so a change of wrapping in a
    later aiohttp cannot turn a refusal into a plain "could not be reached".
    """
    pending: list[BaseException] = [exc]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, FetchRefusedError):
            return current
        if isinstance(current, aiohttp.ClientConnectorError):
            pending.append(current.os_error)
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                pending.append(linked)
    return None
