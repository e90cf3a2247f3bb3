"""Relay overhead: a sync generation through imagegate to a fake OpenAI upstream that answers
a ~2 MiB PNG as base64, against calling the fake directly. Prints one markdown table; see
bench/README.md ("Relay"). Not a test: nothing here is asserted.

    .venv/bin/python bench/bench_relay.py            # 3 interleaved runs per figure (~6 min)
    .venv/bin/python bench/bench_relay.py --quick    # 1 short run, 500 in the big burst

Two parts:
1. Throughput at concurrency 1, 16, 64 against a zero-latency fake: `POST
   /v1/images/generations` straight to the fake, and through imagegate (`response_format:
   b64_json`, so both answers carry the same ~2.7 MiB of base64). Runs are interleaved
   (direct, relay, direct, relay, ...) and the ratio is relay / direct of the medians.
2. A burst of 2,000 concurrent sync requests against a fake with 2 s latency: completed/s
   of the whole burst (first request to last answer) directly and through imagegate, and
   imagegate's peak RSS (with children) while it runs.

The fake runs in its own process (this file run as `bench_relay.py _fake`), imagegate as
`imagegate serve` with a `[[channels]]` config pointing at the fake, both on free 127.0.0.1
ports, stopped by PID at the end (also on Ctrl-C).
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import base64
import contextlib
import json
import os
import platform
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import _util
import psutil
from _load import BODY_COUNTER, LoadResult, LoadSpec, Tool, run_load, wrk_path
from _profile import Recording, render, summarize
from _util import (
    LOOPBACK,
    MemorySampler,
    Server,
    finish,
    fmt_num,
    median,
    start_imagegate,
    stop_all,
)

MiB = 1024 * 1024
MB = 1_000_000
WIDTH = HEIGHT = 1024  # the size gpt-image-1 is asked for, so the result matches the request
TARGET_PNG_BYTES = 2 * MiB
FAKE_KEY = "sk-bench-relay"
MODEL = "gpt-image-1"
GEN_PATH = "/v1/images/generations"
# Above this imagegate RSS (with children) the burst is stopped: the machine is shared.
DEFAULT_RSS_LIMIT_MB = 10_000


# --------------------------------------------------------------------------- the payload


def make_png(path: Path, seed: int = 4) -> int:
    """A 1024x1024 RGB PNG of about 2 MiB: the top rows uniform noise (incompressible), the
    rest one flat colour (compresses to almost nothing), so the size is predictable and
    the image is the size the model is asked for. Returns its size in bytes."""
    import pyvips

    rng = random.Random(seed)
    row_bytes = WIDTH * 3
    probe = pyvips.Image.new_from_memory(rng.randbytes(row_bytes * 64), WIDTH, 64, 3, "uchar")
    per_row = len(probe.write_to_buffer(".png", compression=1)) / 64
    rows = min(HEIGHT, int(TARGET_PNG_BYTES / per_row))
    pixels = rng.randbytes(row_bytes * rows) + bytes([90, 140, 200]) * (WIDTH * (HEIGHT - rows))
    image = pyvips.Image.new_from_memory(pixels, WIDTH, HEIGHT, 3, "uchar")
    image.pngsave(str(path), compression=1)
    size = path.stat().st_size
    if not 0.95 * TARGET_PNG_BYTES <= size <= 1.05 * TARGET_PNG_BYTES:
        raise RuntimeError(f"{path.name} is {size} bytes, not within 5% of 2 MiB")
    return size


# --------------------------------------------------------------------------- the fake


def fake_main(argv: Sequence[str]) -> int:
    """`bench_relay.py _fake --port P --latency S --image FILE`: a FakeOpenAI answering the
    fixed image, with /healthz, until SIGTERM."""
    parser = argparse.ArgumentParser(prog="bench_relay.py _fake")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--image", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        import uvloop  # the loop imagegate serves on: the fake should not be the slow side
    except ImportError:
        asyncio.run(_serve_fake(args.port, args.latency, args.image.read_bytes()))
    else:
        uvloop.run(_serve_fake(args.port, args.latency, args.image.read_bytes()))
    return 0


async def _serve_fake(port: int, latency: float, image: bytes) -> None:
    from aiohttp import web

    from imagegate.testing.upstreams.openai_api import FakeOpenAI

    fake = FakeOpenAI(api_key=FAKE_KEY, latency=latency, fixed_image=image)

    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    # Built here rather than by fake.start(): the burst opens 2,000 connections at once and
    # aiohttp's default listen backlog (128) would drop SYNs (1 s, 3 s retransmits).
    app = web.Application(client_max_size=64 * MiB)
    app.add_routes([*fake.routes(), web.get("/healthz", healthz)])
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, LOOPBACK, port, backlog=4096).start()
    fake.url = f"http://{LOOPBACK}:{port}"
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    try:
        while not stop.is_set():
            # The fake records every request (for tests); a bench sends tens of thousands.
            fake.requests.clear()
            try:
                await asyncio.wait_for(stop.wait(), 1.0)
            except TimeoutError:
                pass
    finally:
        await fake.stop()
        await runner.cleanup()


def start_fake(workdir: Path, name: str, latency: float, image: Path) -> Server:
    port = _util.free_port()
    log_path = workdir / f"{name}.log"
    argv = [sys.executable, str(Path(__file__).resolve()), "_fake", "--port", str(port),
            "--latency", f"{latency:g}", "--image", str(image)]
    proc = _util._spawn(name, argv, _util._clean_env({}), log_path, workdir)
    server = Server(name, proc, port, log_path)
    _util._LIVE[server.pid] = server
    _util._wait_healthy(server)
    return server


def start_relay(workdir: Path, name: str, fake: Server, *, workers: int,
                channel_concurrency: int | None, log_level: str) -> Server:
    """`imagegate serve` with one `openai` channel for gpt-image-1 pointing at the fake."""
    config = workdir / f"{name}.toml"
    lines = ["[[channels]]", 'name = "fake"', 'adapter = "openai"',
             f'base_url = "{fake.base_url}/v1"', f'api_key = "{FAKE_KEY}"',
             f'models = ["{MODEL}"]']
    if channel_concurrency is not None:
        lines.append(f"concurrency = {channel_concurrency}")
    config.write_text("\n".join(lines) + "\n")
    return start_imagegate(workdir, name, {
        "CONFIG": str(config), "ACCESS_LOG": "false", "LOG_LEVEL": log_level,
        "WORKER_CONCURRENCY": str(workers),
    })


# --------------------------------------------------------------------------- requests


def direct_spec(c: int, duration: float, cap: int) -> LoadSpec:
    # gpt-image models refuse `response_format` at OpenAI (and at the fake): they always
    # answer base64, so the direct body leaves it out.
    body = json.dumps({"model": MODEL, "prompt": f"a lighthouse, relay bench {BODY_COUNTER}",
                       "size": f"{WIDTH}x{HEIGHT}"})
    return LoadSpec("POST", (GEN_PATH,), c, duration, cap, body=body,
                    headers={"Authorization": f"Bearer {FAKE_KEY}",
                             "Content-Type": "application/json"})


def relay_spec(server: Server, c: int, duration: float, cap: int) -> LoadSpec:
    assert server.api_key
    body = json.dumps({"model": MODEL, "prompt": f"a lighthouse, relay bench {BODY_COUNTER}",
                       "size": f"{WIDTH}x{HEIGHT}", "response_format": "b64_json"})
    return LoadSpec("POST", (GEN_PATH,), c, duration, cap, body=body,
                    headers={"Authorization": f"Bearer {server.api_key}",
                             "Content-Type": "application/json"})


def check_payload(url: str, spec: LoadSpec, png: bytes) -> str:
    """One request by hand: the answer's b64 must decode to exactly the fake's PNG (the
    relay stores and returns the upstream's bytes; it does not re-encode)."""
    assert spec.body is not None
    req = urllib.request.Request(url + GEN_PATH, method="POST", headers=spec.headers,
                                 data=spec.body.replace(BODY_COUNTER, "0").encode())
    with urllib.request.urlopen(req, timeout=60) as resp:
        raw = resp.read()
    data = base64.b64decode(json.loads(raw)["data"][0]["b64_json"])
    if data != png:
        raise RuntimeError(f"{url}: the answer is not the fake's PNG ({len(data)} bytes)")
    return f"{len(raw) / MiB:.2f} MiB JSON answer, {len(data) / MiB:.2f} MiB PNG, identical"


# --------------------------------------------------------------------------- measuring


@dataclass(frozen=True)
class Plan:
    reps: int
    duration: float
    warmup: float
    concurrency: tuple[int, ...]
    cap: int  # requests per throughput run, at most
    burst: int
    burst_latency: float
    burst_reps: int
    burst_limit: float  # seconds a burst may take, at most


@dataclass
class Pair:
    c: int
    direct: list[LoadResult] = field(default_factory=list)
    relay: list[LoadResult] = field(default_factory=list)
    relay_fake_cores: list[float] = field(default_factory=list)  # the fake, during relay runs


def relay_run(relay: Server, fake: Server, spec: LoadSpec, tool: Tool
              ) -> tuple[LoadResult, float]:
    """A relay run, plus the cores the fake used meanwhile (CpuWindow sees only imagegate,
    so the fake would otherwise hide in "other")."""
    t0, cpu0 = time.monotonic(), _util.tree_cpu_seconds(fake.pid)
    res = run_load(relay.base_url, spec, relay.pid, tool)
    cores = (_util.tree_cpu_seconds(fake.pid) - cpu0) / max(1e-9, time.monotonic() - t0)
    res.cpu.other = max(0.0, res.cpu.other - cores)
    return res, cores


@dataclass
class Burst:
    direct: list[LoadResult] = field(default_factory=list)
    relay: list[LoadResult] = field(default_factory=list)
    relay_fake_cores: list[float] = field(default_factory=list)
    peak_rss: list[int] = field(default_factory=list)
    worst_lag: list[float] = field(default_factory=list)
    idle_rss: list[int] = field(default_factory=list)
    aborted: list[str] = field(default_factory=list)


def throughput(fake: Server, relay: Server, plan: Plan, tool: Tool) -> list[Pair]:
    pairs = [Pair(c) for c in plan.concurrency]
    for pair in pairs:  # warm-up: connections, lazy imports, compiled statements
        run_load(fake.base_url, direct_spec(pair.c, plan.warmup, plan.cap), fake.pid, tool)
        run_load(relay.base_url, relay_spec(relay, pair.c, plan.warmup, plan.cap), relay.pid,
                 tool)
    for _ in range(plan.reps):
        for pair in pairs:
            pair.direct.append(run_load(fake.base_url, direct_spec(pair.c, plan.duration,
                                                                   plan.cap), fake.pid, tool))
            res, fake_cores = relay_run(relay, fake, relay_spec(relay, pair.c, plan.duration,
                                                                plan.cap), tool)
            pair.relay.append(res)
            pair.relay_fake_cores.append(fake_cores)
            print(f"... c={pair.c}: direct {pair.direct[-1].rate:,.1f}/s, relay "
                  f"{pair.relay[-1].rate:,.1f}/s", flush=True)
    return pairs


def profile_relay(relay: Server, plan: Plan, tool: Tool, py_spy: str, out_dir: Path
                  ) -> list[str]:
    """Extra, unreported relay runs under py-spy (all threads: libvips decodes in worker
    threads), at the lowest and highest concurrency."""
    out_dir.mkdir(parents=True, exist_ok=True)
    seconds = 8.0
    blocks = []
    for c in (min(plan.concurrency), max(plan.concurrency)):
        out = out_dir / f"relay-c{c}.speedscope.json"
        rec = Recording(py_spy, relay.pid, seconds, out)
        time.sleep(0.5)  # let py-spy attach before the load starts
        res = run_load(relay.base_url, relay_spec(relay, c, seconds + 2, plan.cap), relay.pid,
                       tool)
        error = rec.finish()
        blocks.append(f"### profile: relay c={c}\n{error}" if error else render(
            f"relay c={c} ({res.rate:,.1f} req/s while profiled)", out, summarize(out)))
    return blocks


class LagProbe:
    """GET /healthz once a second in a thread: imagegate answers it without the database, so
    its latency is roughly how far the server's event loop lags behind."""

    def __init__(self, server: Server) -> None:
        self.url = server.base_url + "/healthz"
        self.worst: float = 0.0
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="lag-probe", daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                with urllib.request.urlopen(self.url, timeout=120) as resp:
                    resp.read()
            except OSError:
                self.failures += 1
            self.worst = max(self.worst, time.monotonic() - t0)
            self._stop.wait(1.0)

    def __enter__(self) -> LagProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(130)


class RssGuard:
    """Kills the server (by PID) when its sampled RSS passes `limit`: the burst buffers
    2,000 answers of ~2.7 MiB and the machine is shared with other work."""

    def __init__(self, server: Server, sampler: MemorySampler, limit: int) -> None:
        self.server, self.sampler, self.limit = server, sampler, limit
        self.tripped: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-guard", daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            samples = self.sampler.samples
            if samples and samples[-1].rss > self.limit:
                self.tripped = f"RSS {samples[-1].rss / MB:,.0f} MB > limit; server killed"
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.server.pid, signal.SIGKILL)
                return

    def __enter__(self) -> RssGuard:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def burst(workdir: Path, image: Path, plan: Plan, tool: Tool, log_level: str,
          rss_limit: int) -> Burst:
    """`plan.burst` requests at once against a fake with `plan.burst_latency` s, directly
    and through a fresh imagegate each repetition (its RSS sampled from idle on)."""
    # Every request is issued at once (concurrency = cap = burst); the duration only bounds
    # the run (and sets the client's per-request timeout, see _loadgen_aiohttp.py).
    out = Burst()
    fake = start_fake(workdir, "fake-slow", plan.burst_latency, image)
    try:
        for rep in range(plan.burst_reps):
            out.direct.append(run_load(fake.base_url, direct_spec(
                plan.burst, plan.burst_limit, plan.burst), fake.pid, tool))
            print(f"... burst direct: {out.direct[-1].requests} in "
                  f"{out.direct[-1].seconds:.1f}s", flush=True)
            relay = start_relay(workdir, f"relay-burst-{rep}", fake, workers=plan.burst,
                                channel_concurrency=plan.burst, log_level=log_level)
            try:
                time.sleep(1.0)
                out.idle_rss.append(_util.tree_rss(relay.pid))
                sampler = MemorySampler(relay.pid, relay.db_path, interval=0.1, counts_every=10)
                with sampler.running(), RssGuard(relay, sampler, rss_limit) as guard, \
                        LagProbe(relay) as lag:
                    res, fake_cores = relay_run(relay, fake, relay_spec(
                        relay, plan.burst, plan.burst_limit, plan.burst), tool)
                out.relay.append(res)
                out.relay_fake_cores.append(fake_cores)
                out.peak_rss.append(sampler.peak().rss)
                out.worst_lag.append(lag.worst)
                if guard.tripped:
                    out.aborted.append(guard.tripped)
                print(f"... burst relay: {res.requests} in {res.seconds:.1f}s "
                      f"({res.errors} errors), peak RSS {sampler.peak().rss / MB:,.0f} MB, "
                      f"slowest /healthz {lag.worst:.1f}s",
                      flush=True)
            finally:
                relay.stop()
                if relay.data_dir is not None:
                    shutil.rmtree(relay.data_dir, ignore_errors=True)
    finally:
        fake.stop()
    return out


