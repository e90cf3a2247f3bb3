"""Benchmark plumbing: servers as subprocesses (always stopped by PID), CPU and RSS sampling,
the task table read straight from SQLite, and small statistics helpers."""

from __future__ import annotations

import contextlib
import os
import re
import resource
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

BENCH_DIR = Path(__file__).resolve().parent
LOOPBACK = "127.0.0.1"
_KEY_RE = re.compile(r"\b(ig_[A-Za-z0-9_-]{20,})")

# Every server this process started and has not stopped yet; stop_all() is the safety net.
_LIVE: dict[int, Server] = {}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        port: int = s.getsockname()[1]
        return port


def imagegate_exe() -> str:
    """The console script next to this interpreter (the project venv), else on PATH."""
    candidate = Path(sys.executable).parent / "imagegate"
    return str(candidate) if candidate.exists() else "imagegate"


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    data_dir: Path | None = None
    api_key: str | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def db_path(self) -> Path | None:
        return None if self.data_dir is None else self.data_dir / "imagegate.db"

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self, grace: float = 15.0) -> float:
        """SIGTERM by PID, SIGKILL after `grace` seconds; returns how long stopping took."""
        started = time.monotonic()
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        _LIVE.pop(self.proc.pid, None)
        return time.monotonic() - started


def stop_all() -> None:
    for server in list(_LIVE.values()):
        server.stop(grace=5.0)


