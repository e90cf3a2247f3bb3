"""Issue 12's relay benchmark: every figure of the issue in one run, each beside its peer
measured in the same run, printed as ONE dated markdown table (see bench/README.md, "Relay").
Not a test: nothing here is asserted.

    .venv/bin/python bench/bench_relay.py            # 3 interleaved runs per figure (~10 min)
    .venv/bin/python bench/bench_relay.py --quick    # 1 short run per figure (~4 min)

The rows:
1. Zero-latency fake OpenAI upstream, c=16: `POST /v1/images/generations` straight to the
   fake against through imagegate, for a 4 KiB result answered as a URL, a 2 MiB result
   answered as a URL and as `b64_json`; imagegate's process-tree CPU ms per request.
2. Bursts: 2,000 sync requests at once against a fake with 2 s latency, directly and through
   a fresh imagegate (its channel without `concurrency`: the defaults), 4 KiB and 2 MiB
   results; peak RSS, and during the 2 MiB burst `GET /healthz` every 50 ms (p99).
3. Both cores: relay throughput at c=64 on PostgreSQL with `imagegate serve --processes 1`
   against `--processes 2` (n/a while `serve` has no `--processes`).
4. Polling and the framework floor: `GET /v1/tasks/{id}` and `GET /healthz` at c=64 against
   the bare-uvicorn peer (bench_core.measure, interleaved).
5. Async in flight: N async tasks held on a 60 s fake upstream (`dimilinks`, then
   `openai_compatible`): RSS idle against with them in flight, and polls/s meanwhile.

Fakes run in their own processes (this file run as `bench_relay.py _fake`), imagegate as
`imagegate serve` with a `[[channels]]` config pointing at its fake, all on free 127.0.0.1
ports, stopped by PID at the end (also on Ctrl-C).
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import base64
import contextlib
import json
import operator
import os
import platform
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import FrameType

import _util
import aiohttp
import psutil
from _load import BODY_COUNTER, LoadResult, LoadSpec, Tool, run_aiohttp, run_load, wrk_path
from _profile import Recording, render, summarize
from _tcp import TcpUse, TcpWindow
from _util import (
    LOOPBACK,
    CpuUse,
    MemorySampler,
    Server,
    finish,
    finished_task_ids,
    fmt_num,
    median,
    start_bare,
    start_imagegate,
    status_counts,
    stop_all,
    tree_cpu_seconds,
    tree_rss,
)
from bench_core import measure, with_duration

KiB = 1024
MiB = 1024 * KiB
MB = 1_000_000
WIDTH = HEIGHT = 1024  # the size gpt-image-1 is asked for, so the result matches the request
FAKE_KEY = "sk-bench-relay"
MODEL = "gpt-image-1"
GEN_PATH = "/v1/images/generations"
# Above this imagegate RSS (with children) a burst is stopped: the machine is shared.
DEFAULT_RSS_LIMIT_MB = 10_000
# Worker slots asked for when the configured default holds fewer tasks than a burst or the
# in-flight run needs (the issue: relay slots should not be the CPU-bound default).
MANY_SLOTS = 20_000
SECTIONS = ("zero", "burst", "processes", "poll", "inflight")

# The targets.
CPU_MS_TARGET = {"4 KiB url": 2.0, "2 MiB url": 10.0, "2 MiB b64_json": 12.0}
BURST_FRACTION_TARGET = 0.5
BURST_RSS_TARGET_MB = {"4 KiB": 400.0, "2 MiB": 700.0}
# The 2 MiB burst answers b64_json: the same bytes as the direct answer, and the shape of the
# "before" figure (3.1 GB peak); the 4 KiB one answers with URLs.
BURST_ANSWER = {"4 KiB": "url", "2 MiB": "b64_json"}
HEALTH_P99_TARGET_MS = 100.0
PROCESSES_TARGET = 1.6
POLL_TARGET = 8000.0
HEALTHZ_FRACTION_TARGET = 0.40
INFLIGHT_RSS_TARGET_MB = 200.0
INFLIGHT_POLL_TARGET = 5000.0


# --------------------------------------------------------------------------- the payloads


@dataclass(frozen=True)
class Payload:
    label: str  # "4 KiB" / "2 MiB"
    path: Path
    data: bytes


def make_png(path: Path, target: int, *, bands: int, compression: int, seed: int = 4
             ) -> Payload:
    """A 1024x1024 PNG of about `target` bytes: `k` bytes of uniform noise (incompressible)
    then one flat colour (compresses to almost nothing), `k` adjusted until the size is
    within 5% of the target. Deterministic; the image is the size the model is asked for."""
    import pyvips

    rng = random.Random(seed)
    total = WIDTH * HEIGHT * bands
    flat = bytes([90, 140, 200][:bands]) * (WIDTH * HEIGHT)
    noise = rng.randbytes(total)
    k, data = 0, b""
    for _ in range(8):  # each noise byte costs about one compressed byte: a few steps do
        pixels = noise[:k] + flat[k:]
        image = pyvips.Image.new_from_memory(pixels, WIDTH, HEIGHT, bands, "uchar")
        data = image.write_to_buffer(".png", compression=compression)
        if abs(len(data) - target) <= 0.05 * target:
            break
        k = max(0, min(total, k + target - len(data)))
    else:
        raise RuntimeError(f"{path.name} is {len(data)} bytes, not within 5% of {target}")
    path.write_bytes(data)
    label = f"{target // MiB} MiB" if target >= MiB else f"{target // KiB} KiB"
    return Payload(label, path, data)


# --------------------------------------------------------------------------- the fakes


def fake_main(argv: Sequence[str]) -> int:
    """`bench_relay.py _fake --kind openai|dimilinks --port P --latency S [--image FILE]`: a
    fake upstream (FakeOpenAI answering the fixed image, or FakeDimilinks), with /healthz,
    until SIGTERM."""
    parser = argparse.ArgumentParser(prog="bench_relay.py _fake")
    parser.add_argument("--kind", choices=("openai", "dimilinks"), default="openai")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--image", type=Path)
    args = parser.parse_args(argv)
    image = args.image.read_bytes() if args.image is not None else None
    main = _serve_fake(args.kind, args.port, args.latency, image)
    try:
        import uvloop  # the loop imagegate serves on: the fake should not be the slow side
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)
    return 0


async def _serve_fake(kind: str, port: int, latency: float, image: bytes | None) -> None:
    from aiohttp import web

    from imagegate.testing.upstreams.common import FakeUpstream
    from imagegate.testing.upstreams.dimilinks_api import FakeDimilinks
    from imagegate.testing.upstreams.openai_api import FakeOpenAI

    fake: FakeUpstream = (FakeDimilinks(api_key=FAKE_KEY, latency=latency)
                          if kind == "dimilinks" else
                          FakeOpenAI(api_key=FAKE_KEY, latency=latency, fixed_image=image))

    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    # Built here rather than by fake.start(): a burst opens 2,000 connections at once and
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


def start_fake(workdir: Path, name: str, latency: float, image: Payload | None,
               kind: str = "openai") -> Server:
    port = _util.free_port()
    log_path = workdir / f"{name}.log"
    argv = [sys.executable, str(Path(__file__).resolve()), "_fake", "--kind", kind,
            "--port", str(port), "--latency", f"{latency:g}"]
    if image is not None:
        argv += ["--image", str(image.path)]
    proc = _util._spawn(name, argv, _util._clean_env({}), log_path, workdir)
    server = Server(name, proc, port, log_path)
    _util._LIVE[server.pid] = server
    _util._wait_healthy(server)
    return server


# --------------------------------------------------------------------------- imagegate


def slots_for(tasks: int) -> dict[str, str]:
    """`WORKER_CONCURRENCY` when the default holds fewer than `tasks` at once, else nothing
    (so the bench measures the defaults once they are big enough)."""
    from imagegate.config import Settings

    default = Settings.model_fields["worker_concurrency"].default
    return {} if isinstance(default, int) and default >= tasks else {
        "WORKER_CONCURRENCY": str(MANY_SLOTS)}


def start_relay(workdir: Path, name: str, fake: Server, *, log_level: str,
                adapter: str = "openai", settings: dict[str, str] | None = None,
                channel: dict[str, int | float] | None = None, args: Sequence[str] = ()
                ) -> Server:
    """`imagegate serve` with one channel for gpt-image-1 pointing at the fake; no channel
    `concurrency` unless `channel` sets one."""
    config = workdir / f"{name}.toml"
    base_url = fake.base_url if adapter == "dimilinks" else f"{fake.base_url}/v1"
    lines = ["[[channels]]", 'name = "fake"', f'adapter = "{adapter}"',
             f'base_url = "{base_url}"', f'api_key = "{FAKE_KEY}"', f'models = ["{MODEL}"]']
    lines += [f"{k} = {v}" for k, v in (channel or {}).items()]
    config.write_text("\n".join(lines) + "\n")
    return start_imagegate(workdir, name, {
        "CONFIG": str(config), "ACCESS_LOG": "false", "LOG_LEVEL": log_level,
        **(settings or {}),
    }, args)


def stop_and_remove(server: Server) -> None:
    server.stop()
    if server.data_dir is not None:
        shutil.rmtree(server.data_dir, ignore_errors=True)


# --------------------------------------------------------------------------- requests


def _json_headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}


def direct_spec(c: int, duration: float, cap: int) -> LoadSpec:
    # gpt-image models refuse `response_format` at OpenAI (and at the fake): they always
    # answer base64, so the direct body leaves it out.
    body = json.dumps({"model": MODEL, "prompt": f"a lighthouse, relay bench {BODY_COUNTER}",
                       "size": f"{WIDTH}x{HEIGHT}"})
    return LoadSpec("POST", (GEN_PATH,), c, duration, cap, body=body,
                    headers=_json_headers(FAKE_KEY))


def relay_spec(server: Server, c: int, duration: float, cap: int, answer: str = "b64_json",
               *, path: str = GEN_PATH, expect: tuple[int, ...] = (200,),
               collect: str | None = None) -> LoadSpec:
    assert server.api_key
    body = json.dumps({"model": MODEL, "prompt": f"a lighthouse, relay bench {BODY_COUNTER}",
                       "size": f"{WIDTH}x{HEIGHT}", "response_format": answer})
    return LoadSpec("POST", (path,), c, duration, cap, body=body,
                    headers=_json_headers(server.api_key), expect=expect, collect=collect)


def check_payload(url: str, spec: LoadSpec, png: bytes) -> str:
    """One request by hand: the answer (b64, or the file behind its URL) must be exactly the
    fake's PNG (the relay stores and returns the upstream's bytes; it does not re-encode)."""
    assert spec.body is not None
    req = urllib.request.Request(url + GEN_PATH, method="POST", headers=spec.headers,
                                 data=spec.body.replace(BODY_COUNTER, "0").encode())
    with urllib.request.urlopen(req, timeout=60) as resp:
        raw = resp.read()
    item = json.loads(raw)["data"][0]
    if item.get("b64_json"):
        data = base64.b64decode(item["b64_json"])
        how = "b64_json"
    else:
        with urllib.request.urlopen(urllib.parse.urljoin(url, item["url"]), timeout=60) as r:
            data = r.read()
        how = "url"
    if data != png:
        raise RuntimeError(f"{url}: the {how} answer is not the fake's PNG ({len(data)} bytes)")
    return f"{how} answer of {len(raw):,} bytes, image {len(data):,} bytes, identical"


# --------------------------------------------------------------------------- figures


@dataclass(frozen=True)
class Plan:
    quick: bool
    reps: int
    duration: float
    warmup: float
    c: int  # the zero-latency rows
    cap: int  # requests per throughput run, at most
    burst: int
    burst_latency: float
    burst_reps: int
    burst_limit: float  # seconds a burst may take, at most
    health_interval: float
    processes_c: int
    poll_c: int
    inflight_tasks: int
    inflight_latency: float
    inflight_submit_limit: float  # seconds the submits may take, at most
    inflight_hold_wait: float  # seconds to wait for all of them to be in progress, at most
    inflight_poll_interval: float | None  # the dimilinks channel's poll_interval; None: default
    log_level: str
    rss_limit: int


def ok(r: LoadResult) -> int:
    """Answers with the expected status (failures are not completions)."""
    return max(0, r.requests - r.errors)


def ok_rate(r: LoadResult) -> float:
    return ok(r) / r.seconds if r.seconds > 0 else 0.0


def cpu_ms(r: LoadResult) -> float | None:
    """The server's process-tree CPU milliseconds per completed request."""
    return r.cpu.server_seconds * 1000 / ok(r) if ok(r) else None


