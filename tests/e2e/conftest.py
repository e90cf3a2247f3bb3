"""End-to-end fixtures: `imagegate serve` as a real subprocess on a free loopback port.

- `server_factory` (per test) and `module_server_factory` (per module) start servers:
  `factory.start(env={...})` waits for /healthz (30 s at most, failing with the server's
  output) and returns a `Server` with `base_url`, `key` (parsed from the first-start banner),
  `data_dir`, `pid`, `stop()` and `kill9()`; `factory.restart(server)` starts a new process on
  the same data dir (no new key is printed; the first one is reused). Every process a factory
  started is stopped, by its PID, at teardown.
- Each test module marks itself `pytestmark = pytest.mark.e2e` (`-m "not e2e"` skips them).
- `basic_server` (session): a default server (no latency, 2 KiB body limit) shared by the
  modules that only need plain behaviour.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.contracts.conftest import s3_bucket, s3_server
from tests.support.e2e import Server, ServerFactory

__all__ = ["s3_bucket", "s3_server"]  # the S3 server of the contract suite

BASIC_ENV = {
    "IMAGEGATE_MAX_BODY_BYTES": "2048",  # small, so the 413 test needs no big upload
    "IMAGEGATE_SANDBOX_LATENCY": "0",
}


def _factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    factory = ServerFactory(lambda: tmp_path_factory.mktemp("imagegate-data"))
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture
def server_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    yield from _factory(tmp_path_factory)


@pytest.fixture(scope="module")
def module_server_factory(tmp_path_factory: pytest.TempPathFactory
                          ) -> Iterator[ServerFactory]:
    yield from _factory(tmp_path_factory)


@pytest.fixture(scope="session")
def session_server_factory(tmp_path_factory: pytest.TempPathFactory
                           ) -> Iterator[ServerFactory]:
    yield from _factory(tmp_path_factory)


@pytest.fixture(scope="session")
def basic_server(session_server_factory: ServerFactory) -> Server:
    return session_server_factory.start(BASIC_ENV)


# The client's tests (test_client*.py, test_cli_*.py) share these, one process each.
CLIENT_ENV = {
    "IMAGEGATE_SANDBOX_LATENCY": "0",
    "IMAGEGATE_RETRY_AFTER_SECONDS": "1",  # the shortest first poll a client honours
    # The 000 seed's result form, so clients resolve relative /p/img/… paths here (the
    # basic server answers absolute URLs).
    "IMAGEGATE_URL_MODE": "relative",
}
# Long enough to interrupt, cancel or kill a client while its task runs.
SLOW_ENV = {"IMAGEGATE_SANDBOX_LATENCY": "15", "IMAGEGATE_RETRY_AFTER_SECONDS": "1"}
FAILING_ENV = {"IMAGEGATE_SANDBOX_FAILURE_RATE": "1", "IMAGEGATE_RETRY_AFTER_SECONDS": "1"}


@pytest.fixture(scope="session")
def client_server(session_server_factory: ServerFactory) -> Server:
    return session_server_factory.start(CLIENT_ENV)


@pytest.fixture(scope="session")
def slow_server(session_server_factory: ServerFactory) -> Server:
    return session_server_factory.start(SLOW_ENV)


@pytest.fixture(scope="session")
def failing_server(session_server_factory: ServerFactory) -> Server:
    return session_server_factory.start(FAILING_ENV)