# --------------------------------------------------------------------------- output


def _rates(results: Sequence[LoadResult]) -> float | None:
    return median([r.rate for r in results])


def _ok_rate(r: LoadResult) -> float:
    """Answers with the expected status per second (a burst's failures are not completions;
    errors that never got an answer are not in `requests` either, hence the floor)."""
    return max(0, r.requests - r.errors) / r.seconds if r.seconds > 0 else 0.0


def _pct(results: Sequence[LoadResult], which: str) -> float | None:
    return median([r.p50_ms if which == "p50" else r.p99_ms for r in results])


def _cpu(results: Sequence[LoadResult], fake: Sequence[float] | None = None) -> str:
    def med(values: Sequence[float]) -> str:
        return f"{median(values) or 0.0:.2f}"

    parts = [med([r.cpu.server for r in results])]
    if fake is not None:
        parts.append(med(fake))
    parts += [med([r.cpu.client for r in results]), med([r.cpu.other for r in results])]
    return "/".join(parts)


def _errors(results: Sequence[LoadResult]) -> str:
    n = sum(r.errors for r in results)
    first = next((r.first_error for r in results if r.first_error), None)
    return f"{n} errors (first: {first})" if n else ""


def table(pairs: Sequence[Pair]) -> str:
    lines = ["| concurrency | direct req/s | direct p50 ms | direct p99 ms | relay req/s "
             "| relay p50 ms | relay p99 ms | relay / direct | relay runs | CPU cores "
             "direct fake/cli/other | CPU cores relay imagegate/fake/cli/other | notes |",
             "|" + "---:|" * 9 + "---|---|---|"]
    for p in pairs:
        d, r = _rates(p.direct), _rates(p.relay)
        ratio = f"{r / d:.2f}×" if d and r is not None else "–"
        runs = ", ".join(fmt_num(x.rate, 1) for x in p.relay)
        notes = "; ".join(x for x in (_errors(p.direct), _errors(p.relay)) if x)
        lines.append(
            f"| {p.c} | {fmt_num(d, 1)} | {fmt_num(_pct(p.direct, 'p50'), 1)} | "
            f"{fmt_num(_pct(p.direct, 'p99'), 1)} | {fmt_num(r, 1)} | "
            f"{fmt_num(_pct(p.relay, 'p50'), 1)} | {fmt_num(_pct(p.relay, 'p99'), 1)} | "
            f"{ratio} | {runs} | {_cpu(p.direct)} | {_cpu(p.relay, p.relay_fake_cores)} | "
            f"{notes} |")
    return "\n".join(lines)