def runs(results: Sequence[LoadResult]) -> str:
    return ", ".join(fmt_num(ok_rate(r)) for r in results)


def errors_note(results: Sequence[LoadResult]) -> str:
    n = sum(r.errors for r in results)
    first = next((r.first_error for r in results if r.first_error), None)
    return f"{n} errors (first: {(first or '')[:160]})" if n else ""


def check(ok_: bool) -> str:
    return "✓" if ok_ else "✗"


def target(label: str, value: float | None, good: Callable[[float], bool]) -> str:
    return f"{label} –" if value is None else f"{label} {check(good(value))}"


@dataclass
class Row:
    workload: str
    peer: str
    imagegate: str
    ratio: str
    cpu: str
    rss: str
    target: str
    notes: str = ""


@dataclass
class Report:
    rows: dict[str, list[Row]] = field(default_factory=lambda: {s: [] for s in SECTIONS})
    notes: list[str] = field(default_factory=list)
    profiles: list[str] = field(default_factory=list)


def relay_run(relay: Server, fake: Server, spec: LoadSpec, tool: Tool) -> LoadResult:
    """A relay run with the fake's cores taken out of "other" (CpuWindow sees only imagegate
    and the client, so the fake would otherwise hide there)."""
    t0, cpu0 = time.monotonic(), tree_cpu_seconds(fake.pid)
    res = run_load(relay.base_url, spec, relay.pid, tool)
    cores = (tree_cpu_seconds(fake.pid) - cpu0) / max(1e-9, time.monotonic() - t0)
    res.cpu.other = max(0.0, res.cpu.other - cores)
    res.cpu.upstream = cores
    return res


