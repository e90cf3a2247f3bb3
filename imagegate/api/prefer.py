"""The `Prefer` request header (RFC 7240) as the create routes read it: `respond-async` and
`wait=N`.

    Prefer: wait=5                    wait up to 5 s for the result, else answer 202
    Prefer: respond-async             answer 202 at once
    Prefer: respond-async, wait=5     the same as wait=5 (RFC 7240 §4.3)

Several headers, or several preferences in one, are read as one list; names are
case-insensitive; parameters after `;` are ignored; a preference named twice counts the first
time only (§2); a preference that cannot be understood is ignored, as the RFC asks, rather
than refused: a `Prefer` header never turns a request into a 400.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.datastructures import Headers

from imagegate.api.header_values import split_unquoted, unquote


@dataclass(frozen=True, slots=True)
class Preferences:
    respond_async: bool = False
    wait: int | None = None  # seconds, as sent

    def applied(self, waited: int | None, *, answered_async: bool) -> str | None:
        """The `Preference-Applied` value of an answer: `wait=N` when it waited (N the
        seconds it allowed, after the server's cap) and `respond-async` when the answer is
        the asynchronous one and the client asked for that."""
        parts: list[str] = []
        if self.respond_async and answered_async:
            parts.append("respond-async")
        if waited is not None:
            parts.append(f"wait={waited}")
        return ", ".join(parts) or None


def parse(values: list[str]) -> Preferences:
    """The preferences of every `Prefer` header value, in order."""
    seen: dict[str, str] = {}
    for header in values:
        for item in split_unquoted(header, ","):
            head = split_unquoted(item, ";")[0]
            name, has_value, value = head.partition("=")
            name = name.strip().lower()
            if name and name not in seen:
                seen[name] = unquote(value) if has_value else ""
    wait_text = seen.get("wait")
    # delta-seconds: ASCII digits only (a sign, a fraction or `٣` is not understood).
    wait = int(wait_text) if wait_text and wait_text.isascii() and wait_text.isdigit() else None
    return Preferences(respond_async="respond-async" in seen, wait=wait)


def preferences(headers: Headers) -> Preferences:
    return parse(headers.getlist("prefer"))
