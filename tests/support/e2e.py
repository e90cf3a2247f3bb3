"""Helpers for the end-to-end tests: a real `imagegate serve` subprocess and what tests need
around it (polling, the task table, the blob directory, signed-URL forging).

Kept out of conftest.py so test modules can import the plain functions and types.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

VENV_BIN = Path(sys.executable).parent
IMAGEGATE = str(VENV_BIN / "imagegate")
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
# The banner prints the first key alone on an indented line.
_KEY_LINE = re.compile(r"^\s+(ig_[A-Za-z0-9_\-]{20,})\s*$")

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def base_env(overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without any IMAGEGATE_* (a developer's own config must not
    leak into the tests), plus quiet, unbuffered defaults and the test's overrides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGEGATE_")}
    env.update({
        "PYTHONUNBUFFERED": "1",  # the banner must reach the pipe before /healthz answers
        "COLUMNS": "200",  # rich must not wrap the key line
        "NO_COLOR": "1",
        "IMAGEGATE_ACCESS_LOG": "false",
    })
    env.update(overrides or {})
    return env


class Server:
    """One `imagegate serve` process. Output (stdout and stderr together) is drained by a
    thread into `lines` so the pipe never fills."""

    def __init__(self, data_dir: Path, env: dict[str, str], key: str | None) -> None:
        self.data_dir = data_dir
        self.env = env
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._given_key = key
        self.key: str = key or ""
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self.proc = subprocess.Popen(
            [IMAGEGATE, "serve", "--port", str(self.port), "--data-dir", str(data_dir)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
        self.pid = self.proc.pid
        self._drain = threading.Thread(target=self._read, name=f"drain-{self.pid}", daemon=True)
        self._drain.start()

    # -- output
    def _read(self) -> None:
        assert self.proc.stdout is not None
        with contextlib.suppress(ValueError, OSError):  # pipe closed under us at teardown
            for line in self.proc.stdout:
                with self._lock:
                    self.lines.append(line.rstrip("\n"))

    def output(self, last: int = 200) -> str:
        with self._lock:
            return "\n".join(self.lines[-last:])

    def _printed_key(self) -> str | None:
        with self._lock:
            for line in self.lines:
                m = _KEY_LINE.match(line)
                if m:
                    return m.group(1)
        return None

    # -- lifecycle
    def wait_ready(self, timeout: float = START_TIMEOUT) -> Server:
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0) as client:
            while True:
                if self.proc.poll() is not None:
                    self._drain.join(timeout=2)
                    pytest.fail(f"imagegate serve exited with {self.proc.returncode} before "
                                f"it was ready. Output:\n{self.output()}")
                try:
                    if client.get(self.base_url + "/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    pytest.fail(f"imagegate serve was not healthy after {timeout:.0f}s. "
                                f"Output:\n{self.output()}")
                time.sleep(0.1)
        # The banner is printed (unbuffered) before uvicorn starts, so it is complete now.
        printed = self._printed_key()
        if self._given_key is None:
            if printed is None:
                self.stop()
                pytest.fail(f"no API key in the banner of a first start. Output:\n"
                            f"{self.output()}")
            self.key = printed
        elif printed is not None:
            self.stop()
            pytest.fail("a restart on an existing data dir printed a new key")
        return self

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM (graceful), SIGKILL if it does not exit in time. Returns the exit code."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(timeout=timeout)
        self._close()
        return self.proc.returncode

    def kill9(self) -> None:
        """The crash: no shutdown hook runs, leases stay held in the table."""
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(timeout=STOP_TIMEOUT)
        self._close()

    def _close(self) -> None:
        self._drain.join(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    # -- conveniences
    @property
    def db_path(self) -> Path:
        return self.data_dir / "imagegate.db"

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key}"}

    def client(self, key: str | None = None, timeout: float = 30.0) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, headers=self.headers(key), timeout=timeout)

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        return query_db(self.db_path, sql, params)

    def blob_files(self) -> set[Path]:
        if not self.blob_dir.exists():
            return set()
        return {p for p in self.blob_dir.rglob("*") if p.is_file()}

    def create_key(self, name: str, *options: str) -> dict[str, str]:
        """`imagegate keys create --json` against this server's data dir (it may be running);
        `options` are more flags of that command (`--balance 0`, `--rpm 1`, …)."""
        env = {k: v for k, v in self.env.items() if k != "IMAGEGATE_PORT"}
        res = subprocess.run(
            [IMAGEGATE, "keys", "create", "--name", name, *options, "--json", "--data-dir",
             str(self.data_dir)],
            capture_output=True, text=True, env=env, timeout=60, check=False,
        )
        assert res.returncode == 0, f"keys create failed: {res.stdout}\n{res.stderr}"
        line = [ln for ln in res.stdout.splitlines() if ln.startswith("{")][-1]
        created: dict[str, str] = json.loads(line)
        return created

    def signing_secret(self) -> bytes:
        return (self.data_dir / "signing.key").read_text().strip().encode()


class ServerFactory:
    """Starts servers and guarantees each one it started is gone at teardown."""

    def __init__(self, tmp_dir: Callable[[], Path]) -> None:
        self._tmp_dir = tmp_dir
        self.started: list[Server] = []

    def spawn(self, env: Mapping[str, str] | None = None, data_dir: Path | None = None,
              key: str | None = None) -> Server:
        """Launch without waiting (so several can start in parallel); call `wait_ready()`.

        `key`: for a restart on an existing data dir, the key the first start printed."""
        server = Server(data_dir or self._tmp_dir(), base_env(env), key)
        self.started.append(server)
        return server

    def start(self, env: Mapping[str, str] | None = None, data_dir: Path | None = None,
              key: str | None = None) -> Server:
        return self.spawn(env, data_dir, key).wait_ready()

    def restart(self, old: Server, env: Mapping[str, str] | None = None) -> Server:
        """A new process on the old one's data dir (and settings), on a new port."""
        if old.alive:
            old.stop()
        merged = dict(old.env)
        merged.update(env or {})
        server = Server(old.data_dir, merged, old.key)
        self.started.append(server)
        return server.wait_ready()

    def close(self) -> None:
        errors = []
        for server in self.started:
            try:
                server.stop()
            except Exception as exc:  # keep going: every process must be stopped
                errors.append(f"{server.pid}: {exc!r}")
        assert not errors, f"could not stop servers: {errors}"


