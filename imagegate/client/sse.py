"""A Server-Sent Events parser (the WHATWG rules), fed one line at a time so the same code
serves the sync and the async client whatever reads the socket."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RawEvent:
    event: str  # "message" when the stream named none
    data: str
    id: str | None  # the last id seen on the stream, as the spec carries it forward
    retry_ms: int | None = None


class SSEParser:
    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []
        self.last_id: str | None = None
        self.retry_ms: int | None = None

    def feed(self, line: str) -> RawEvent | None:
        """One line without its line ending; an event when this blank line completes one."""
        if line == "":
            return self._dispatch()
        if line.startswith(":"):  # a comment: keep-alives look like this
            return None
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            if "\0" not in value:
                self.last_id = value
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None

    def _dispatch(self) -> RawEvent | None:
        event, data = self._event, self._data
        self._event, self._data = "", []
        if not data:
            return None
        return RawEvent(event or "message", "\n".join(data), self.last_id, self.retry_ms)
