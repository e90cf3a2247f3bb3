"""The fallback load generator (and the exact-count submitter): aiohttp in its own process.

Reads one JSON object on stdin and prints one JSON object on stdout. Bounded twice: it issues
at most `max_requests` requests and starts none after `duration` seconds; each request also
has a client timeout. Only loopback targets are accepted.

stdin:  {"base_url": "http://127.0.0.1:PORT", "method": "GET", "paths": ["/x", ...],
         "headers": {...}, "body": "..." | null, "concurrency": 16, "max_requests": 1000,
         "duration": 5.0, "expect": [200], "collect": "task_id" | null}
stdout: {"requests": n, "errors": n, "seconds": s, "p50_ms": x, "p99_ms": x,
         "statuses": {"200": n}, "first_error": "..." | null, "ids": [...]}
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

import aiohttp

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * (len(sorted_values) - 1))))
    return sorted_values[index]


async def run(cfg: dict[str, Any]) -> dict[str, Any]:
    base_url: str = cfg["base_url"].rstrip("/")
    if urlsplit(base_url).hostname not in _LOOPBACK:
        raise SystemExit(f"refusing a non-loopback target: {base_url}")
    method: str = cfg.get("method", "GET")
    paths: list[str] = cfg["paths"]
    headers: dict[str, str] = cfg.get("headers") or {}
    body_text: str | None = cfg.get("body")
    # "%N%" in the body becomes a per-request number (distinct prompts).
    body_parts = body_text.partition("%N%") if body_text is not None else None
    concurrency = int(cfg["concurrency"])
    max_requests = int(cfg["max_requests"])
    duration = float(cfg["duration"])
    expect = set(cfg.get("expect") or [200])
    collect: str | None = cfg.get("collect")

    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    ids: list[str] = []
    errors = 0
    first_error: str | None = None
    issued = 0

    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    timeout = aiohttp.ClientTimeout(total=max(60.0, duration))
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        start = time.perf_counter()
        deadline = start + duration

        async def worker() -> None:
            nonlocal issued, errors, first_error
            while issued < max_requests and time.perf_counter() < deadline:
                path = paths[issued % len(paths)]
                issued += 1
                body: bytes | None = None
                if body_parts is not None:
                    head, sep, tail = body_parts
                    body = (head + (str(issued) if sep else "") + tail).encode()
                t0 = time.perf_counter()
                try:
                    async with session.request(method, base_url + path, data=body,
                                               headers=headers) as resp:
                        raw = await resp.read()
                        status = resp.status
                except Exception as exc:  # count it, keep the load going
                    errors += 1
                    first_error = first_error or repr(exc)
                    continue
                latencies.append(time.perf_counter() - t0)
                statuses[status] += 1
                if status not in expect:
                    errors += 1
                    first_error = first_error or f"HTTP {status}: {raw[:200]!r}"
                elif collect:
                    value = json.loads(raw).get(collect)
                    if isinstance(value, str):
                        ids.append(value)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - start

    latencies.sort()
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    return {
        "requests": len(latencies),
        "errors": errors,
        "seconds": seconds,
        "p50_ms": None if p50 is None else p50 * 1000,
        "p99_ms": None if p99 is None else p99 * 1000,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "first_error": first_error,
        "ids": ids,
    }


def main() -> None:
    cfg = json.load(sys.stdin)
    try:
        import uvloop  # the cheapest loop available: the client shares the cores with the server
    except ImportError:
        result = asyncio.run(run(cfg))
    else:
        result = uvloop.run(run(cfg))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