def burst_table(b: Burst, plan: Plan) -> str:
    d, r = median([_ok_rate(x) for x in b.direct]), median([_ok_rate(x) for x in b.relay])
    frac = f"{r / d:.2f}" if d and r is not None else "–"
    peak = median([float(x) for x in b.peak_rss])
    idle = median([float(x) for x in b.idle_rss])
    notes = [x for x in (_errors(b.direct), _errors(b.relay)) if x] + b.aborted
    done = ", ".join(f"{x.requests - x.errors}/{plan.burst} in {x.seconds:.1f}s, peak "
                     f"{rss / MB:,.0f} MB" for x, rss in zip(b.relay, b.peak_rss, strict=False))
    ddone = ", ".join(f"{x.requests - x.errors}/{plan.burst} in {x.seconds:.1f}s"
                      for x in b.direct)
    return "\n".join([
        "| burst | direct completed/s | relay completed/s | relay / direct | imagegate peak "
        "RSS MB | idle RSS MB | direct runs | relay runs | relay p50 / p99 ms | slowest "
        "/healthz s | CPU cores "
        "direct fake/cli/other | CPU cores relay imagegate/fake/cli/other | notes |",
        "|---|---:|---:|---:|---:|---:|---|---|---|---:|---|---|---|",
        f"| {plan.burst:,} concurrent, upstream {plan.burst_latency:g} s | {fmt_num(d, 1)} | "
        f"{fmt_num(r, 1)} | {frac} | {fmt_num(None if peak is None else peak / MB)} | "
        f"{fmt_num(None if idle is None else idle / MB)} | {ddone} | {done} | "
        f"{fmt_num(_pct(b.relay, 'p50'), 0)} / {fmt_num(_pct(b.relay, 'p99'), 0)} | "
        f"{fmt_num(median(b.worst_lag), 1)} | {_cpu(b.direct)} | "
        f"{_cpu(b.relay, b.relay_fake_cores)} | {'; '.join(notes)} |",
    ])


