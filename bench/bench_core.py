"""Core throughput and memory benchmark of `imagegate serve` (embedded: SQLite, in-process
workers, sandbox provider). Prints one markdown table; see bench/README.md for what each
figure means. Not a test: nothing here is asserted.

    .venv/bin/python bench/bench_core.py            # full: 3 repetitions, medians (~10 min)
    .venv/bin/python bench/bench_core.py --quick    # smoke run (~2 min)

Servers run as subprocesses on free 127.0.0.1 ports with fresh data dirs under a temp dir, and
are always stopped by PID at the end (also on Ctrl-C).
"""

from __future__ import annotations

import argparse
import atexit
import itertools
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Protocol

import psutil
from _load import BODY_COUNTER, LoadResult, LoadSpec, Tool, run_aiohttp, run_load, wrk_path
from _profile import Recording, render, summarize
from _util import (
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
    tree_rss,
)

MB = 1024 * 1024
POLL_TARGET = 3000.0
RSS_TARGET_MB = 500.0
_salt = itertools.count(1)


@dataclass(frozen=True)
class Plan:
    reps: int
    duration: float  # seconds per measured run (wrk needs whole seconds)
    warmup: float
    sync_concurrency: tuple[int, ...]
    async_concurrency: tuple[int, ...]
    poll_concurrency: tuple[int, ...]
    sync_cap: int  # requests per run, at most (each one is a rendered image on disk)
    async_cap: int
    poll_cap: int
    poll_ids: int
    render_images: int
    inflight_tasks: int
    inflight_latency: float
    inflight_hold: float
    inflight_long_latency: float  # the run that waits until every task is in progress
    inflight_submit_concurrency: int
    inflight_submit_limit: float  # seconds the submitter may take, at most
    profile_seconds: float

    @staticmethod
    def for_args(args: argparse.Namespace) -> Plan:
        quick = bool(args.quick)
        return Plan(
            reps=args.reps or (1 if quick else 3),
            duration=args.duration or (2.0 if quick else 5.0),
            warmup=1.0,
            sync_concurrency=(1, 4, 16),
            async_concurrency=(16, 64),
            poll_concurrency=(32, 64),
            sync_cap=2_000,
            async_cap=1_500 if quick else 8_000,
            poll_cap=200_000,
            poll_ids=256,
            render_images=16 if quick else 60,
            inflight_tasks=args.inflight_tasks or (500 if quick else 5_000),
            inflight_latency=args.inflight_latency or (5.0 if quick else 30.0),
            inflight_hold=args.inflight_hold or (7.0 if quick else 35.0),
            inflight_long_latency=60.0 if quick else 200.0,
            inflight_submit_concurrency=64,
            inflight_submit_limit=300.0,
            profile_seconds=4.0 if quick else 8.0,
        )


@dataclass
class Row:
    metric: str
    client: str
    runs: list[float]
    unit: str
    p50: float | None = None
    p99: float | None = None
    target: str = ""
    baseline: str = ""
    cpu: CpuUse | None = None
    note: str = ""
    digits: int = 0

    @property
    def value(self) -> float | None:
        return median(self.runs)


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    profiles: list[str] = field(default_factory=list)


def _median_cpu(results: Sequence[LoadResult]) -> CpuUse:
    def med(get: Callable[[CpuUse], float]) -> float:
        return median([get(r.cpu) for r in results]) or 0.0

    return CpuUse(med(lambda c: c.server), med(lambda c: c.client), med(lambda c: c.other))


def load_row(metric: str, results: Sequence[LoadResult], unit: str, report: Report, *,
             target: str = "", baseline: str = "", digits: int = 0) -> Row:
    errors = sum(r.errors for r in results)
    capped = sum(r.capped for r in results)
    notes = []
    if errors:
        first = next((r.first_error for r in results if r.first_error), "")
        notes.append(f"{errors} errors")
        report.notes.append(f"{metric}: {errors} errors; first: {first}")
    if capped:
        notes.append(f"{capped} run(s) hit the request cap")
    return Row(metric, results[0].tool, [r.rate for r in results], unit,
               p50=median([r.p50_ms for r in results]), p99=median([r.p99_ms for r in results]),
               target=target, baseline=baseline, cpu=_median_cpu(results),
               note="; ".join(notes), digits=digits)


