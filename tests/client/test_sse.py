"""The Server-Sent Events parser: the WHATWG rules the client relies on to follow and resume
a task's event stream."""

from __future__ import annotations

from imagegate.client.sse import RawEvent, SSEParser


def feed(parser: SSEParser, text: str) -> list[RawEvent]:
    events = [parser.feed(line) for line in text.split("\n")]
    return [e for e in events if e is not None]


def test_named_events_with_ids_and_multiline_data() -> None:
    parser = SSEParser()
    events = feed(parser, "id: 1\nevent: task.queued\ndata: {\"a\":\ndata: 1}\n\n"
                          "event: task.progress\ndata: {}\n\n")
    assert events == [RawEvent("task.queued", '{"a":\n1}', "1"),
                      RawEvent("task.progress", "{}", "1")]  # the id carries forward
    assert parser.last_id == "1"


def test_comments_blank_lines_and_unknown_fields_are_ignored() -> None:
    parser = SSEParser()
    assert feed(parser, ": keep-alive\n\n\nfoo: bar\n\n") == []
    assert feed(parser, "data:no-space\n\n") == [RawEvent("message", "no-space", None)]


def test_retry_and_id_rules() -> None:
    parser = SSEParser()
    feed(parser, "retry: 1500\nretry: soon\nid: a\0b\nid: 7\ndata: x\n\n")
    assert parser.retry_ms == 1500 and parser.last_id == "7"
    assert feed(parser, "id\ndata: y\n\n") == [RawEvent("message", "y", "", 1500)]
