"""Scale-out benchmark: task throughput with 1 and 2 `imagegate worker` processes on
PostgreSQL (sandbox latency 0), and task polls per second on PostgreSQL against SQLite.
Prints one markdown table; see bench/README.md. Not a test: nothing here is asserted.

    .venv/bin/python bench/bench_scale.py           # 3 repetitions, medians (~6 min)
    .venv/bin/python bench/bench_scale.py --quick   # 1 short repetition (~2 min)

PostgreSQL: $IMAGEGATE_BENCH_POSTGRES_URL (default postgres on 127.0.0.1:5432, trust), one
throw-away database per run, dropped afterwards. Redis: a private `redis-server` on a free
port when one is installed (the events of the distributed shape), else none (then idle
workers poll). Blobs: one local `blob_dir` shared by the processes (one host): S3 would
measure the storage service, not imagegate. Every process runs on a free 127.0.0.1 port and
is stopped by PID at the end, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import os
import platform
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import psutil
from _load import LoadResult, LoadSpec, Tool, run_aiohttp, run_load, wrk_path
from _util import (
    Server,
    finish,
    fmt_num,
    free_port,
    machine_busy_seconds,
    median,
    start_imagegate,
    start_worker,
    stop_all,
    tree_cpu_seconds,
    wait_healthy,
)

PG_ADMIN = os.environ.get("IMAGEGATE_BENCH_POSTGRES_URL",
                          "postgresql://postgres@127.0.0.1:5432/postgres")
# Small images: the figure is the task path (claim, progress, store, finish), not rendering.
BODY = '{"model": "dall-e-2", "prompt": "bench %N%", "size": "256x256"}'


@dataclass(frozen=True)
class Plan:
    reps: int
    tasks: int
    poll_seconds: float
    poll_ids: int
    poll_concurrency: tuple[int, ...]


@dataclass
class Row:
    metric: str
    runs: list[float]
    unit: str
    p50: float | None = None
    p99: float | None = None
    note: str = ""

    @property
    def value(self) -> float | None:
        return median(self.runs)


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# -- PostgreSQL and Redis
async def _pg(sql: str, url: str = PG_ADMIN) -> list[tuple[Any, ...]]:
    import asyncpg

    conn = await asyncpg.connect(url, timeout=10)
    try:
        return [tuple(r) for r in await conn.fetch(sql)]
    finally:
        await conn.close()


@contextlib.contextmanager
def pg_database() -> Iterator[str]:
    name = f"imagegate_bench_{uuid.uuid4().hex[:10]}"
    asyncio.run(_pg(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}"
    finally:
        asyncio.run(_pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextlib.contextmanager
def redis_server(workdir: Path) -> Iterator[str | None]:
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(workdir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        time.sleep(0.5)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)


# -- throughput: a full queue, drained by 1 or 2 worker processes
def _submit(api: Server, n: int) -> LoadResult:
    assert api.api_key
    spec = LoadSpec("POST", ("/v1/images/generations?async=true",), 32, 300, n,
                    headers={"Authorization": f"Bearer {api.api_key}",
                             "Content-Type": "application/json"},
                    body=BODY, expect=(202,))
    return run_aiohttp(api.base_url, spec, api.pid)


def throughput(workdir: Path, plan: Plan, workers: int, redis: str | None, rep: int
               ) -> tuple[float, str]:
    """Tasks per second while `workers` processes drain a queue of `plan.tasks`."""
    with pg_database() as pg:
        run_dir = workdir / f"tp-{workers}w-{rep}"
        run_dir.mkdir()
        common = {"DATABASE_URL": pg, "BLOB_DIR": str(run_dir / "blobs"),
                  "SANDBOX_LATENCY": "0", "ACCESS_LOG": "false", "LOG_LEVEL": "warning",
                  **({"REDIS_URL": redis} if redis else {})}
        api = start_imagegate(run_dir, "api", {**common, "RUN_WORKERS": "false"})
        try:
            sub = _submit(api, plan.tasks)
            if sub.errors:
                raise RuntimeError(f"submits failed: {sub.first_error}")
            # Started together; counted from the moment the last one answers /healthz (its
            # dispatcher is claiming by then), so a head start of one is left out.
            procs = [start_worker(run_dir, f"worker{i}", common, wait=False)
                     for i in range(workers)]
            for proc in procs:
                wait_healthy(proc)
            all_running = time.time()
            cpu0 = sum(tree_cpu_seconds(p.pid) for p in procs)
            busy0, mono0 = machine_busy_seconds(), time.monotonic()
            deadline = time.monotonic() + 600
            while True:
                [(left,)] = asyncio.run(_pg("SELECT count(*) FROM tasks WHERE status IN "
                                            "('queued', 'in_progress')", pg))
                if left == 0 or time.monotonic() > deadline:
                    break
                time.sleep(0.25)
            wall = max(1e-9, time.monotonic() - mono0)
            workers_cores = (sum(tree_cpu_seconds(p.pid) for p in procs) - cpu0) / wall
            other_cores = max(0.0, (machine_busy_seconds() - busy0) / wall - workers_cores)
            [(done, last)] = asyncio.run(_pg(
                f"SELECT count(*), max(completed_at) FROM tasks WHERE status = 'succeeded' "
                f"AND completed_at >= {all_running}", pg))
            for proc in procs:
                proc.stop()
        finally:
            api.stop()
        seconds = float(last or all_running) - all_running
        rate = int(done) / seconds if seconds > 0 else 0.0
        return rate, (f"{done} in {seconds:.1f}s; workers {workers_cores:.2f} cores, other "
                      f"{other_cores:.2f}")


# -- polling: GET /v1/tasks/{id} of finished tasks, PostgreSQL vs SQLite
def _poll_server(workdir: Path, name: str, settings: dict[str, str], plan: Plan
                 ) -> tuple[Server, tuple[str, ...]]:
    server = start_imagegate(workdir, name, {"SANDBOX_LATENCY": "0", "ACCESS_LOG": "false",
                                             "LOG_LEVEL": "warning", **settings})
    spec = LoadSpec("POST", ("/v1/images/generations?async=true",), 16, 120, plan.poll_ids,
                    headers={"Authorization": f"Bearer {server.api_key}",
                             "Content-Type": "application/json"},
                    body=BODY, expect=(202,), collect="task_id")
    ids = tuple(run_aiohttp(server.base_url, spec, server.pid).ids)
    time.sleep(5)  # in-process workers finish them (256 tiny images)
    return server, tuple(f"/v1/tasks/{i}" for i in ids)


def polling(workdir: Path, plan: Plan, report: Report) -> None:
    tool: Tool = "wrk" if wrk_path() else "aiohttp"
    with pg_database() as pg:
        servers = {
            "PostgreSQL": _poll_server(workdir, "poll-pg", {"DATABASE_URL": pg}, plan),
            "SQLite": _poll_server(workdir, "poll-sqlite", {}, plan),
        }
        try:
            for c in plan.poll_concurrency:
                results: dict[str, list[LoadResult]] = {name: [] for name in servers}
                for _ in range(plan.reps):  # interleaved: the machine's noise hits both
                    for name, (server, paths) in servers.items():
                        spec = LoadSpec("GET", paths, c, plan.poll_seconds, 1_000_000,
                                        headers={"Authorization": f"Bearer {server.api_key}"})
                        results[name].append(run_load(server.base_url, spec, server.pid,
                                                      tool))
                for name, res in results.items():
                    errors = sum(r.errors for r in res)
                    cpu = median([r.cpu.server for r in res]) or 0.0
                    other = median([r.cpu.other for r in res]) or 0.0
                    report.rows.append(Row(
                        f"GET /v1/tasks/{{id}} polls/s on {name}, c={c}",
                        [r.rate for r in res], "req/s",
                        p50=median([r.p50_ms for r in res]),
                        p99=median([r.p99_ms for r in res]),
                        note=f"{tool}; server {cpu:.2f} cores, other {other:.2f} cores"
                             + (" (PostgreSQL among it)" if name == "PostgreSQL" else "")
                             + (f"; {errors} errors" if errors else "")))
        finally:
            for server, _ in servers.values():
                server.stop()


def table(report: Report) -> str:
    lines = ["| metric | value (median) | runs | p50 ms | p99 ms | notes |",
             "|---|---|---|---|---|---|"]
    for row in report.rows:
        digits = 1 if row.unit == "tasks/s" else 0
        lines.append(
            f"| {row.metric} | {fmt_num(row.value, digits)} {row.unit} | "
            f"{', '.join(fmt_num(r, digits) for r in row.runs)} | "
            f"{fmt_num(row.p50, 1)} | {fmt_num(row.p99, 1)} | {row.note} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--quick", action="store_true", help="1 repetition, fewer tasks")
    parser.add_argument("--reps", type=int, help="repetitions per figure (default 3)")
    parser.add_argument("--tasks", type=int, help="tasks per throughput run (default 2000)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir and its logs")
    args = parser.parse_args(argv)
    plan = Plan(reps=args.reps or (1 if args.quick else 3),
                tasks=args.tasks or (500 if args.quick else 2000),
                poll_seconds=4 if args.quick else 8, poll_ids=256,
                poll_concurrency=(32,) if args.quick else (32, 64))
    workdir = Path(tempfile.mkdtemp(prefix="imagegate-bench-scale-"))
    atexit.register(stop_all)

    def interrupted(_sig: int, _frame: FrameType | None) -> None:
        stop_all()
        raise SystemExit(130)

    signal.signal(signal.SIGINT, interrupted)
    signal.signal(signal.SIGTERM, interrupted)
    report = Report()
    try:
        with redis_server(workdir) as redis:
            if redis is None:
                report.notes.append("redis-server not installed: no events (idle workers poll)")
            for workers in (1, 2):
                runs, notes = [], []
                for rep in range(plan.reps):
                    rate, note = throughput(workdir, plan, workers, redis, rep)
                    runs.append(rate)
                    notes.append(note)
                report.rows.append(Row(
                    f"tasks/s, {workers} worker process{'es' if workers > 1 else ''} "
                    f"(PostgreSQL, latency 0, {plan.tasks} queued)", runs, "tasks/s",
                    note="; ".join(notes)))
        polling(workdir, plan, report)
    finally:
        finish(workdir, args.keep)
    mem = psutil.virtual_memory().total / 2**30
    print(f"\n### bench_scale ({os.cpu_count()} CPUs, {mem:.0f} GiB, "
          f"{platform.python_implementation()} {platform.python_version()}, "
          f"{plan.reps} run(s) per figure, {time.strftime('%Y-%m-%d')})\n")
    print(table(report))
    for note in report.notes:
        print(f"\n- {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