def ratio(value: float | None, base: float | None, label: str) -> str:
    if value is None or not base:
        return ""
    return f"{value / base:.2f}× {label}"


def met(value: float | None, ok: bool) -> str:
    return "" if value is None else (" ✓" if ok else " ✗")


# -- request shapes
def _auth(server: Server) -> dict[str, str]:
    assert server.api_key
    return {"Authorization": f"Bearer {server.api_key}", "Content-Type": "application/json"}


def gen_body() -> str:
    # Distinct prompts per request: identical ones could come out of libvips' operation cache.
    salt = next(_salt)
    return json.dumps({"prompt": f"a lighthouse on a cliff at dawn, bench {salt}-{BODY_COUNTER}",
                       "size": "1024x1024"})


def sync_spec(server: Server, c: int, plan: Plan, duration: float) -> LoadSpec:
    return LoadSpec("POST", ("/v1/images/generations",), c, duration, plan.sync_cap,
                    headers=_auth(server), body=gen_body(), expect=(200,))


def async_spec(server: Server, c: int, cap: int, duration: float) -> LoadSpec:
    return LoadSpec("POST", ("/v1/images/generations?async=true",), c, duration, cap,
                    headers=_auth(server), body=gen_body(), expect=(202,))


class Timing(Protocol):
    """What `measure` needs of a plan (bench_relay.py passes its own)."""

    @property
    def reps(self) -> int: ...
    @property
    def warmup(self) -> float: ...
    @property
    def duration(self) -> float: ...


def measure(pairs: Sequence[tuple[Server, Callable[[float], LoadSpec]]], plan: Timing,
            tool: Tool) -> list[list[LoadResult]]:
    """Warm each up once, then run the repetitions interleaved (a, b, a, b, ...) so that a
    noisy neighbour hurts every series alike rather than one of them."""
    for server, make in pairs:
        run_load(server.base_url, make(plan.warmup), server.pid, tool)
    results: list[list[LoadResult]] = [[] for _ in pairs]
    for _ in range(plan.reps):
        for i, (server, make) in enumerate(pairs):
            results[i].append(run_load(server.base_url, make(plan.duration), server.pid, tool))
    return results


# -- the phases
def direct_render(n: int, threads: int) -> float:
    """Images/s of the sandbox renderer called directly (no HTTP, no database)."""
    from concurrent.futures import ThreadPoolExecutor

    from imagegate.domain.catalog import load_catalog
    from imagegate.domain.normalize import normalize
    from imagegate.providers.sandbox import render_image

    catalog = load_catalog(None)
    requests = [normalize(json.loads(gen_body().replace(BODY_COUNTER, str(i))), catalog)
                for i in range(n + 1)]
    render_image(requests[-1], 0)  # fonts, libvips start-up
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda r: render_image(r, 0), requests[:n]))
    return n / (time.perf_counter() - started)


