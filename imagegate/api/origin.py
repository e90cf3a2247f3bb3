"""The origin (`scheme://host[:port]`) a client reached this server at, for absolute result
URLs when no `public_base_url` is configured.

`Host` and the scheme of the connection come from the request itself. Behind a reverse proxy
the client reached the proxy, not us: `X-Forwarded-Proto` and `X-Forwarded-Host` say where,
and they are believed only from a peer in `trusted_proxies` — from anyone else they are
forged input, and honouring them would let a client make imagegate hand out links to a host
of the client's choosing. (uvicorn's own proxy-header handling is switched off in
`imagegate serve` for the same reason: it would rewrite the peer address this check reads.)
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

from starlette.types import Scope

from imagegate.domain.memo import BoundedMemo

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# A host name or an IP literal (bracketed for IPv6), with an optional port: nothing that could
# break out of a URL's authority (no `/`, `@`, `?`, `#`, whitespace or quotes).
_HOST = re.compile(
    r"^(?:[A-Za-z0-9][A-Za-z0-9.-]{0,252}|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?$")
_SCHEMES = ("http", "https")


def parse_networks(values: Sequence[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(v.strip(), strict=False) for v in values)


class ProxyTrust:
    """`trusted_proxies`: whether a peer address is one of them, each address's verdict
    remembered. Parsing the address was two thirds of working out a request's origin, and a
    server sees the same few peers (its proxies, its clients) again and again."""

    def __init__(self, networks: Sequence[Network] = ()) -> None:
        self.networks = tuple(networks)
        self._memo: BoundedMemo[str, bool] = BoundedMemo(4096)

    def trusts(self, host: str) -> bool:
        return bool(self.networks) and self._memo.get(host, self._judge)

    def _judge(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address.version == net.version and address in net for net in self.networks)


def _latin1(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")


def _first(value: str | None) -> str:
    """The first entry of a forwarded header: the proxy nearest the client wrote it."""
    return (value or "").split(",")[0].strip()


def request_origin(scope: Scope, trusted: ProxyTrust) -> str:
    """`scheme://host` as the client used it, forwarded headers honoured only from a
    trusted peer; a Host that is not a plain host[:port] falls back to the listening
    address rather than be copied into links."""
    scheme = str(scope.get("scheme", "http"))
    # One pass over the headers for the three this needs (the first of each counts).
    raw_host = proto_header = forwarded_header = None
    for key, value in scope.get("headers", ()):
        if key == b"host":
            raw_host = raw_host if raw_host is not None else value
        elif key == b"x-forwarded-proto":
            proto_header = proto_header if proto_header is not None else value
        elif key == b"x-forwarded-host":
            forwarded_header = forwarded_header if forwarded_header is not None else value
    host = raw_host.decode("latin-1") if raw_host is not None else ""
    client = scope.get("client")
    if client and trusted.trusts(client[0]):
        proto = _first(_latin1(proto_header)).lower()
        if proto in _SCHEMES:
            scheme = proto
        forwarded_host = _first(_latin1(forwarded_header))
        if forwarded_host:
            host = forwarded_host
    if not _HOST.match(host):
        host = _listening(scope)
    return f"{scheme if scheme in _SCHEMES else 'http'}://{host}"


def _listening(scope: Scope) -> str:
    """The address this server listens on, for requests without a usable Host."""
    server = scope.get("server")
    if not server:
        return "localhost"
    address, port = str(server[0]), server[1]
    if ":" in address:
        address = f"[{address}]"
    return address if port is None else f"{address}:{port}"
