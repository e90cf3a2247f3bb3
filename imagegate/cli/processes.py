"""`imagegate serve --processes N`: N server processes on one host and one port.

The parent (`imagegate serve`) binds the port once and does the one-time start-up (checks,
migrations, the first key, the banner); then it re-executes itself N times as
`python -m imagegate serve --child-fd FD …`, each child serving the inherited listening
socket with its own event loop, backends and in-process workers (a worker, with an owner id
of its own, like any other on the shared database), and supervises them
(`imagegate/cli/supervisor.py`). The kernel hands each new connection to whichever child
accepts it first.

Re-executing (rather than `fork` or `multiprocessing`) gives each child a clean
interpreter: nothing of the parent's imports, threads or event loops is carried over, and a
child reads its settings the same way the parent did (the same flags, file and environment).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from imagegate.config import Settings

log = logging.getLogger("imagegate.serve")

# A child whose server never started (its lifespan failed: a backend, a migration) exits
# with this status, as uvicorn.run does in the same case.
STARTUP_FAILURE = 3


def refusal(settings: Settings) -> str | None:
    """Why this configuration cannot run several server processes, or None."""
    n = settings.processes
    if n == 1:
        return None
    if settings.effective_database_url.startswith("sqlite"):
        return (f"--processes {n} needs PostgreSQL: SQLite has one writer, which N processes "
                "would queue on (and its locks do not make them faster). Set database_url to "
                "a PostgreSQL database (see docs/deployment.md), or run one process.")
    if settings.blob_store == "memory":
        return (f"--processes {n} needs a blob store every process reads: with "
                "blob_store = \"memory\" an image stored by one process could not be "
                "downloaded through another. Use blob_store = \"local\" or \"s3\".")
    return None


def notes(settings: Settings) -> list[str]:
    """What an operator should know about this multi-process configuration."""
    if settings.processes == 1 or settings.redis_url:
        return []
    return [f"{settings.processes} processes without redis_url: each process hears only its "
            "own task events, so a task queued in one process reaches another's workers by "
            "polling (poll_interval_seconds), a cancel reaches a run in another process at "
            "its next lease renewal (lease_seconds / 3), and rate limits (rpm) are counted "
            "per process (a key gets up to processes × its limit). Set redis_url to share "
            "them."]


def child_command(fd: int, *, config: Path | None, host: str | None, port: int | None,
                  data_dir: Path | None) -> list[str]:
    """The command line of one child: the parent's own flags (the environment is
    inherited), and the listening socket's descriptor instead of a port to bind."""
    # The parent's pid is given, not read in the child: a parent killed while the child
    # was still starting would otherwise leave it watching whoever adopted it.
    args = [sys.executable, "-m", "imagegate", "serve", "--child-fd", str(fd),
            "--parent-pid", str(os.getpid())]
    for flag, value in (("--config", config), ("--host", host), ("--port", port),
                        ("--data-dir", data_dir)):
        if value is not None:
            args += [flag, str(value)]
    return args


def spawner(sock: socket.socket, command: list[str]
            ) -> subprocess.Popen[bytes]:
    """Start one child with the listening socket (and nothing else) passed down."""
    return subprocess.Popen(command, pass_fds=(sock.fileno(),), stdin=subprocess.DEVNULL)


async def watch_parent(parent: int, on_gone: Callable[[], None],
                       interval: float = 1.0) -> None:
    """Call `on_gone` when the parent that started this child is gone (killed outright, it
    could forward no signal), so no orphan keeps serving a port nobody supervises."""
    # No event to wait on: the kernel only reparents us. Polling costs one syscall a second.
    while True:
        await asyncio.sleep(interval)
        if os.getppid() != parent:
            break
    log.warning("the supervising imagegate process (pid %d) is gone; stopping", parent)
    on_gone()
