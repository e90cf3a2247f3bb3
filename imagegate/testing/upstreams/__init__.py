"""Fake upstream servers, one per dialect, shipped in the package so the tests and the
benchmarks under bench/ relay to the same real HTTP servers on loopback.

Each fake checks sizes and parameters by its own seed document, written out beside it
(`openai_rules`, `dimilinks_rules`, `apimart_rules`), and imports nothing else of
imagegate: a fake that shared the gateway's rules would agree with the gateway by
construction and could never catch it disagreeing with the real service.

Run one by hand with `python -m imagegate.testing.upstreams <dialect> --port N`.
"""

from __future__ import annotations

from imagegate.testing.upstreams.common import FakeUpstream, Fault, FormPart, RecordedRequest

# dialect -> "module:Class", imported on demand so one dialect's fake needs no other's code.
DIALECTS: dict[str, str] = {
    "openai": "imagegate.testing.upstreams.openai_api:FakeOpenAI",
    "dimilinks": "imagegate.testing.upstreams.dimilinks_api:FakeDimilinks",
    "apimart": "imagegate.testing.upstreams.apimart_api:FakeApimart",
}

__all__ = ["DIALECTS", "FakeUpstream", "Fault", "FormPart", "RecordedRequest"]