def phase_core(workdir: Path, bare: Server, plan: Plan, tool: Tool, settings: dict[str, str],
               report: Report, profile: tuple[str, Path] | None) -> dict[str, float | None]:
    """Direct rendering, then sync generations and polling against one server (latency 0);
    polling interleaved with the bare-uvicorn peer."""
    base: dict[str, float | None] = {}
    render1 = [direct_render(plan.render_images, 1) for _ in range(plan.reps)]
    render2 = [direct_render(plan.render_images, 2) for _ in range(plan.reps)]
    r1, r2 = median(render1), median(render2)
    report.rows.append(Row("direct render_image 1024² png, 1 thread (no HTTP, no DB)",
                           "in-process", render1, "img/s", digits=1,
                           p50=1000 / r1 if r1 else None, note="p50 = ms per image"))
    report.rows.append(Row("direct render_image 1024² png, 2 threads", "in-process", render2,
                           "img/s", digits=1))

    server = start_imagegate(workdir, "core", settings)
    try:
        for c in plan.sync_concurrency:
            [res] = measure([(server, partial(sync_spec, server, c, plan))], plan, tool)
            report.rows.append(load_row(
                f"sync generations/s, c={c}", res, "img/s", report, digits=1,
                baseline=ratio(median([r.rate for r in res]), r1 if c == 1 else r2,
                               "direct render" + (" 1 thr" if c == 1 else " 2 thr"))))

        ids = _finished_ids(server, plan.poll_ids)
        if not ids:
            report.notes.append("polling skipped: no finished tasks to poll")
        poll_paths = tuple(f"/v1/tasks/{i}" for i in ids)
        for c in plan.poll_concurrency if ids else ():
            bare_get = LoadSpec("GET", ("/v1/tasks/x",), c, 0, plan.poll_cap)
            poll = LoadSpec("GET", poll_paths, c, 0, plan.poll_cap, headers=_auth(server))
            health = LoadSpec("GET", ("/healthz",), c, 0, plan.poll_cap)
            pairs: list[tuple[Server, Callable[[float], LoadSpec]]] = [
                (bare, partial(with_duration, bare_get)),
                (server, partial(with_duration, poll)),
            ]
            if c == max(plan.poll_concurrency):
                pairs.append((server, partial(with_duration, health)))
            results = measure(pairs, plan, tool)
            b = load_row(f"bare uvicorn GET (peer ceiling), c={c}", results[0], "req/s", report)
            base[f"bare_get_{c}"] = b.value
            p = load_row(f"GET /v1/tasks/{{id}} polls/s, c={c} ({len(ids)} finished ids)",
                         results[1], "req/s", report,
                         target=f"≥ {POLL_TARGET:,.0f}",
                         baseline=ratio(median([r.rate for r in results[1]]), b.value,
                                        "bare uvicorn"))
            p.target += met(p.value, (p.value or 0) >= POLL_TARGET)
            report.rows += [b, p]
            if len(results) > 2:
                h = load_row(f"GET /healthz (imagegate framework floor, no DB), c={c}",
                             results[2], "req/s", report,
                             baseline=ratio(median([r.rate for r in results[2]]), b.value,
                                            "bare uvicorn"))
                report.rows.append(h)

        if profile is not None:
            _profile_runs(server, plan, tool, poll_paths, report, profile)

    finally:
        stopped = server.stop()
        report.notes.append(f"core server stopped in {stopped:.1f}s (SIGTERM, graceful)")
    return base


def with_duration(spec: LoadSpec, duration: float) -> LoadSpec:
    return replace(spec, duration=duration)


def _db(server: Server) -> Path:
    assert server.db_path is not None
    return server.db_path


def _finished_ids(server: Server, limit: int) -> list[str]:
    return finished_task_ids(_db(server), limit)


def _profile_runs(server: Server, plan: Plan, tool: Tool, poll_paths: tuple[str, ...],
                  report: Report, profile: tuple[str, Path]) -> None:
    """Extra (unreported) runs under py-spy: sync c=16 (all threads: rendering happens in
    threads, outside the GIL) and polling c=64, all threads and GIL holder only."""
    py_spy, out_dir = profile
    out_dir.mkdir(parents=True, exist_ok=True)
    seconds = plan.profile_seconds + 2
    runs: list[tuple[str, str, LoadSpec, bool]] = [
        ("sync-c16", "sync generations c=16", sync_spec(server, 16, plan, seconds), False),
    ]
    if poll_paths:
        poll = LoadSpec("GET", poll_paths, 64, seconds, plan.poll_cap, headers=_auth(server))
        runs += [("poll-c64", "GET /v1/tasks/{id} c=64", poll, False),
                 ("poll-c64-gil", "GET /v1/tasks/{id} c=64, GIL holder only", poll, True)]
    for slug, title, spec, gil in runs:
        _wait_drained(server, 30.0)  # nothing left over from the previous run
        out = out_dir / f"{slug}.speedscope.json"
        rec = Recording(py_spy, server.pid, plan.profile_seconds, out, gil=gil)
        time.sleep(0.5)  # let py-spy attach before the load starts
        res = run_load(server.base_url, spec, server.pid, tool)
        error = rec.finish()
        if error:
            report.profiles.append(f"### profile: {title}\n{error}")
            continue
        report.profiles.append(render(f"{title} ({res.rate:,.0f} req/s while profiled)", out,
                                      summarize(out), gil=gil))


