"""Fake upstreams as real processes (`python -m imagegate.testing.upstreams <dialect>`), for
tests that talk to the seed services the way a user's program would: over HTTP, to another
process. Each one is stopped by its PID."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator

from tests.support.e2e import base_env, free_port

FAKE_KEY = "sk-fake-client"


class FakeProcess:
    def __init__(self, dialect: str, *, latency: float = 0.0) -> None:
        self.dialect = dialect
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_key = FAKE_KEY
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "imagegate.testing.upstreams", dialect,
             "--port", str(self.port), "--api-key", FAKE_KEY, "--latency", str(latency)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            text=True, env=base_env())
        assert self.proc.stdout is not None
        banner = self.proc.stdout.readline()  # printed once it listens
        assert banner.startswith(f"fake {dialect} upstream at {self.url}"), banner

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@contextlib.contextmanager
def fake_processes(*dialects: str, latency: float = 0.0) -> Iterator[dict[str, FakeProcess]]:
    started: dict[str, FakeProcess] = {}
    try:
        for dialect in dialects:
            started[dialect] = FakeProcess(dialect, latency=latency)
        yield started
    finally:
        for fake in started.values():
            fake.stop()