# -- the database, read directly (what the server wrote, not what its API says)
def query_db(db_path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
    conn = sqlite3.connect(db_path, timeout=10)
    try:
        conn.row_factory = sqlite3.Row
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def task_count(server: Server) -> int:
    count: int = server.query("SELECT count(*) FROM tasks")[0][0]
    return count


# -- polling
def poll_task(client: httpx.Client, task_id: str, until: Callable[[dict[str, Any]], bool],
              timeout: float = 30.0, interval: float = 0.1,
              seen: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """GET /v1/tasks/{id} until `until(task)` holds; every body read is appended to `seen`."""
    deadline = time.monotonic() + timeout
    while True:
        resp = client.get(f"/v1/tasks/{task_id}")
        assert resp.status_code == 200, resp.text
        task: dict[str, Any] = resp.json()
        if seen is not None:
            seen.append(task)
        if until(task):
            return task
        assert time.monotonic() < deadline, f"task {task_id} still {task['status']} after " \
                                            f"{timeout}s: {task}"
        time.sleep(interval)


def until_terminal(task: dict[str, Any]) -> bool:
    return task["status"] in TERMINAL


# -- images and URLs
def decode_image(data: bytes) -> Any:
    import pyvips

    return pyvips.Image.new_from_buffer(data, "")


def image_format(data: bytes) -> str:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return "unknown"


def sign(secret: bytes, task_id: str, index: int, exp_ms: int) -> str:
    """The server's URL signature (imagegate.storage.signing), computed independently."""
    msg = f"{task_id}\n{index}\n{exp_ms}".encode()
    digest = hmac.new(secret, msg, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def assert_error_body(resp: httpx.Response, status: int, *, code: str | None = None,
                      param: str | None = None, error_type: str | None = None
                      ) -> dict[str, Any]:
    assert resp.status_code == status, f"{resp.status_code} {resp.text}"
    assert resp.headers["content-type"].startswith("application/json"), resp.headers
    body = resp.json()
    assert set(body) == {"error"}, body
    err: dict[str, Any] = body["error"]
    assert {"message", "type", "param", "code"} <= set(err), err
    assert isinstance(err["message"], str) and err["message"], err
    if code is not None:
        assert err["code"] == code, err
    if param is not None:
        assert err["param"] == param, err
    if error_type is not None:
        assert err["type"] == error_type, err
    return err
