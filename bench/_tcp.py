"""The kernel's TCP counters over one run (Linux `/proc`; elsewhere nothing is reported).

A burst of 2,000 answers of ~2.7 MiB on one host can fill the kernel's TCP memory
(`net.ipv4.tcp_mem`, counted over every socket of the host): past its pressure threshold
the kernel drops incoming segments, and every connection, `/healthz` probes included, waits
for retransmissions (200 ms to seconds). Measured 2026-12-06: the direct run and imagegate's
both peaked at ~1.9-2.4 GB of TCP memory against a 1.6 GB threshold, with 34,000 and 50,000
segments retransmitted, and the probes' slowest answers (~2.2 s) did not move when the
relay's loop turns were cut from 1.9 s to 0.3 s. So the table says how the kernel fared in
each run, beside the figures it bears on. The counters are the host's, not one process's.
"""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path

# (table, name) in /proc/net/snmp and /proc/net/netstat
_RETRANSMITTED = ("Tcp", "RetransSegs")
_DROPPED = ("TcpExt", "TCPRcvQDrop")
_PRESSURES = ("TcpExt", "TCPMemoryPressures")


def _counters() -> dict[tuple[str, str], int]:
    """Both files hold pairs of lines: `Table: name name ...`, then `Table: value value ...`."""
    found: dict[tuple[str, str], int] = {}
    for path in ("/proc/net/snmp", "/proc/net/netstat"):
        try:
            lines = Path(path).read_text().splitlines()
        except OSError:
            continue
        for names, values in zip(lines[::2], lines[1::2], strict=False):
            table, *keys = names.split()
            _, *numbers = values.split()
            for key, number in zip(keys, numbers, strict=False):
                with contextlib.suppress(ValueError):
                    found[(table.rstrip(":"), key)] = int(number)
    return found


def _memory_pages() -> int | None:
    """Pages of TCP memory in use on the host (`/proc/net/sockstat`: `TCP: ... mem N`)."""
    try:
        for line in Path("/proc/net/sockstat").read_text().splitlines():
            fields = line.split()
            if fields[:1] == ["TCP:"] and "mem" in fields:
                return int(fields[fields.index("mem") + 1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def _pressure_pages() -> int | None:
    """`net.ipv4.tcp_mem`'s middle value: past it, the kernel is under memory pressure."""
    try:
        return int(Path("/proc/sys/net/ipv4/tcp_mem").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return None


@dataclass(frozen=True)
class TcpUse:
    retransmitted: int
    dropped: int  # segments dropped from a full receive queue
    pressures: int  # times the host entered TCP memory pressure
    peak_bytes: int | None
    pressure_bytes: int | None

    @staticmethod
    def total(uses: list[TcpUse]) -> TcpUse:
        """Several runs as one: the counts added up, the peak the highest."""
        peaks = [u.peak_bytes for u in uses if u.peak_bytes is not None]
        return TcpUse(sum(u.retransmitted for u in uses), sum(u.dropped for u in uses),
                      sum(u.pressures for u in uses), max(peaks) if peaks else None,
                      uses[0].pressure_bytes if uses else None)

    def note(self, mb: int) -> str:
        memory = ""
        if self.peak_bytes is not None and self.pressure_bytes is not None:
            memory = (f", TCP memory peak {self.peak_bytes / mb:,.0f} MB (pressure at "
                      f"{self.pressure_bytes / mb:,.0f})")
        return (f"{self.retransmitted:,} segments retransmitted, {self.dropped:,} dropped, "
                f"{self.pressures} memory pressure{'s' if self.pressures != 1 else ''}"
                + memory)


class TcpWindow:
    """`with TcpWindow() as w:` ... `w.use`: the counters' growth over the block, and the
    peak of TCP memory sampled every `interval` s in a thread."""

    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self.use: TcpUse | None = None
        self._start: dict[tuple[str, str], int] = {}
        self._peak: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="tcp-sampler", daemon=True)

    def _sample(self) -> None:
        while True:
            pages = _memory_pages()
            if pages is not None:
                self._peak = max(self._peak or 0, pages)
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> TcpWindow:
        self._start = _counters()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        end = _counters()
        if not end:
            return
        page = os.sysconf("SC_PAGE_SIZE")

        def grew(key: tuple[str, str]) -> int:
            return end.get(key, 0) - self._start.get(key, 0)

        pressure = _pressure_pages()
        self.use = TcpUse(grew(_RETRANSMITTED), grew(_DROPPED), grew(_PRESSURES),
                          None if self._peak is None else self._peak * page,
                          None if pressure is None else pressure * page)