def phase_async(workdir: Path, bare: Server, plan: Plan, tool: Tool, settings: dict[str, str],
                report: Report, base: dict[str, float | None], *, workers: bool) -> None:
    """Async submits. Each repetition gets a fresh server: with workers on, a run leaves a
    backlog the workers keep rendering, which would slow every later run (and the peer)."""
    env = settings if workers else settings | {"RUN_WORKERS": "false"}
    concurrencies = plan.async_concurrency if workers else (max(plan.async_concurrency),)
    for c in concurrencies:
        # The peer stores nothing, so only the time bounds it (plus the generous poll cap).
        bare_post = LoadSpec("POST", ("/v1/images/generations?async=true",), c, 0,
                             plan.poll_cap, headers={"Content-Type": "application/json"},
                             body=gen_body(), expect=(202,))
        if workers:
            run_load(bare.base_url, with_duration(bare_post, plan.warmup), bare.pid, tool)
        bare_runs: list[LoadResult] = []
        runs: list[LoadResult] = []
        for rep in range(plan.reps):
            server = start_imagegate(workdir, f"async-{'on' if workers else 'off'}-c{c}-{rep}",
                                     env)
            try:
                # Warm up (first requests compile statements, import lazily), then let the
                # workers finish those few tasks before measuring.
                run_load(server.base_url, async_spec(server, c, 50, plan.warmup), server.pid,
                         tool)
                if workers:
                    _wait_drained(server, 30.0)
                    bare_runs.append(run_load(bare.base_url, with_duration(bare_post,
                                                                            plan.duration),
                                              bare.pid, tool))
                runs.append(run_load(server.base_url,
                                     async_spec(server, c, plan.async_cap, plan.duration),
                                     server.pid, tool))
            finally:
                server.stop()
                if server.data_dir is not None:
                    shutil.rmtree(server.data_dir, ignore_errors=True)
        if bare_runs:
            b = load_row(f"bare uvicorn POST (peer ceiling), c={c}", bare_runs, "req/s", report)
            base[f"bare_post_{c}"] = b.value
            report.rows.append(b)
        label = "workers on" if workers else "workers off: API + insert only"
        report.rows.append(load_row(
            f"async submits/s ({label}), c={c}", runs, "req/s", report,
            baseline=ratio(median([r.rate for r in runs]), base.get(f"bare_post_{c}"),
                           "bare uvicorn")))


