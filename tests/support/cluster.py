"""A distributed imagegate for the end-to-end tests: `imagegate serve` (API only) and
`imagegate worker` processes sharing PostgreSQL, a Redis and an S3 bucket, each with a data
directory of its own (so nothing is shared through a disk), each started, killed and
stopped by its PID.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.e2e import IMAGEGATE, STOP_TIMEOUT, base_env, free_port


class Proc:
    """One imagegate process; its output (stdout and stderr) drained into `lines`."""

    def __init__(self, name: str, args: list[str], env: Mapping[str, str], data_dir: Path,
                 *, port: int, ready_path: str = "/readyz") -> None:
        self.name = name
        self.args = args
        self.env = dict(env)
        self.data_dir = data_dir
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.ready_path = ready_path
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self.proc = subprocess.Popen(
            [IMAGEGATE, *args, "--data-dir", str(data_dir)], env=self.env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            text=True, encoding="utf-8", errors="replace",
        )
        self.pid = self.proc.pid
        self._drain = threading.Thread(target=self._read, daemon=True, name=f"drain-{name}")
        self._drain.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        with contextlib.suppress(ValueError, OSError):
            for line in self.proc.stdout:
                with self._lock:
                    self.lines.append(line.rstrip("\n"))

    def output(self, last: int = 60) -> str:
        with self._lock:
            return "\n".join(self.lines[-last:])

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_ready(self, timeout: float = 60.0) -> Proc:
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=5.0) as client:
            while True:
                if not self.alive:
                    self._drain.join(timeout=2)
                    pytest.fail(f"{self.name} exited with {self.proc.returncode} before it was "
                                f"ready. Output:\n{self.output()}")
                with contextlib.suppress(httpx.TransportError):
                    if client.get(self.base_url + self.ready_path).status_code == 200:
                        return self
                if time.monotonic() > deadline:
                    pytest.fail(f"{self.name} not ready after {timeout:.0f}s. Output:\n"
                                f"{self.output()}")
                time.sleep(0.1)

    def kill9(self) -> None:
        if self.alive:
            os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(timeout=STOP_TIMEOUT)
        self._close()

    def stop(self) -> None:
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(timeout=STOP_TIMEOUT)
        self._close()

    def _close(self) -> None:
        self._drain.join(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class Cluster:
    """API and worker processes on one shared configuration (`env`: the `IMAGEGATE_*` and
    AWS variables every process gets)."""

    def __init__(self, env: Mapping[str, str], root: Path) -> None:
        self.env = base_env(env)
        self.root = root
        self.procs: list[Proc] = []
        self._count = 0

    def _dir(self, name: str) -> Path:
        self._count += 1
        path = self.root / f"{name}-{self._count}"
        path.mkdir(parents=True)
        return path

    def api(self, name: str, **env: str) -> Proc:
        port = free_port()
        proc = Proc(name, ["serve", "--port", str(port)],
                    {**self.env, "IMAGEGATE_RUN_WORKERS": "false", **env}, self._dir(name),
                    port=port)
        self.procs.append(proc)
        return proc

    def worker(self, name: str, **env: str) -> Proc:
        port = free_port()
        proc = Proc(name, ["worker"], {**self.env, "IMAGEGATE_METRICS_PORT": str(port), **env},
                    self._dir(name), port=port)
        self.procs.append(proc)
        return proc

    def restart(self, old: Proc) -> Proc:
        """A new process in the old one's role (a new port and data directory: nothing of a
        distributed process lives on its disk)."""
        old.stop()
        role = self.api if old.args[0] == "serve" else self.worker
        return role(old.name)

    def run(self, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        """A one-off command (`migrate`, `keys create`) with the cluster's settings."""
        return subprocess.run([IMAGEGATE, *args, "--data-dir", str(self._dir("cli"))],
                              env=self.env, capture_output=True, text=True, timeout=timeout,
                              check=False)

    def spawn_run(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([IMAGEGATE, *args, "--data-dir", str(self._dir("cli"))],
                                env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)

    def create_key(self, name: str, balance: str) -> dict[str, Any]:
        res = self.run("keys", "create", "--name", name, "--balance", balance, "--json")
        assert res.returncode == 0, res.stdout + res.stderr
        line = [ln for ln in res.stdout.splitlines() if ln.startswith("{")][-1]
        created: dict[str, Any] = json.loads(line)
        return created

    def outputs(self) -> str:
        return "\n\n".join(f"--- {p.name} (pid {p.pid}, {'alive' if p.alive else 'gone'})\n"
                           f"{p.output(40)}" for p in self.procs)

    def close(self) -> None:
        errors = []
        for proc in self.procs:
            try:
                proc.stop()
            except Exception as exc:  # keep going: every process must be stopped
                errors.append(f"{proc.name} ({proc.pid}): {exc!r}")
        assert not errors, errors
