"""`imagegate serve --processes 1` against `--processes 2` on PostgreSQL: relay throughput
of sync generations through a zero-latency fake OpenAI upstream (bench_relay.py's fake)
answering a ~4 KiB PNG as base64, at concurrency 64. Prints one markdown table. Not a test:
nothing here is asserted.

    .venv/bin/python bench/bench_processes.py                  # 3 interleaved runs of 8 s
    .venv/bin/python bench/bench_processes.py --reps 1 --duration 4

Needs a PostgreSQL server that lets this user create databases
(IMAGEGATE_TEST_POSTGRES_URL, default postgresql://postgres@127.0.0.1:5432/postgres); one
fresh database per server, dropped at the end. Both servers run side by side (the idle one
costs a poll a second) and the runs are interleaved (1, 2, 1, 2, …), so drift on a shared
machine hits both alike. CPU ms per request is the server's process tree (children
included) over the run, divided by the requests answered; the cores columns show how full
the machine was (PostgreSQL and the fake are in "everything else").
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path

from _load import LoadResult, run_load, wrk_path
from _util import fmt_num, median, start_imagegate, stop_all
from bench_relay import FAKE_KEY, MODEL, relay_spec, start_fake

PG_ADMIN = os.environ.get("IMAGEGATE_TEST_POSTGRES_URL",
                          "postgresql://postgres@127.0.0.1:5432/postgres")


def small_png(path: Path) -> int:
    """A 40x32 PNG of noise: about 4 KiB that does not compress."""
    import pyvips

    pixels = random.Random(7).randbytes(40 * 32 * 3)
    pyvips.Image.new_from_memory(pixels, 40, 32, 3, "uchar").pngsave(str(path), compression=1)
    return path.stat().st_size


async def _admin(statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args(argv)
    tool = "wrk" if wrk_path() else "aiohttp"
    workdir = Path(tempfile.mkdtemp(prefix="bench-processes-"))
    png = workdir / "result.png"
    size = small_png(png)
    databases = {n: f"imagegate_bench_{uuid.uuid4().hex[:10]}" for n in (1, 2)}
    base = PG_ADMIN.rsplit("/", 1)[0]
    results: dict[int, list[LoadResult]] = {1: [], 2: []}
    try:
        fake = start_fake(workdir, "fake", 0.0, png)
        config = workdir / "channels.toml"
        config.write_text(f'[[channels]]\nname = "fake"\nadapter = "openai"\n'
                          f'base_url = "{fake.base_url}/v1"\napi_key = "{FAKE_KEY}"\n'
                          f'models = ["{MODEL}"]\n')
        servers = {}
        for n, name in databases.items():
            asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
            servers[n] = start_imagegate(workdir, f"processes-{n}", {
                "CONFIG": str(config), "ACCESS_LOG": "false", "LOG_LEVEL": "warning",
                "DATABASE_URL": f"{base}/{name}", "PROCESSES": str(n)})
        for server in servers.values():  # warm up: connections, caches, JIT-free paths
            run_load(server.base_url, relay_spec(server, args.concurrency, 2.0, 10**6),
                     server.pid, tool)
        for _ in range(args.reps):
            for n, server in servers.items():
                spec = relay_spec(server, args.concurrency, args.duration, 10**7)
                results[n].append(run_load(server.base_url, spec, server.pid, tool))
    finally:
        stop_all()
        for name in databases.values():
            asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    print(f"\n{size} B PNG answered as b64_json, c={args.concurrency}, {tool}, "
          f"{args.reps} x {args.duration:g} s interleaved, PostgreSQL, {os.cpu_count()} cores\n")
    print("| processes | req/s (median) | runs | errors | server CPU ms/request | cores: "
          "server / load client / everything else |")
    print("|---|---|---|---|---|---|")
    rates = {}
    for n, runs in results.items():
        rates[n] = median([r.rate for r in runs]) or 0.0
        cpu = median([r.cpu.server * r.seconds * 1000 / r.requests for r in runs
                      if r.requests])
        print(f"| {n} | {fmt_num(rates[n])} | {', '.join(fmt_num(r.rate) for r in runs)} | "
              f"{sum(r.errors for r in runs)} | {fmt_num(cpu, 1)} | "
              f"{median([r.cpu.server for r in runs]):.2f} / "
              f"{median([r.cpu.client for r in runs]):.2f} / "
              f"{median([r.cpu.other for r in runs]):.2f} |")
    if rates[1]:
        print(f"\n2 processes / 1 process: {rates[2] / rates[1]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