def _ratio(value: float | None, base: float | None) -> str:
    return f"{value / base:.2f}×" if value is not None and base else "–"


# -- 1. zero-latency upstream, c=16


def page_cache_write_ms(folder: Path, data: bytes, count: int = 100) -> float:
    """System CPU ms to write `data` into one fresh file, as imagegate stores a result: the
    kernel's share of storing it, which no change to imagegate can cut. On a VM whose free
    memory goes back to the host (a balloon's free-page reporting) a page-cache page touched
    for the first time costs a host fault; the figure shows how much of the relay's CPU that
    is on this machine, in this run. This thread's own rusage; the files are removed."""
    folder.mkdir(parents=True, exist_ok=True)
    before = resource.getrusage(resource.RUSAGE_THREAD).ru_stime
    for n in range(count):
        (folder / f"{n}.png").write_bytes(data)
    spent = resource.getrusage(resource.RUSAGE_THREAD).ru_stime - before
    shutil.rmtree(folder, ignore_errors=True)
    return spent / count * 1000


def zero_latency(fakes: dict[str, Server], relays: dict[str, Server], plan: Plan, tool: Tool,
                 report: Report, payloads: dict[str, Payload]) -> None:
    """Direct and relay runs interleaved per repetition: direct 4 KiB, relay 4 KiB url,
    direct 2 MiB, relay 2 MiB url, relay 2 MiB b64_json; then, per repetition, the kernel's
    cost of writing the result file (`page_cache_write_ms`, beside the relay's data)."""
    c = plan.c
    # (size, answer): "direct" is the fake itself.
    legs: list[tuple[tuple[str, str], Server, Server | None, Callable[[float], LoadSpec]]] = []
    for size in ("4 KiB", "2 MiB"):
        fake, relay = fakes[size], relays[size]
        legs.append(((size, "direct"), fake, None, partial(direct_spec, c, cap=plan.cap)))
        for answer in ("url",) if size == "4 KiB" else ("url", "b64_json"):
            legs.append(((size, answer), relay, fake,
                         partial(relay_spec, relay, c, cap=plan.cap, answer=answer)))
    results: dict[tuple[str, str], list[LoadResult]] = {key: [] for key, *_ in legs}

    def one(server: Server, upstream: Server | None, spec: LoadSpec) -> LoadResult:
        if upstream is None:
            return run_load(server.base_url, spec, server.pid, tool)
        return relay_run(server, upstream, spec, tool)

    for _key, server, upstream, make in legs:  # connections, lazy imports, statements
        one(server, upstream, make(plan.warmup))
    writes: dict[str, list[float]] = {size: [] for size in payloads}
    for _ in range(plan.reps):
        for key, server, upstream, make in legs:
            results[key].append(one(server, upstream, make(plan.duration)))
            print(f"... zero latency c={c} {' '.join(key)}: "
                  f"{ok_rate(results[key][-1]):,.1f}/s", flush=True)
        for size, payload in payloads.items():
            data_dir = relays[size].data_dir
            assert data_dir is not None
            writes[size].append(page_cache_write_ms(data_dir.parent / "page-cache-probe",
                                                    payload.data))
    for (size, answer), relayed in results.items():
        if answer == "direct":
            continue
        direct = results[(size, "direct")]
        d, r = median([ok_rate(x) for x in direct]), median([ok_rate(x) for x in relayed])
        ms = median([cpu_ms(x) for x in relayed])
        limit = CPU_MS_TARGET[f"{size} {answer}"]
        cores = "/".join(f"{median(v) or 0:.2f}" for v in (
            [x.cpu.server for x in relayed], [x.cpu.client for x in relayed],
            [x.cpu.other for x in relayed]))
        notes = [f"runs {runs(relayed)} (direct {runs(direct)})",
                 f"p50/p99 {fmt_num(median([x.p50_ms for x in relayed]), 1)}/"
                 f"{fmt_num(median([x.p99_ms for x in relayed]), 1)} ms",
                 f"fake CPU {fmt_num(median([cpu_ms(x) for x in direct]), 2)} ms/req direct",
                 f"of the CPU, the kernel's write of the result file: "
                 f"{fmt_num(median(writes[size]), 2)} ms (a fresh file written outside "
                 f"imagegate, same run)",
                 f"cores imagegate/client/other {cores}"]
        notes += [x for x in (errors_note(direct), errors_note(relayed)) if x]
        report.rows["zero"].append(Row(
            f"{size} result answered as {answer}, zero-latency upstream, c={c} (req/s)",
            fmt_num(d), fmt_num(r), _ratio(r, d), fmt_num(ms, 2),
            f"{tree_rss(relays[size].pid) / MB:,.0f}",
            target(f"CPU ≤ {limit:g} ms/req", ms, partial(operator.ge, limit)),
            "; ".join(notes)))


