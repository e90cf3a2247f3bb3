"""Fake upstream servers, one per dialect, shipped in the package so the tests and the
benchmarks under bench/ relay to the same real HTTP servers on loopback.

Run one by hand with `python -m imagegate.fakes <dialect> --port N`.
"""

from __future__ import annotations

from imagegate.fakes.common import FakeUpstream, Fault, FormPart, RecordedRequest

# dialect -> "module:Class", imported on demand so one dialect's fake needs no other's code.
DIALECTS: dict[str, str] = {
    "openai": "imagegate.fakes.openai_api:FakeOpenAI",
    "dimilinks": "imagegate.fakes.dimilinks_api:FakeDimilinks",
    "apimart": "imagegate.fakes.apimart_api:FakeApimart",
}

__all__ = ["DIALECTS", "FakeUpstream", "Fault", "FormPart", "RecordedRequest"]
