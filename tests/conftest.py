"""Fixtures for the whole tree: the anyio backend and `serve_app` (the real app served on
loopback). The backend fixtures (a database per backend, blob stores) are in
tests/contracts/conftest.py; directories whose tests run over them import them into their
own conftest.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


ServeApp = Callable[..., str]


@pytest.fixture
def serve_app(tmp_path: Path) -> Iterator[ServeApp]:
    """`base_url = serve_app(**settings)`: the real app (`build_app`, its own lifespan) served
    by uvicorn on a free 127.0.0.1 port, in a thread with its own event loop, so that real
    HTTP clients reach it from a test's loop or from a CLI's `asyncio.run` alike. Defaults:
    `tmp_path` as data dir, memory blobs, no workers. Stopped at teardown."""
    import socket
    import threading
    import time

    import uvicorn

    from imagegate.app import build_app
    from imagegate.config import Settings

    started: list[tuple[uvicorn.Server, threading.Thread, socket.socket]] = []

    def serve(**overrides: Any) -> str:
        settings = Settings(**{"data_dir": tmp_path, "blob_store": "memory",
                               "run_workers": False, **overrides})
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        server = uvicorn.Server(uvicorn.Config(build_app(settings), log_config=None,
                                               access_log=False, ws="none"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        started.append((server, thread, sock))
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive(), "the served app stopped while starting"
            assert time.monotonic() < deadline, "the served app did not start in 30 s"
            time.sleep(0.02)
        return f"http://127.0.0.1:{sock.getsockname()[1]}"

    try:
        yield serve
    finally:
        for server, thread, sock in started:
            server.should_exit = True
            thread.join(10)
            sock.close()