def describe(tool: Tool, plan: Plan, png_size: int) -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"- machine: {psutil.cpu_count()} logical CPUs ({platform.machine()}), "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM, load average at start {load}; "
        "the fake upstream, imagegate and the load generator share these cores\n"
        f"- python {platform.python_version()}; load generator: "
        f"{'wrk (1 thread)' if tool == 'wrk' else 'aiohttp (own process)'}\n"
        f"- payload: a {WIDTH}x{HEIGHT} PNG of {png_size / MiB:.2f} MiB "
        f"({png_size:,} bytes; {(png_size + 2) // 3 * 4 / MiB:.2f} MiB as base64)\n"
        f"- throughput: {plan.reps} interleaved run(s) of {plan.duration:g}s per figure "
        f"(at most {plan.cap:,} requests each), medians; imagegate worker concurrency "
        f"{max(plan.concurrency)}\n"
        f"- burst: {plan.burst:,} requests at once, upstream latency {plan.burst_latency:g}s, "
        f"{plan.burst_reps} run(s), worker concurrency and channel concurrency "
        f"{plan.burst:,}; completed/s = answered requests / (first request to last answer)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 short run, 500-request burst")
    parser.add_argument("--aiohttp", action="store_true", help="never use wrk")
    parser.add_argument("--reps", type=int, help="throughput repetitions (default 3; quick 1)")
    parser.add_argument("--duration", type=float, help="seconds per run (default 5; quick 2)")
    parser.add_argument("--burst", type=int, help="concurrent requests (default 2000)")
    parser.add_argument("--burst-reps", type=int, help="burst repetitions (default 3; quick 1)")
    parser.add_argument("--burst-latency", type=float, default=2.0)
    parser.add_argument("--skip-burst", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--rss-limit-mb", type=int, default=DEFAULT_RSS_LIMIT_MB)
    parser.add_argument("--log-level", default="warning", help="imagegate's log level")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, dbs)")
    parser.add_argument("--profile-dir", type=Path,
                        help="also profile the relay with py-spy (speedscope files here)")
    parser.add_argument("--py-spy", default=shutil.which("py-spy"), help="py-spy executable")
    args = parser.parse_args(argv)
    if args.profile_dir is not None and not args.py_spy:
        parser.error("--profile-dir needs py-spy (on PATH or --py-spy PATH)")
    quick = bool(args.quick)
    plan = Plan(
        reps=args.reps or (1 if quick else 3),
        duration=args.duration or (2.0 if quick else 5.0),
        warmup=1.0,
        concurrency=(1, 16, 64),
        cap=20_000,
        burst=args.burst or (500 if quick else 2000),
        burst_latency=args.burst_latency,
        burst_reps=args.burst_reps or (1 if quick else 3),
        burst_limit=300.0,
    )
    tool: Tool = "wrk" if wrk_path() and not args.aiohttp else "aiohttp"

    def on_term(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    atexit.register(stop_all)
    workdir = Path(tempfile.mkdtemp(prefix="imagegate-bench-relay-"))
    started = time.monotonic()
    pairs: list[Pair] = []
    bursts: Burst | None = None
    profiles: list[str] = []
    try:
        image = workdir / "payload.png"
        png_size = make_png(image)
        png = image.read_bytes()
        header = describe(tool, plan, png_size)
        print(header, flush=True)
        if not args.skip_throughput:
            fake = start_fake(workdir, "fake-zero", 0.0, image)
            relay = start_relay(workdir, "relay", fake, workers=max(plan.concurrency),
                                channel_concurrency=None, log_level=args.log_level)
            print(f"- direct: {check_payload(fake.base_url, direct_spec(1, 1, 1), png)}")
            print(f"- relay: {check_payload(relay.base_url, relay_spec(relay, 1, 1, 1), png)}",
                  flush=True)
            try:
                pairs = throughput(fake, relay, plan, tool)
                if args.profile_dir is not None:
                    profiles = profile_relay(relay, plan, tool, str(args.py_spy),
                                             args.profile_dir.resolve())
            finally:
                relay.stop()
                fake.stop()
        if not args.skip_burst:
            bursts = burst(workdir, image, plan, tool, args.log_level,
                           args.rss_limit_mb * MB)
    finally:
        finish(workdir, args.keep)
    print()
    print(header)
    print(f"- took {time.monotonic() - started:.0f}s\n")
    if pairs:
        print(table(pairs))
        print()
    if bursts is not None:
        print(burst_table(bursts, plan))
    for block in profiles:
        print()
        print(block)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_fake":
        sys.exit(fake_main(sys.argv[2:]))
    sys.exit(main())