# -- 2. bursts


class HealthProbe:
    """`GET /healthz` on a fixed schedule (every `interval` s, a new connection each, not
    waiting for the previous answer), in a thread with its own event loop: a slow answer
    does not thin out the samples taken while the server is slow, so the p99 is honest."""

    def __init__(self, server: Server, interval: float, max_probes: int = 20_000) -> None:
        self.url = server.base_url + "/healthz"
        self.interval, self.max_probes = interval, max_probes
        self.latencies: list[float] = []
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()),
                                        name="health-probe", daemon=True)

    async def _main(self) -> None:
        timeout = aiohttp.ClientTimeout(total=30)
        connector = aiohttp.TCPConnector(limit=0, force_close=True)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            pending: set[asyncio.Task[None]] = set()
            due = time.monotonic()
            for _ in range(self.max_probes):
                if self._stop.is_set():
                    break
                task = asyncio.create_task(self._probe(session))
                pending.add(task)
                task.add_done_callback(pending.discard)
                due += self.interval
                await asyncio.sleep(max(0.0, due - time.monotonic()))
            if pending:
                await asyncio.wait(pending, timeout=35)

    async def _probe(self, session: aiohttp.ClientSession) -> None:
        t0 = time.monotonic()
        try:
            async with session.get(self.url) as resp:
                await resp.read()
                if resp.status != 200:
                    self.failures += 1
        except (aiohttp.ClientError, TimeoutError):
            self.failures += 1
        self.latencies.append(time.monotonic() - t0)

    def p99_ms(self) -> float | None:
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))] * 1000

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(40)


class RssGuard:
    """Kills the server (by PID) when its sampled RSS passes `limit`: a burst buffers 2,000
    answers of ~2.7 MiB and the machine is shared with other work."""

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


@dataclass
class BurstRun:
    direct: LoadResult
    relay: LoadResult
    peak_rss: int
    idle_rss: int
    health_p99_ms: float | None
    health_failures: int
    aborted: str | None
    direct_tcp: TcpUse | None  # the kernel's TCP counters over each run (bench/_tcp.py)
    relay_tcp: TcpUse | None


def burst_once(workdir: Path, name: str, fake: Server, plan: Plan, answer: str, probe: bool
               ) -> BurstRun:
    """`plan.burst` requests at once directly, then through a fresh imagegate (its RSS
    sampled from idle on). Every request is issued at once (concurrency = cap = burst) by
    the aiohttp client, which sends exactly that many; the duration only bounds the run."""
    spec = direct_spec(plan.burst, plan.burst_limit, plan.burst)
    with TcpWindow() as direct_tcp:
        direct = run_aiohttp(fake.base_url, spec, fake.pid)
    relay = start_relay(workdir, name, fake, log_level=plan.log_level,
                        settings=slots_for(plan.burst))
    try:
        time.sleep(1.0)
        idle = tree_rss(relay.pid)
        sampler = MemorySampler(relay.pid, None, interval=0.1)
        health = HealthProbe(relay, plan.health_interval) if probe else None
        with sampler.running(), RssGuard(relay, sampler, plan.rss_limit) as guard, \
                health or contextlib.nullcontext(), TcpWindow() as relay_tcp:
            res = run_aiohttp(relay.base_url, relay_spec(relay, plan.burst, plan.burst_limit,
                                                         plan.burst, answer), relay.pid)
        run = BurstRun(direct, res, sampler.peak().rss, idle,
                       health.p99_ms() if health else None,
                       health.failures if health else 0, guard.tripped,
                       direct_tcp.use, relay_tcp.use)
    finally:
        stop_and_remove(relay)
    print(f"... burst {name}: direct {ok(direct)} in {direct.seconds:.1f}s, relay {ok(res)} "
          f"in {res.seconds:.1f}s ({res.errors} errors), peak RSS {run.peak_rss / MB:,.0f} MB"
          + (f", /healthz p99 {fmt_num(run.health_p99_ms)} ms" if probe else "")
          + (f"; TCP: {run.relay_tcp.note(MB)}" if run.relay_tcp else ""), flush=True)
    return run