def _wait_drained(server: Server, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = status_counts(_db(server))
        if not counts.get("queued") and not counts.get("in_progress"):
            return
        time.sleep(0.2)


@dataclass(frozen=True)
class InflightRun:
    latency: float
    worker_concurrency: int | None  # None: the default (32)
    hold: float  # seconds of sampling after the submits
    until_all: bool = False  # keep sampling (up to `hold`) until every task is in progress


def inflight_runs(plan: Plan) -> list[InflightRun]:
    n = max(1, plan.inflight_tasks)
    return [
        InflightRun(plan.inflight_latency, None, plan.inflight_hold),
        InflightRun(plan.inflight_latency, n, plan.inflight_hold),
        # With latency 30 s the first tasks finish before the last are claimed (claims run at
        # render speed), so a third run makes the latency long enough for all N to be in
        # progress at once, and samples until they are.
        InflightRun(plan.inflight_long_latency, n, plan.inflight_long_latency - 10,
                    until_all=True),
    ]


def phase_inflight(workdir: Path, plan: Plan, settings: dict[str, str], report: Report,
                   run: InflightRun) -> None:
    concurrency = run.worker_concurrency
    label = f"worker concurrency {concurrency}" if concurrency else "default worker concurrency"
    name = f"inflight-{concurrency or 'default'}-{run.latency:g}s"
    env = settings | {"SANDBOX_LATENCY": f"{run.latency:g}"}
    if concurrency:
        env["WORKER_CONCURRENCY"] = str(concurrency)
    server = start_imagegate(workdir, name, env)
    try:
        time.sleep(1.0)
        idle = tree_rss(server.pid)
        sampler = MemorySampler(server.pid, _db(server))
        spec = LoadSpec("POST", ("/v1/images/generations?async=true",),
                        plan.inflight_submit_concurrency, plan.inflight_submit_limit,
                        plan.inflight_tasks, headers=_auth(server), body=gen_body(),
                        expect=(202,))
        with sampler.running():
            submit = run_aiohttp(server.base_url, spec, server.pid)
            submit_end = sampler.samples[-1].t if sampler.samples else 0.0
            hold_until = time.monotonic() + run.hold
            all_since: float | None = None
            while time.monotonic() < hold_until:
                time.sleep(0.5)
                if not run.until_all:
                    continue
                running = (sampler.latest_counts() or {}).get("in_progress", 0)
                if running >= submit.requests and all_since is None:
                    all_since = time.monotonic()
                if all_since is not None and time.monotonic() - all_since > 3:
                    break  # a few samples with everything in flight are enough
        final = status_counts(_db(server))
    finally:
        stopped = server.stop()
    peak = sampler.peak()
    at_peak = sampler.counts_near(peak.t) or {}
    end_of_submit = min(sampler.samples, key=lambda s: abs(s.t - submit_end))
    max_running = max((s.counts or {}).get("in_progress", 0) for s in sampler.samples)
    rising = peak.t >= sampler.samples[-1].t - 1.0
    peak_mb = peak.rss / MB
    metric = (f"{plan.inflight_tasks:,} async tasks held, latency {run.latency:g}s, "
              f"{label}: peak RSS")
    notes = [f"at peak (t={peak.t:.0f}s): in_progress {at_peak.get('in_progress', 0)}, "
             f"queued {at_peak.get('queued', 0)}, succeeded {at_peak.get('succeeded', 0)}",
             f"max in_progress seen {max_running}"]
    if rising:
        notes.append("RSS still rising when sampling stopped")
    if concurrency and max_running:
        # Rough: RSS above idle over the most tasks seen in progress at once.
        notes.append(f"≈ {(peak.rss - idle) / max_running / 1024:,.0f} KB above idle per "
                     "in-progress task")
    report.rows.append(Row(
        metric, "aiohttp", [peak_mb], "MB",
        target=f"< {RSS_TARGET_MB:,.0f} MB" + met(peak_mb, peak_mb < RSS_TARGET_MB),
        baseline=f"{peak.rss / idle:.1f}× idle ({idle / MB:,.0f} MB)" if idle else "",
        cpu=submit.cpu, note="; ".join(notes),
    ))
    report.notes.append(
        f"{metric}: submitted {submit.requests:,} in {submit.seconds:.1f}s "
        f"({submit.rate:,.0f}/s, p50 {fmt_num(submit.p50_ms, 1)} ms, p99 "
        f"{fmt_num(submit.p99_ms, 1)} ms, {submit.errors} errors; CPU column = during submit); "
        f"RSS at end of submit {end_of_submit.rss / MB:,.0f} MB (t={end_of_submit.t:.0f}s); "
        f"{len(sampler.samples)} RSS samples over {sampler.samples[-1].t:.0f}s; table when "
        f"stopped: {final}; stop took {stopped:.1f}s")
    if submit.first_error:
        report.notes.append(f"{metric}: first submit error: {submit.first_error}")


# -- output
def table(report: Report) -> str:
    head = ("| metric | client | value (median) | runs | p50 ms | p99 ms | target "
            "| vs baseline | CPU cores srv/cli/other | notes |")
    lines = [head, "|" + "---|" * 10]
    for r in report.rows:
        runs = ", ".join(fmt_num(v, r.digits) for v in r.runs) if len(r.runs) > 1 else ""
        cpu = (f"{r.cpu.server:.2f}/{r.cpu.client:.2f}/{r.cpu.other:.2f}"
               if r.cpu is not None else "")
        lines.append(
            f"| {r.metric} | {r.client} | {fmt_num(r.value, r.digits)} {r.unit} | {runs} | "
            f"{fmt_num(r.p50, 1)} | {fmt_num(r.p99, 1)} | {r.target} | {r.baseline} | {cpu} | "
            f"{r.note} |")
    return "\n".join(lines)


def describe_machine(tool: Tool, plan: Plan, args: argparse.Namespace) -> str:
    wrk = wrk_path()
    wrk_version = ""
    if wrk:
        out = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False)
        wrk_version = (out.stdout or out.stderr).splitlines()[0] if (out.stdout or out.stderr) \
            else ""
    cpu = platform.processor() or platform.machine()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"- machine: {psutil.cpu_count()} logical CPUs ({cpu}), "
            f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM, load average at start {load}\n"
            f"- python {platform.python_version()}; load generator: "
            f"{'wrk (' + wrk_version + ', 1 thread)' if tool == 'wrk' else 'aiohttp (own process)'}"
            f"{'' if tool == 'wrk' else ' — wrk not found' if not wrk else ' (forced)'}; "
            "in-flight submits always use the aiohttp client (exact count)\n"
            f"- mode: {'quick' if args.quick else 'full'}: {plan.reps} repetition(s) of "
            f"{plan.duration:g}s per throughput figure (interleaved with the peer), medians")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short smoke run (1 repetition)")
    parser.add_argument("--aiohttp", action="store_true",
                        help="use the aiohttp client even when wrk is installed")
    parser.add_argument("--reps", type=int, help="repetitions per figure (default 3; quick 1)")
    parser.add_argument("--duration", type=float, help="seconds per run (default 5; quick 2)")
    parser.add_argument("--inflight-tasks", type=int, help="default 5000; quick 500")
    parser.add_argument("--inflight-latency", type=float, help="default 30; quick 5")
    parser.add_argument("--inflight-hold", type=float,
                        help="seconds to keep sampling after the submits (default 35; quick 7)")
    parser.add_argument("--skip-inflight", action="store_true", help="skip the memory test")
    parser.add_argument("--log-level", default="warning", help="server log level")
    parser.add_argument("--profile-dir", type=Path,
                        help="also profile the server with py-spy (speedscope files here)")
    parser.add_argument("--py-spy", default=shutil.which("py-spy"), help="py-spy executable")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, dbs)")
    args = parser.parse_args(argv)
    plan = Plan.for_args(args)
    tool: Tool = "wrk" if wrk_path() and not args.aiohttp else "aiohttp"
    profile = None
    if args.profile_dir is not None:
        if not args.py_spy:
            parser.error("--profile-dir needs py-spy (on PATH or --py-spy PATH)")
        profile = (str(args.py_spy), args.profile_dir.resolve())

    def on_term(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    atexit.register(stop_all)
    workdir = Path(tempfile.mkdtemp(prefix="imagegate-bench-"))
    settings = {"ACCESS_LOG": "false", "LOG_LEVEL": args.log_level}
    report = Report()
    header = describe_machine(tool, plan, args)
    print(header, flush=True)
    started = time.monotonic()
    try:
        bare = start_bare(workdir)
        base = phase_core(workdir, bare, plan, tool, settings, report, profile)
        print(f"... core phase done ({time.monotonic() - started:.0f}s)", flush=True)
        phase_async(workdir, bare, plan, tool, settings, report, base, workers=True)
        phase_async(workdir, bare, plan, tool, settings, report, base, workers=False)
        print(f"... async phase done ({time.monotonic() - started:.0f}s)", flush=True)
        bare.stop()  # the peer is not needed any more
        if not args.skip_inflight:
            for run in inflight_runs(plan):
                phase_inflight(workdir, plan, settings, report, run)
                print(f"... in-flight run done ({time.monotonic() - started:.0f}s)", flush=True)
    finally:
        finish(workdir, args.keep)
    print()
    print(header)
    print(f"- took {time.monotonic() - started:.0f}s\n")
    print(table(report))
    if report.notes:
        print("\nnotes:")
        for note in report.notes:
            print(f"- {note}")
    for block in report.profiles:
        print()
        print(block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
