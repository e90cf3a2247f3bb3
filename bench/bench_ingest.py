"""Memory and time of large multipart uploads: eight ~19.5 MB images sent at once to
`POST /v1/images/edits?async=true`, against one upload as the baseline. Prints one markdown
table, then notes. See bench/README.md. Not a test: nothing here is asserted.

    .venv/bin/python bench/bench_ingest.py            # 3 repetitions per row (~3 min)
    .venv/bin/python bench/bench_ingest.py --reps 1   # smoke run

Every repetition starts a fresh `imagegate serve` (temp data dir, sandbox latency 0, access log
off, log level warning) on a free 127.0.0.1 port, samples its RSS (with children) every 0.1 s
from a thread of this process, and sends the uploads from a separate client process (aiohttp,
this same file with `_client`). Servers are stopped by PID at the end, also on Ctrl-C.

Rows (each its own fresh servers):
- `8 × PNG` / `1 × PNG`: the full path, upload → validation (full decode) → blob → worker render.
- `8 × PNG, workers off`: the same uploads with `IMAGEGATE_RUN_WORKERS=false`; only the request
  path (multipart buffering, validation, blob write) runs, so this isolates it from the render.
- `8 × not an image`: 19.5 MB of random bytes named .png; refused by sniffing (400) after the
  whole part is buffered, nothing decoded: the cost of buffering the uploads alone.
- `8 × PNG → 4k`: the full path with `size=3840x2160` (the sandbox composes a 4k image).
- `1 × 20 MB over a 10 MB cap`: `IMAGEGATE_MAX_REFERENCE_BYTES=10000000`; time to the 413.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

import _util
import psutil
from _util import (
    LOOPBACK,
    MemorySampler,
    Server,
    finish,
    fmt_num,
    start_imagegate,
    status_counts,
    stop_all,
)

MB = 1_000_000
MiB = 1024 * 1024
TARGET_BYTES = 19_500_000  # each upload: between 18 MB and 20 MB, under the 20 MiB default cap
WIDTH = 3000
SAMPLE_INTERVAL = 0.1
CLIENT_TIMEOUT = 180.0  # seconds, per request and for the client process
SETTLE_TIMEOUT = 120.0  # seconds to wait for the accepted tasks to finish
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


# --------------------------------------------------------------------------- the client


async def _client(cfg: dict[str, Any]) -> dict[str, Any]:
    """POST each file as its own multipart edit, all at once; times are time.monotonic()."""
    import aiohttp

    base_url: str = cfg["base_url"].rstrip("/")
    if urlsplit(base_url).hostname not in _LOOPBACK_HOSTS:
        raise SystemExit(f"refusing a non-loopback target: {base_url}")
    files: list[str] = cfg["files"][:64]  # bounded, whatever the caller asks
    url = base_url + "/v1/images/edits?async=true"
    headers = {"Authorization": f"Bearer {cfg['key']}"}
    timeout = aiohttp.ClientTimeout(total=CLIENT_TIMEOUT)
    connector = aiohttp.TCPConnector(limit=len(files) + 1, force_close=True)

    async def one(session: aiohttp.ClientSession, i: int, path: str) -> dict[str, Any]:
        form = aiohttp.FormData()
        form.add_field("model", "gpt-image-2")
        form.add_field("prompt", f"bench upload {i}")
        form.add_field("size", cfg["size"])
        start = time.monotonic()
        result: dict[str, Any] = {"start": start}
        try:
            with open(path, "rb") as fh:  # noqa: ASYNC230 (streamed by aiohttp, not read here)
                form.add_field("image", fh, filename=Path(path).name,
                               content_type="image/png")
                async with session.post(url, data=form, headers=headers) as resp:
                    result["status"] = resp.status
                    result["headers_at"] = time.monotonic()
                    body = await resp.json(content_type=None)
                    result["task_id"] = body.get("task_id")
                    result["error_code"] = (body.get("error") or {}).get("code")
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            result["status"] = None
            result["error"] = f"{type(exc).__name__}: {exc}"
        result["end"] = time.monotonic()
        return result

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        first = time.monotonic()
        results = await asyncio.gather(*(one(session, i, p) for i, p in enumerate(files)))
    return {"first": first, "results": list(results)}


def client_main() -> int:
    cfg = json.loads(sys.stdin.read())
    print(json.dumps(asyncio.run(_client(cfg))), flush=True)
    return 0


# --------------------------------------------------------------------------- inputs


def _noise(rows: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(WIDTH * rows * 3)


def make_png(path: Path, seed: int, target: int = TARGET_BYTES) -> int:
    """A 3000-px-wide RGB PNG of uniform noise (incompressible, so its size is predictable),
    its height chosen so the file lands near `target` bytes."""
    import pyvips

    probe_rows = 100
    probe = pyvips.Image.new_from_memory(_noise(probe_rows, seed), WIDTH, probe_rows, 3, "uchar")
    per_row = len(probe.write_to_buffer(".png", compression=1)) / probe_rows
    rows = int(target / per_row)
    image = pyvips.Image.new_from_memory(_noise(rows, seed), WIDTH, rows, 3, "uchar")
    image.pngsave(str(path), compression=1)
    size = path.stat().st_size
    if not 18 * MB <= size <= 20 * MB or size > 20 * MiB:
        raise RuntimeError(f"{path.name} is {size} bytes, outside 18–20 MB")
    return rows


def make_inputs(directory: Path) -> dict[str, list[Path]]:
    directory.mkdir(parents=True, exist_ok=True)
    pngs = []
    for i in range(8):
        path = directory / f"noise-{i}.png"
        rows = make_png(path, seed=1000 + i)
        pngs.append(path)
    junk = []
    for i in range(8):
        path = directory / f"junk-{i}.png"  # named .png; the bytes have no image magic
        data = bytearray(random.Random(2000 + i).randbytes(TARGET_BYTES))
        data[:4] = b"JUNK"
        path.write_bytes(data)
        junk.append(path)
    over = directory / "over-cap.png"
    make_png(over, seed=3000, target=19_900_000)
    print(f"inputs: 8 PNG {WIDTH}×{rows} (~{pngs[0].stat().st_size / MB:.1f} MB each), "
          f"8 random-byte files ({TARGET_BYTES / MB:.1f} MB), one {over.stat().st_size / MB:.1f} "
          "MB PNG for the 413", flush=True)
    return {"png": pngs, "junk": junk, "over": [over]}


# --------------------------------------------------------------------------- sampling


def _tree(pid: int) -> list[psutil.Process]:
    try:
        proc = psutil.Process(pid)
        return [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def tree_rss(pid: int) -> int:
    total = 0
    for p in _tree(pid):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += p.memory_info().rss
    return total


def tree_read_chars(pid: int) -> int:
    """Bytes the process tree read through read()/recv() (sockets included; Linux only)."""
    total = 0
    for p in _tree(pid):
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied, AttributeError):
            total += int(p.io_counters().read_chars)
    return total


# --------------------------------------------------------------------------- one run

# `imagegate serve` in this interpreter with libvips' operation cache disabled first: not a
# setting of imagegate, so the diagnostic row starts the CLI through this one-liner.
_NO_VIPS_CACHE = ("import sys, pyvips; pyvips.cache_set_max(0); sys.argv[0] = 'imagegate'; "
                  "from imagegate.cli import main; main()")


def start_without_vips_cache(workdir: Path, name: str, settings: dict[str, str]) -> Server:
    """Like `_util.start_imagegate`, with `pyvips.cache_set_max(0)` run before the CLI."""
    data_dir = workdir / name
    data_dir.mkdir(parents=True)
    port = _util.free_port()
    env = _util._clean_env({f"IMAGEGATE_{k.upper()}": v for k, v in settings.items()})
    log_path = workdir / f"{name}.log"
    argv = [sys.executable, "-c", _NO_VIPS_CACHE, "serve", "--host", LOOPBACK, "--port",
            str(port), "--data-dir", str(data_dir)]
    proc = _util._spawn(name, argv, env, log_path, workdir)
    server = Server(name, proc, port, log_path, data_dir)
    _util._LIVE[server.pid] = server
    _util._wait_healthy(server)
    match = _util._KEY_RE.search(log_path.read_text(errors="replace"))
    server.api_key = match.group(1) if match else _util._create_key(data_dir, env)
    return server



@dataclass(frozen=True)
class Scenario:
    key: str
    label: str
    files: str  # "png", "junk" or "over"
    count: int
    size: str = "1024x1024"
    settings: dict[str, str] = field(default_factory=dict)
    expect: int = 202
    vips_cache_off: bool = False  # diagnostic: the server with libvips' operation cache off

    @property
    def workers(self) -> bool:
        return self.settings.get("RUN_WORKERS", "true") != "false"


@dataclass
class Run:
    idle: int
    peak: int
    peak_accept: int
    peak_after: int | None
    settled: int
    accept_s: float
    done_s: float | None
    statuses: dict[str, int]
    errors: list[str]
    read_chars: int | None = None
    read_chars_later: int | None = None


def _idle_rss(pid: int) -> int:
    values = []
    for _ in range(10):
        values.append(tree_rss(pid))
        time.sleep(SAMPLE_INTERVAL)
    return int(statistics.median(values))


def run_client(server: Server, files: Sequence[Path], size: str) -> dict[str, Any]:
    cfg = {"base_url": server.base_url, "key": server.api_key, "files": [str(f) for f in files],
           "size": size}
    proc = subprocess.run([sys.executable, __file__, "_client"], input=json.dumps(cfg),
                          capture_output=True, text=True, timeout=CLIENT_TIMEOUT + 30,
                          check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"client failed ({proc.returncode}): {proc.stderr[-2000:]}")
    out: dict[str, Any] = json.loads(proc.stdout)
    return out


def _wait_done(server: Server, task_ids: list[str]) -> float | None:
    """Poll the task table until the accepted tasks are finished; the time, or None."""
    if not task_ids or server.db_path is None:
        return None
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            counts = status_counts(server.db_path)
            if sum(counts.get(s, 0) for s in ("succeeded", "failed", "cancelled")) \
                    >= len(task_ids):
                return time.monotonic()
        time.sleep(0.05)
    return None


def measure(workdir: Path, name: str, scenario: Scenario, inputs: dict[str, list[Path]],
            base_settings: dict[str, str]) -> Run:
    settings = {**base_settings, **scenario.settings}
    if scenario.vips_cache_off:
        server = start_without_vips_cache(workdir, name, settings)
    else:
        server = start_imagegate(workdir, name, settings)
    try:
        time.sleep(1.0)  # let start-up allocations settle
        idle = _idle_rss(server.pid)
        files = inputs[scenario.files][: scenario.count]
        read_before = tree_read_chars(server.pid)
        sampler = MemorySampler(server.pid, interval=SAMPLE_INTERVAL)
        with sampler.running():
            out = run_client(server, files, scenario.size)
            results: list[dict[str, Any]] = out["results"]
            read_at = tree_read_chars(server.pid)
            accepted = max(r["end"] for r in results)
            ids = [r["task_id"] for r in results if r.get("status") == 202 and r.get("task_id")]
            done = _wait_done(server, ids) if scenario.workers else None
            time.sleep(1.0)  # the tail after the last task
        read_later = tree_read_chars(server.pid)
        settled = _idle_rss(server.pid)
    finally:
        server.stop()
    statuses: dict[str, int] = {}
    for r in results:
        key = str(r.get("status"))
        statuses[key] = statuses.get(key, 0) + 1
    errors = [r["error"] for r in results if r.get("error")]
    errors += [f"{r.get('status')} {r.get('error_code')}" for r in results
               if r.get("status") not in (scenario.expect, None)]
    first = float(out["first"])
    peak = sampler.peak_rss() or idle
    return Run(
        idle=idle,
        peak=peak,
        peak_accept=sampler.peak_rss(first, accepted + SAMPLE_INTERVAL) or idle,
        peak_after=sampler.peak_rss(accepted + SAMPLE_INTERVAL) if ids and scenario.workers
        else None,
        settled=settled,
        accept_s=accepted - first,
        done_s=(done - first) if done is not None else None,
        statuses=statuses,
        errors=errors,
        read_chars=read_at - read_before if read_at and read_before else None,
        read_chars_later=read_later - read_before if read_later and read_before else None,
    )


# --------------------------------------------------------------------------- the report


SCENARIOS = [
    Scenario("png8", "8 × 19.5 MB PNG", "png", 8),
    Scenario("png1", "1 × 19.5 MB PNG (baseline)", "png", 1),
    Scenario("png8-noworkers", "8 × PNG, workers off", "png", 8,
             settings={"RUN_WORKERS": "false"}),
    Scenario("png8-nocache", "8 × PNG, libvips cache off (diagnostic)", "png", 8,
             vips_cache_off=True),
    Scenario("junk8", "8 × 19.5 MB not an image", "junk", 8, expect=400),
    Scenario("png8-4k", "8 × PNG → 4k output", "png", 8, size="3840x2160"),
    Scenario("over1", "1 × 19.9 MB over a 10 MB cap", "over", 1,
             settings={"MAX_REFERENCE_BYTES": "10000000"}, expect=413),
]


def _mb(value: float | None) -> str:
    return "–" if value is None else f"{value / MB:,.0f}"


def _med(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def table(runs: dict[str, list[Run]]) -> str:
    base = runs.get("png1")
    base_over = _med([r.peak - r.idle for r in base]) if base else None
    base_accept = _med([r.accept_s for r in base]) if base else None
    lines = [
        "| row | n | idle RSS MB | peak RSS MB (runs) | peak − idle MB | per upload MB "
        "| ratio to 1 upload | peak in accept / after MB | RSS after MB | accept all s (runs) "
        "| all done s | statuses |",
        "|---|---:|---:|---|---:|---:|---:|---|---:|---|---:|---|",
    ]
    for sc in SCENARIOS:
        rs = runs.get(sc.key)
        if not rs:
            continue
        idle = _med([r.idle for r in rs])
        peak = _med([r.peak for r in rs])
        over = _med([r.peak - r.idle for r in rs])
        per = over / sc.count if over is not None else None
        ratio = f"{over / base_over:.1f}×" if over and base_over else "–"
        accept = _med([r.accept_s for r in rs])
        if sc.key == "png1" or base_accept is None:
            accept_ratio = ""
        else:
            accept_ratio = f" ({accept / base_accept:.1f}× of 1)" if accept else ""
        statuses: dict[str, int] = {}
        for r in rs:
            for k, v in r.statuses.items():
                statuses[k] = statuses.get(k, 0) + v
        lines.append(
            f"| {sc.label} | {sc.count} | {_mb(idle)} "
            f"| {_mb(peak)} ({', '.join(_mb(r.peak) for r in rs)}) | {_mb(over)} "
            f"| {_mb(per)} | {ratio} "
            f"| {_mb(_med([r.peak_accept - r.idle for r in rs]))} / "
            f"{_mb(_med([(r.peak_after - r.idle) if r.peak_after else None for r in rs]))} "
            f"| {_mb(_med([r.settled for r in rs]))} "
            f"| {fmt_num(accept, 2)}{accept_ratio} ({', '.join(f'{r.accept_s:.2f}' for r in rs)}) "
            f"| {fmt_num(_med([r.done_s for r in rs]), 2)} "
            f"| {', '.join(f'{k}×{v}' for k, v in sorted(statuses.items()))} |"
        )
    return "\n".join(lines)


def notes(runs: dict[str, list[Run]]) -> list[str]:
    out = []
    over = runs.get("over1")
    if over:
        chars = _med([r.read_chars for r in over])
        later = _med([r.read_chars_later for r in over])
        out.append(
            f"413 row: time to the 413 {fmt_num(_med([r.accept_s for r in over]), 3)} s; the "
            f"server process read {_mb(chars)} MB (read_chars, sockets and files) by the time "
            f"the client had its answer, {_mb(later)} MB a second later.")
    for key, rs in runs.items():
        for r in rs:
            for e in r.errors[:3]:
                out.append(f"{key}: unexpected {e}")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3, help="fresh servers per row (default 3)")
    parser.add_argument("--rows", default=",".join(s.key for s in SCENARIOS),
                        help="comma-separated row keys: " + ", ".join(s.key for s in SCENARIOS))
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, inputs)")
    args = parser.parse_args(argv)
    wanted = [k.strip() for k in args.rows.split(",") if k.strip()]
    unknown = set(wanted) - {s.key for s in SCENARIOS}
    if unknown:
        parser.error(f"unknown rows: {sorted(unknown)}")
    reps = max(1, min(args.reps, 10))

    def on_term(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    atexit.register(stop_all)
    workdir = Path(tempfile.mkdtemp(prefix="imagegate-bench-ingest-"))
    settings = {"ACCESS_LOG": "false", "LOG_LEVEL": "warning", "SANDBOX_LATENCY": "0"}
    started = time.monotonic()
    header = (f"# bench_ingest — {os.cpu_count()} CPUs, "
              f"{psutil.virtual_memory().total / 2**30:.0f} GiB, Python "
              f"{sys.version.split()[0]}, {reps} fresh server(s) per row, RSS with children "
              f"every {SAMPLE_INTERVAL} s, client: aiohttp in its own process, {LOOPBACK} only")
    print(header, flush=True)
    runs: dict[str, list[Run]] = {}
    try:
        inputs = make_inputs(workdir / "inputs")
        # Interleave the rows (a, b, c, a, b, c, …) so drift on the machine spreads evenly.
        for rep in range(reps):
            for sc in SCENARIOS:
                if sc.key not in wanted:
                    continue
                run = measure(workdir, f"{sc.key}-{rep}", sc, inputs, settings)
                runs.setdefault(sc.key, []).append(run)
                print(f"... {sc.key} rep {rep + 1}: peak {_mb(run.peak)} MB "
                      f"(idle {_mb(run.idle)}), accept {run.accept_s:.2f} s, "
                      f"{run.statuses} ({time.monotonic() - started:.0f}s)", flush=True)
    finally:
        finish(workdir, args.keep)
    print()
    print(header)
    print(f"- took {time.monotonic() - started:.0f}s; MB = 10^6 bytes; medians of the runs\n")
    print(table(runs))
    for line in notes(runs):
        print(f"- {line}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_client":
        raise SystemExit(client_main())
    raise SystemExit(main())