def bursts(workdir: Path, payloads: dict[str, Payload], plan: Plan, report: Report) -> None:
    fakes = {size: start_fake(workdir, f"fake-slow-{i}", plan.burst_latency, payload)
             for i, (size, payload) in enumerate(payloads.items())}
    done: dict[str, list[BurstRun]] = {size: [] for size in payloads}
    try:
        for rep in range(plan.burst_reps):  # interleaved: the sizes share the noise
            for i, size in enumerate(payloads):
                done[size].append(burst_once(workdir, f"relay-burst-{i}-{rep}", fakes[size],
                                             plan, BURST_ANSWER[size], probe=size == "2 MiB"))
    finally:
        for fake in fakes.values():
            fake.stop()
    for size, bruns in done.items():
        d = median([ok_rate(b.direct) for b in bruns])
        r = median([ok_rate(b.relay) for b in bruns])
        peak = median([b.peak_rss / MB for b in bruns]) or 0.0
        idle = median([b.idle_rss / MB for b in bruns]) or 0.0
        errors = sum(b.relay.errors + b.direct.errors for b in bruns)
        frac = r / d if r is not None and d else None
        rss_limit = BURST_RSS_TARGET_MB[size]
        targets = [target(f"≥ {BURST_FRACTION_TARGET:.0%} of direct", frac,
                          lambda v: v >= BURST_FRACTION_TARGET),
                   f"0 errors {check(errors == 0)}",
                   f"RSS ≤ {rss_limit:,.0f} MB {check(peak <= rss_limit)}"]
        notes = [f"runs {runs([b.relay for b in bruns])} (direct "
                 f"{runs([b.direct for b in bruns])})",
                 f"relay p50/p99 {fmt_num(median([b.relay.p50_ms for b in bruns]))}/"
                 f"{fmt_num(median([b.relay.p99_ms for b in bruns]))} ms",
                 f"idle RSS {idle:,.0f} MB"]
        if size == "2 MiB":
            p99 = median([b.health_p99_ms for b in bruns])
            targets.append(target(f"/healthz p99 ≤ {HEALTH_P99_TARGET_MS:g} ms", p99,
                                  lambda v: v <= HEALTH_P99_TARGET_MS))
            notes.append(f"/healthz every {plan.health_interval * 1000:g} ms: p99 "
                         f"{fmt_num(p99)} ms, {sum(b.health_failures for b in bruns)} failed")
        for who, uses in (("imagegate", [b.relay_tcp for b in bruns]),
                          ("direct", [b.direct_tcp for b in bruns])):
            known = [u for u in uses if u is not None]
            if known:
                notes.append(f"TCP over {who}'s runs: {TcpUse.total(known).note(MB)}")
        notes += [x for x in (errors_note([b.direct for b in bruns]),
                              errors_note([b.relay for b in bruns])) if x]
        notes += [b.aborted for b in bruns if b.aborted]
        report.rows["burst"].append(Row(
            f"burst: {plan.burst:,} sync requests at once, {size} result answered as "
            f"{BURST_ANSWER[size]}, upstream "
            f"{plan.burst_latency:g} s (completed/s)", fmt_num(d, 1), fmt_num(r, 1),
            _ratio(r, d), fmt_num(median([cpu_ms(b.relay) for b in bruns]), 2),
            f"{peak:,.0f}", "; ".join(targets), "; ".join(notes)))


# -- 3. both cores


def processes_option() -> str | None:
    """None when `imagegate serve` has `--processes`, else why not."""
    out = subprocess.run([_util.imagegate_exe(), "serve", "--help"], capture_output=True,
                         text=True, timeout=60, check=False)
    return None if "--processes" in out.stdout else "n/a (needs --processes)"


def both_cores(workdir: Path, fake: Server, plan: Plan, tool: Tool, report: Report) -> None:
    """Relay throughput (4 KiB, url answers) at c=64 on PostgreSQL, `--processes 1` against
    `--processes 2`, a fresh database and server per run, the two interleaved."""
    workload = (f"both cores: 4 KiB relay on PostgreSQL, c={plan.processes_c}, "
                "`--processes 2` vs 1 (req/s)")
    missing = processes_option()
    if missing is None:
        try:
            from bench_scale import pg_database

            with pg_database():
                pass
        except Exception as exc:  # the row says why, the rest of the bench goes on
            missing = f"n/a (PostgreSQL: {type(exc).__name__}: {exc})"
    if missing is not None:
        report.rows["processes"].append(Row(workload, missing, missing, "–", "–", "–",
                                            f"≥ {PROCESSES_TARGET:g}× –"))
        return
    from bench_scale import redis_server

    results: dict[int, list[LoadResult]] = {1: [], 2: []}
    rss: dict[int, list[float]] = {1: [], 2: []}
    # A private Redis when one is installed: the processes share task events and rate
    # limits, as docs/deployment.md asks of several processes (both legs get it).
    with redis_server(workdir) as redis:
        for rep, n in ((rep, n) for rep in range(plan.reps) for n in (1, 2)):
            with pg_database() as pg:
                settings = {"DATABASE_URL": pg, **({"REDIS_URL": redis} if redis else {})}
                relay = start_relay(workdir, f"relay-pg-p{n}-{rep}", fake,
                                    log_level=plan.log_level,
                                    settings=settings | slots_for(plan.processes_c),
                                    args=("--processes", str(n)))
                try:
                    relay_run(relay, fake, relay_spec(relay, plan.processes_c, plan.warmup,
                                                      plan.cap, "url"), tool)
                    results[n].append(relay_run(relay, fake, relay_spec(
                        relay, plan.processes_c, plan.duration, plan.cap, "url"), tool))
                    rss[n].append(tree_rss(relay.pid) / MB)
                finally:
                    stop_and_remove(relay)
            print(f"... processes {n}: {ok_rate(results[n][-1]):,.1f}/s", flush=True)
    if redis is None:
        report.notes.append("both cores: redis-server not installed, the processes ran "
                            "without Redis")
    one, two = (median([ok_rate(x) for x in results[n]]) for n in (1, 2))
    ratio = two / one if one and two is not None else None
    ceiling = box_ceiling(results[1], one)
    cpu1, cpu2 = (median([cpu_ms(x) for x in results[n]]) for n in (1, 2))
    report.rows["processes"].append(Row(
        workload, fmt_num(one), fmt_num(two), _ratio(two, one),
        f"{fmt_num(cpu1, 2)} / {fmt_num(cpu2, 2)}",
        f"{fmt_num(median(rss[1]))} / {fmt_num(median(rss[2]))}",
        target(f"≥ {PROCESSES_TARGET:g}×", ratio, lambda v: v >= PROCESSES_TARGET),
        "; ".join([f"runs 1: {runs(results[1])}; 2: {runs(results[2])}",
                   "peer column = --processes 1; CPU and RSS columns: 1 / 2 processes",
                   *([ceiling] if ceiling else [])]
                  + [x for x in (errors_note(results[1]), errors_note(results[2])) if x])))


