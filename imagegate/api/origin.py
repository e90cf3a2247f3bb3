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

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# A host name or an IP literal (bracketed for IPv6), with an optional port: nothing that could
# break out of a URL's authority (no `/`, `@`, `?`, `#`, whitespace or quotes).
_HOST = re.compile(
    r"^(?:[A-Za-z0-9][A-Za-z0-9.-]{0,252}|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?$")
_SCHEMES = ("http", "https")


def parse_networks(values: Sequence[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(v.strip(), strict=False) for v in values)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            text: str = value.decode("latin-1")
            return text
    return None


def _trusted(scope: Scope, networks: Sequence[Network]) -> bool:
    client = scope.get("client")
    if not client or not networks:
        return False
    try:
        address = ipaddress.ip_address(client[0])
    except ValueError:
        return False
    return any(address.version == net.version and address in net for net in networks)


def _first(value: str | None) -> str:
    """The first entry of a forwarded header: the proxy nearest the client wrote it."""
    return (value or "").split(",")[0].strip()


def request_origin(scope: Scope, trusted: Sequence[Network]) -> str:
    """`scheme://host` as the client used it, forwarded headers honoured only from a
    trusted peer; a Host that is not a plain host[:port] falls back to the listening
    address rather than be copied into links."""
    scheme = str(scope.get("scheme", "http"))
    host = _header(scope, b"host") or ""
    if _trusted(scope, trusted):
        proto = _first(_header(scope, b"x-forwarded-proto")).lower()
        if proto in _SCHEMES:
            scheme = proto
        forwarded_host = _first(_header(scope, b"x-forwarded-host"))
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