def finish(workdir: Path, keep: bool) -> None:
    """End of a benchmark: stop every server it started, keep or remove its temp dir."""
    stop_all()
    if keep:
        print(f"kept {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)


def _wait_healthy(server: Server, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    url = server.base_url + "/healthz"
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {server.proc.returncode}:\n"
                               f"{server.log_tail()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"{server.name} was not healthy after {timeout:.0f}s:\n{server.log_tail()}")


def _clean_env(extra: dict[str, str]) -> dict[str, str]:
    # Nothing from the caller's IMAGEGATE_* (a config file, a database URL) leaks in.
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGEGATE_")}
    env.update(extra)
    return env


def _spawn(name: str, argv: list[str], env: dict[str, str], log_path: Path, cwd: Path
           ) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        # Its own session: a Ctrl-C in the terminal reaches only us, and we stop it by PID.
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                start_new_session=True)
    return proc


def start_imagegate(workdir: Path, name: str, settings: dict[str, str],
                    args: Sequence[str] = ()) -> Server:
    """`imagegate serve` on a free loopback port with a fresh data dir under `workdir`.

    `settings` are IMAGEGATE_* variables without the prefix, e.g. {"SANDBOX_LATENCY": "30"};
    `args` more `serve` options (e.g. `--processes 2`).
    """
    data_dir = workdir / name
    data_dir.mkdir(parents=True)
    port = free_port()
    env = _clean_env({f"IMAGEGATE_{k.upper()}": v for k, v in settings.items()})
    log_path = workdir / f"{name}.log"
    argv = [imagegate_exe(), "serve", "--host", LOOPBACK, "--port", str(port),
            "--data-dir", str(data_dir), *args]
    server = Server(name, _spawn(name, argv, env, log_path, workdir), port, log_path, data_dir)
    _LIVE[server.pid] = server
    _wait_healthy(server)
    match = _KEY_RE.search(log_path.read_text(errors="replace"))
    server.api_key = match.group(1) if match else _create_key(data_dir, env)
    return server


def start_worker(workdir: Path, name: str, settings: dict[str, str], *, wait: bool = True
                 ) -> Server:
    """`imagegate worker` with a fresh data dir under `workdir`, its `/healthz` on a free
    `metrics_port` (which is what `port` and `base_url` point at). `wait=False` returns at
    once (start several together, then `wait_healthy` each)."""
    data_dir = workdir / name
    data_dir.mkdir(parents=True)
    port = free_port()
    env = _clean_env({f"IMAGEGATE_{k.upper()}": v for k, v in settings.items()})
    env["IMAGEGATE_METRICS_PORT"] = str(port)
    log_path = workdir / f"{name}.log"
    argv = [imagegate_exe(), "worker", "--data-dir", str(data_dir)]
    server = Server(name, _spawn(name, argv, env, log_path, workdir), port, log_path, data_dir)
    _LIVE[server.pid] = server
    if wait:
        _wait_healthy(server)
    return server


def wait_healthy(server: Server) -> None:
    _wait_healthy(server)


def _create_key(data_dir: Path, env: dict[str, str]) -> str:
    out = subprocess.run(
        [imagegate_exe(), "keys", "create", "--name", "bench", "--json", "--data-dir",
         str(data_dir)],
        env=env, capture_output=True, check=True, timeout=60,
    ).stdout
    import json

    key: str = json.loads(out)["key"]
    return key


def start_bare(workdir: Path) -> Server:
    port = free_port()
    log_path = workdir / "bare_asgi.log"
    argv = [sys.executable, str(BENCH_DIR / "bare_asgi.py"), "--port", str(port)]
    server = Server("bare-uvicorn", _spawn("bare", argv, _clean_env({}), log_path, workdir),
                    port, log_path)
    _LIVE[server.pid] = server
    _wait_healthy(server)
    return server


# -- CPU and memory
def _tree(pid: int) -> list[psutil.Process]:
    """A process and its live children; empty when it is gone."""
    try:
        proc = psutil.Process(pid)
        return [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def tree_cpu_seconds(pid: int) -> float:
    """user+system CPU seconds of a process and its live children."""
    total = 0.0
    for p in _tree(pid):
        with contextlib.suppress(psutil.NoSuchProcess):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def tree_rss(pid: int) -> int:
    """Resident bytes of a process plus its children."""
    total = 0
    for p in _tree(pid):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += p.memory_info().rss
    return total


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has been busy (all cores, every process)."""
    t = psutil.cpu_times()
    return float(sum(t) - t.idle - getattr(t, "iowait", 0.0))


def _children_cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


@dataclass
class CpuUse:
    """Cores used over a window: by the server, by the load client, by everything else."""

    server: float = 0.0
    client: float = 0.0
    other: float = 0.0
    # The server's CPU seconds over the window, for CPU per request (cores x wall would carry
    # the client's start-up into it).
    server_seconds: float = 0.0
    # The fake upstream's cores, taken out of `other` by callers that measure them.
    upstream: float = 0.0

    @property
    def machine(self) -> float:
        """Cores the whole machine was busy: every process, the measured ones included."""
        return self.server + self.client + self.other + self.upstream


class CpuWindow:
    """Measure a window in which one client subprocess runs to completion (and is reaped)."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self.use = CpuUse()

    def __enter__(self) -> CpuWindow:
        self._t = time.monotonic()
        self._server = tree_cpu_seconds(self.server_pid)
        self._children = _children_cpu_seconds()
        self._busy = machine_busy_seconds()
        self._self = time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = max(1e-9, time.monotonic() - self._t)
        server = tree_cpu_seconds(self.server_pid) - self._server
        client = _children_cpu_seconds() - self._children  # the reaped load generator
        mine = time.process_time() - self._self
        busy = machine_busy_seconds() - self._busy
        self.use = CpuUse(server / wall, client / wall,
                          max(0.0, busy - server - client - mine) / wall, server)


# -- the task table, read-only, straight from SQLite (WAL lets us read next to the writer)
def status_counts(db_path: Path) -> dict[str, int]:
    uri = f"file:{db_path}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=5)) as conn:
        rows = conn.execute("SELECT status, COUNT(*) FROM tasks GROUP BY status").fetchall()
    return {str(status): int(n) for status, n in rows}


def finished_task_ids(db_path: Path, limit: int) -> list[str]:
    uri = f"file:{db_path}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=5)) as conn:
        rows = conn.execute(
            "SELECT id FROM tasks WHERE status IN ('succeeded', 'failed', 'cancelled') "
            "ORDER BY random() LIMIT ?", (limit,)
        ).fetchall()
    return [str(r[0]) for r in rows]


@dataclass
class Sample:
    t: float
    rss: int
    counts: dict[str, int] | None = None


@dataclass
class MemorySampler:
    """Samples the server's RSS (with children) every `interval` s in a thread, and the task
    table's status counts every `counts_every` samples."""

    pid: int
    db_path: Path | None = None
    interval: float = 0.2
    counts_every: int = 5
    samples: list[Sample] = field(default_factory=list)
    count_errors: int = 0

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)
        self._t0 = time.monotonic()

    def _loop(self) -> None:
        n = 0
        while not self._stop.is_set():
            counts = None
            if self.db_path is not None and n % self.counts_every == 0:
                try:
                    counts = status_counts(self.db_path)
                except sqlite3.Error:
                    self.count_errors += 1
            self.samples.append(Sample(time.monotonic() - self._t0, tree_rss(self.pid), counts))
            n += 1
            self._stop.wait(self.interval)

    def peak_rss(self, start: float = 0.0, end: float = float("inf")) -> int | None:
        """Peak RSS of the samples taken between two `time.monotonic()` readings."""
        window = [s.rss for s in self.samples if start <= self._t0 + s.t <= end]
        return max(window) if window else None

    @contextlib.contextmanager
    def running(self) -> Iterator[MemorySampler]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join(10)

    def latest_counts(self) -> dict[str, int] | None:
        for sample in reversed(self.samples[-20:]):
            if sample.counts is not None:
                return sample.counts
        return None

    def peak(self) -> Sample:
        return max(self.samples, key=lambda s: s.rss)

    def counts_near(self, t: float) -> dict[str, int] | None:
        with_counts = [s for s in self.samples if s.counts is not None]
        if not with_counts:
            return None
        return min(with_counts, key=lambda s: abs(s.t - t)).counts


# -- statistics
def median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def fmt_num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "–"
    if digits == 0:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"