def box_ceiling(single: Sequence[LoadResult], rate: float | None) -> str | None:
    """What this machine could complete at most, whatever number of processes serve: its
    cores over the CPU that every process on it (imagegate, PostgreSQL, the fake, the load
    generator, other tenants) spent per request in the single-process runs. A ratio target
    above that ceiling cannot be met on this machine, however cheap imagegate gets."""
    def ms(cores: Callable[[CpuUse], float]) -> float | None:
        """Median CPU ms per request of the processes `cores` picks out."""
        return median([cores(x.cpu) / ok_rate(x) * 1000 for x in single if ok_rate(x)])

    per = ms(lambda c: c.machine)
    if per is None or not rate:
        return None
    parts = (ms(lambda c: c.server), ms(lambda c: c.upstream),
             ms(lambda c: c.client + c.other))
    cores = psutil.cpu_count() or 1
    limit = cores * 1000 / per
    return (f"machine ceiling with --processes 1's costs: {fmt_num(per, 2)} ms of CPU per "
            f"request over all processes (imagegate {fmt_num(parts[0], 2)}, fake "
            f"{fmt_num(parts[1], 2)}, load generator + PostgreSQL + the rest "
            f"{fmt_num(parts[2], 2)}), so {cores} cores complete at most {fmt_num(limit)}/s"
            f" = {limit / rate:.2f}× one process")


# -- 4. polling and the framework floor


def polling(workdir: Path, relay: Server, plan: Plan, tool: Tool, report: Report) -> None:
    """`GET /v1/tasks/{id}` over 256 finished relay tasks and `GET /healthz` at c=64, each
    interleaved with the bare-uvicorn peer (bench_core.measure)."""
    assert relay.db_path is not None and relay.api_key
    ids = finished_task_ids(relay.db_path, 256)
    if not ids:
        report.notes.append("polling skipped: no finished tasks to poll")
        return
    c = plan.poll_c
    bare = start_bare(workdir)
    try:
        specs = {
            "bare": LoadSpec("GET", ("/v1/tasks/x",), c, 0, 1_000_000),
            "poll": LoadSpec("GET", tuple(f"/v1/tasks/{i}" for i in ids), c, 0, 1_000_000,
                             headers={"Authorization": f"Bearer {relay.api_key}"}),
            "health": LoadSpec("GET", ("/healthz",), c, 0, 1_000_000),
        }
        servers = {"bare": bare, "poll": relay, "health": relay}
        res = dict(zip(specs, measure([(servers[k], partial(with_duration, s))
                                       for k, s in specs.items()], plan, tool), strict=True))
    finally:
        bare.stop()
    peer = median([ok_rate(x) for x in res["bare"]])
    for key, workload, tgt in (
        ("poll", f"GET /v1/tasks/{{id}}, c={c}, {len(ids)} finished relay tasks, SQLite "
                 "(req/s; peer: bare uvicorn)", f"≥ {POLL_TARGET:,.0f}/s"),
        ("health", f"GET /healthz, c={c} (req/s; peer: bare uvicorn)",
         f"≥ {HEALTHZ_FRACTION_TARGET:.0%} of peer"),
    ):
        value = median([ok_rate(x) for x in res[key]])
        good = (value or 0) >= POLL_TARGET if key == "poll" else \
            bool(value and peer and value / peer >= HEALTHZ_FRACTION_TARGET)
        notes = [f"runs {runs(res[key])} (peer {runs(res['bare'])})",
                 f"p50/p99 {fmt_num(median([x.p50_ms for x in res[key]]), 1)}/"
                 f"{fmt_num(median([x.p99_ms for x in res[key]]), 1)} ms"]
        notes += [x for x in (errors_note(res[key]),) if x]
        report.rows["poll"].append(Row(
            workload, fmt_num(peer), fmt_num(value), _ratio(value, peer),
            fmt_num(median([cpu_ms(x) for x in res[key]]), 3),
            f"{tree_rss(relay.pid) / MB:,.0f}", f"{tgt} {check(good)}", "; ".join(notes)))


# -- 5. async tasks in flight


def upstream_connections(server: Server, port: int) -> int:
    """Established TCP connections from imagegate's process tree to the fake's port."""
    n = 0
    for proc in _util._tree(server.pid):
        with contextlib.suppress(psutil.Error):
            n += sum(1 for conn in proc.net_connections(kind="tcp")
                     if conn.raddr and conn.raddr.port == port
                     and conn.status == psutil.CONN_ESTABLISHED)
    return n


def inflight(workdir: Path, adapter: str, small: Payload, plan: Plan, tool: Tool,
             report: Report) -> None:
    """Submit `plan.inflight_tasks` async tasks (at most `inflight_submit_limit` s) against a
    fake with `inflight_latency` s, then poll them while they are held; RSS sampled from
    idle on."""
    kind = "dimilinks" if adapter == "dimilinks" else "openai"
    fake = start_fake(workdir, f"fake-held-{adapter}", plan.inflight_latency,
                      None if kind == "dimilinks" else small, kind)
    channel: dict[str, int | float] = {}
    if adapter == "dimilinks" and plan.inflight_poll_interval is not None:
        channel["poll_interval"] = plan.inflight_poll_interval
    relay = start_relay(workdir, f"relay-held-{adapter}", fake, log_level=plan.log_level,
                        adapter=adapter, settings=slots_for(plan.inflight_tasks),
                        channel=channel)
    assert relay.db_path is not None and relay.api_key
    try:
        time.sleep(1.0)
        idle = tree_rss(relay.pid)
        sampler = MemorySampler(relay.pid, relay.db_path, interval=0.25, counts_every=8)
        with sampler.running():
            submit = run_aiohttp(relay.base_url, relay_spec(
                relay, 64, plan.inflight_submit_limit, plan.inflight_tasks, "url",
                path=GEN_PATH + "?async=true", expect=(202,), collect="task_id"), relay.pid)
            # Until every accepted task is in progress (held upstream), at most `hold_wait`
            # seconds: the first ones finish `inflight_latency` s after they started.
            hold_until = time.monotonic() + plan.inflight_hold_wait
            while time.monotonic() < hold_until:
                if status_counts(relay.db_path).get("in_progress", 0) >= ok(submit):
                    break
                time.sleep(0.5)
            paths = tuple(f"/v1/tasks/{i}" for i in submit.ids[:256])
            polls = [run_load(relay.base_url, LoadSpec(
                "GET", paths, plan.poll_c, plan.duration, 1_000_000,
                headers={"Authorization": f"Bearer {relay.api_key}"}), relay.pid, tool)
                for _ in range(plan.reps if paths else 0)]
            connections = upstream_connections(relay, fake.port)
        counts = status_counts(relay.db_path)
    finally:
        stop_and_remove(relay)
        fake.stop()
    peak = sampler.peak().rss
    held = max((s.counts or {}).get("in_progress", 0) for s in sampler.samples)
    growth = (peak - idle) / MB
    rate = median([ok_rate(x) for x in polls])
    targets = [f"RSS ≤ idle + {INFLIGHT_RSS_TARGET_MB:g} MB "
               f"{check(growth <= INFLIGHT_RSS_TARGET_MB)}",
               target(f"polls ≥ {INFLIGHT_POLL_TARGET:,.0f}/s", rate,
                      lambda v: v >= INFLIGHT_POLL_TARGET),
               f"{plan.inflight_tasks:,} held {check(held >= plan.inflight_tasks)}"]
    notes = [f"submitted {ok(submit):,} in {submit.seconds:.1f}s ({ok_rate(submit):,.0f}/s)",
             f"most in_progress seen {held:,}", f"at the end {counts}",
             f"upstream connections open {connections:,}",
             f"poll runs {runs(polls)}",
             f"{(peak - idle) / max(1, held) / 1024:,.1f} KB per held task"]
    if adapter == "dimilinks":
        notes.append(f"channel poll_interval {plan.inflight_poll_interval or 'default'}")
    notes += [x for x in (errors_note([submit]), errors_note(polls)) if x]
    print(f"... in flight {adapter}: held {held:,}, peak {peak / MB:,.0f} MB (idle "
          f"{idle / MB:,.0f}), polls {fmt_num(rate)}/s", flush=True)
    report.rows["inflight"].append(Row(
        f"{plan.inflight_tasks:,} async tasks held on a {plan.inflight_latency:g} s upstream, "
        f"`{adapter}` adapter (peer: idle RSS MB; imagegate: polls/s, c={plan.poll_c})",
        f"{idle / MB:,.0f} MB idle", fmt_num(rate), f"+{growth:,.0f} MB",
        fmt_num(median([cpu_ms(x) for x in polls]), 3), f"{idle / MB:,.0f} → {peak / MB:,.0f}",
        "; ".join(targets), "; ".join(notes)))


# --------------------------------------------------------------------------- profile


def profile_relay(relays: dict[str, Server], plan: Plan, tool: Tool, py_spy: str,
                  out_dir: Path) -> list[str]:
    """Extra, unreported relay runs at c=16 under py-spy (all threads: decodes run in worker
    threads): 4 KiB url and 2 MiB b64_json."""
    out_dir.mkdir(parents=True, exist_ok=True)
    seconds = 8.0
    blocks = []
    for size, answer in (("4 KiB", "url"), ("2 MiB", "b64_json")):
        relay = relays[size]
        slug = f"relay-{size.replace(' ', '')}-{answer}"
        out = out_dir / f"{slug}.speedscope.json"
        rec = Recording(py_spy, relay.pid, seconds, out)
        time.sleep(0.5)  # let py-spy attach before the load starts
        res = run_load(relay.base_url, relay_spec(relay, plan.c, seconds + 2, plan.cap, answer),
                       relay.pid, tool)
        error = rec.finish()
        blocks.append(f"### profile: {slug}\n{error}" if error else render(
            f"{slug} c={plan.c} ({res.rate:,.1f} req/s while profiled)", out, summarize(out)))
    return blocks


# --------------------------------------------------------------------------- output


def commit() -> str:
    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], capture_output=True, text=True, check=False,
                             cwd=Path(__file__).resolve().parent, timeout=30)
        return out.stdout.strip()

    return (git("rev-parse", "--short", "HEAD") or "unknown") + (
        " (with uncommitted changes)" if git("status", "--porcelain") else "")


def header(plan: Plan, tool: Tool, load: str) -> str:
    return (f"### Issue 12 relay bench — {time.strftime('%Y-%m-%d')}, "
            f"{psutil.cpu_count()} CPUs ({platform.machine()}, "
            f"{psutil.virtual_memory().total / 2**30:.0f} GiB), load average at start {load}, "
            f"commit {commit()}, {'quick' if plan.quick else 'full'} run: {plan.reps} "
            f"interleaved run(s) of {plan.duration:g} s per figure, {plan.burst_reps} burst "
            f"run(s); medians; load generator "
            f"{'wrk (1 thread)' if tool == 'wrk' else 'aiohttp'} (bursts and submits: aiohttp)")


def table(report: Report) -> str:
    lines = ["| workload | direct / peer | imagegate | ratio | imagegate CPU ms/req | "
             "imagegate RSS MB | target | notes |", "|---|---:|---:|---:|---:|---:|---|---|"]
    for section in SECTIONS:
        for r in report.rows[section]:
            lines.append(f"| {r.workload} | {r.peer} | {r.imagegate} | {r.ratio} | {r.cpu} | "
                         f"{r.rss} | {r.target} | {r.notes} |")
    return "\n".join(lines)


def setup_notes(plan: Plan, payloads: dict[str, Payload]) -> list[str]:
    sizes = ", ".join(f"{p.label}: {len(p.data):,} bytes" for p in payloads.values())
    raised = [what for what, n in (("bursts", plan.burst), ("held tasks", plan.inflight_tasks))
              if slots_for(n)]
    return [
        f"payloads: 1024×1024 PNGs ({sizes}); the fake answers base64 (gpt-image-1), so "
        "direct answers carry the base64; imagegate answers as the row says",
        "channels have no `concurrency` (the defaults); "
        + (f"{' and '.join(raised)} run with IMAGEGATE_WORKER_CONCURRENCY={MANY_SLOTS:,} "
           "(the default worker_concurrency holds fewer), everything else with the defaults"
           if raised else "worker slots are the defaults (they hold every figure's tasks)"),
        "CPU ms/req = imagegate's process-tree CPU seconds over the run / completed requests; "
        "RSS = imagegate's process tree (MB = 10^6 bytes; bursts: peak)",
        "every process (fakes, imagegate, load generator, PostgreSQL) shares the same cores",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 short run per figure")
    parser.add_argument("--aiohttp", action="store_true", help="never use wrk")
    parser.add_argument("--reps", type=int, help="repetitions (default 3; quick 1)")
    parser.add_argument("--duration", type=float, help="seconds per run (default 5; quick 2)")
    parser.add_argument("--burst", type=int, help="concurrent requests (default 2000)")
    parser.add_argument("--burst-reps", type=int, help="burst repetitions (default 3; quick 1)")
    parser.add_argument("--burst-latency", type=float, default=2.0)
    parser.add_argument("--inflight-tasks", type=int, help="default 10000; quick 3000")
    parser.add_argument("--inflight-latency", type=float, default=60.0)
    parser.add_argument("--inflight-poll-interval", type=float,
                        help="the dimilinks channel's poll_interval (default: the channel "
                        "default)")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated sections to run (of {', '.join(SECTIONS)})")
    parser.add_argument("--rss-limit-mb", type=int, default=DEFAULT_RSS_LIMIT_MB)
    parser.add_argument("--log-level", default="warning", help="imagegate's log level")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, dbs)")
    parser.add_argument("--profile-dir", type=Path,
                        help="also profile the relay with py-spy (speedscope files here)")
    parser.add_argument("--py-spy", default=shutil.which("py-spy"), help="py-spy executable")
    args = parser.parse_args(argv)
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    if not only <= set(SECTIONS):
        parser.error(f"--only: unknown {sorted(only - set(SECTIONS))}")
    if args.profile_dir is not None and not args.py_spy:
        parser.error("--profile-dir needs py-spy (on PATH or --py-spy PATH)")
    quick = bool(args.quick)
    plan = Plan(
        quick=quick,
        reps=args.reps or (1 if quick else 3),
        duration=args.duration or (2.0 if quick else 5.0),
        warmup=1.0,
        c=16,
        cap=100_000,
        burst=args.burst or 2000,
        burst_latency=args.burst_latency,
        burst_reps=args.burst_reps or (1 if quick else 3),
        burst_limit=300.0,
        health_interval=0.05,
        processes_c=64,
        poll_c=64,
        inflight_tasks=args.inflight_tasks or (3000 if quick else 10_000),
        inflight_latency=args.inflight_latency,
        inflight_submit_limit=120.0,
        inflight_hold_wait=20.0,
        inflight_poll_interval=args.inflight_poll_interval,
        log_level=args.log_level,
        rss_limit=args.rss_limit_mb * MB,
    )
    tool: Tool = "wrk" if wrk_path() and not args.aiohttp else "aiohttp"

    def on_term(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    atexit.register(stop_all)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    workdir = Path(tempfile.mkdtemp(prefix="imagegate-bench-relay-"))
    started = time.monotonic()
    report = Report()
    try:
        payloads = {
            "4 KiB": make_png(workdir / "small.png", 4 * KiB, bands=1, compression=9),
            "2 MiB": make_png(workdir / "large.png", 2 * MiB, bands=3, compression=1),
        }
        report.notes += setup_notes(plan, payloads)
        print(header(plan, tool, load), flush=True)
        fakes: dict[str, Server] = {}
        if only & {"zero", "poll", "processes"}:
            fakes = {size: start_fake(workdir, f"fake-zero-{i}", 0.0, payload)
                     for i, (size, payload) in enumerate(payloads.items())}
        if only & {"zero", "poll"}:
            relays = {size: start_relay(workdir, f"relay-{i}", fakes[size],
                                        log_level=plan.log_level)
                      for i, size in enumerate(payloads)}
            for size, relay in relays.items():
                png = payloads[size].data
                print(f"- {size} direct: "
                      f"{check_payload(fakes[size].base_url, direct_spec(1, 1, 1), png)}")
                for answer in ("url", "b64_json"):
                    spec = relay_spec(relay, 1, 1, 1, answer)
                    print(f"- {size} relay: {check_payload(relay.base_url, spec, png)}",
                          flush=True)
            try:
                if "zero" in only:
                    zero_latency(fakes, relays, plan, tool, report, payloads)
                if "poll" in only:
                    polling(workdir, relays["4 KiB"], plan, tool, report)
                if args.profile_dir is not None:
                    report.profiles = profile_relay(relays, plan, tool, str(args.py_spy),
                                                    args.profile_dir.resolve())
            finally:
                for relay in relays.values():
                    stop_and_remove(relay)
            print(f"... zero-latency and polling done ({time.monotonic() - started:.0f}s)",
                  flush=True)
        if "processes" in only:
            both_cores(workdir, fakes["4 KiB"], plan, tool, report)
        for fake in fakes.values():
            fake.stop()
        if "burst" in only:
            bursts(workdir, payloads, plan, report)
            print(f"... bursts done ({time.monotonic() - started:.0f}s)", flush=True)
        if "inflight" in only:
            for adapter in ("dimilinks", "openai_compatible"):
                inflight(workdir, adapter, payloads["4 KiB"], plan, tool, report)
    finally:
        finish(workdir, args.keep)
    print()
    print(header(plan, tool, load))
    print()
    print(table(report))
    print()
    for note in [*report.notes, f"took {time.monotonic() - started:.0f} s"]:
        print(f"- {note}")
    for block in report.profiles:
        print()
        print(block)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_fake":
        sys.exit(fake_main(sys.argv[2:]))
    sys.exit(main())
