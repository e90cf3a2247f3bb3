"""Giving freed multi-megabyte buffers back to the system, without paying for it per image.

A relayed image passes through a few buffers of its size (the upstream's base64 answer, the
decoded bytes, a `b64_json` answer). glibc serves the first such block with mmap; once one is
freed it raises its mmap threshold to that size and serves later ones from its heap, where a
freed block is reused as it is. That reuse is what makes big images cheap: with the threshold
fixed at 128 KiB (what `serve` and `worker` did before), every buffer was a fresh mapping
whose ~700 pages each took a page fault and were zeroed, and unmapped again when freed —
~45% of a 2 MiB relay's CPU, nearly all of it system time (perf: `exc_page_fault` under
`memmove`, `ascii_decode`, the base64 decoder).

What the heap keeps after a burst, though, glibc returns only from its top: the server's RSS
stayed at its peak. `HeapTrimmer` gives the rest back with `malloc_trim` once the heap holds
more than `min_free` bytes unused, looked at every `interval` seconds — the idea of jemalloc's
decay: memory reused within seconds is kept, memory nobody reused goes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

MiB = 1024 * 1024


class _MallInfo2(ctypes.Structure):
    # glibc's `struct mallinfo2` (2.33+): every field a size_t.
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def _glibc() -> Any | None:
    """This process's C library when it is a glibc with `malloc_trim` and `mallinfo2`."""
    try:
        libc = ctypes.CDLL(None)  # this process's own symbols, the C library's among them
    except OSError:
        return None
    trim = getattr(libc, "malloc_trim", None)
    info = getattr(libc, "mallinfo2", None)
    if trim is None or info is None:  # musl, macOS, glibc before 2.33
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    info.argtypes, info.restype = [], _MallInfo2
    return libc


class HeapTrimmer:
    """Every `interval` seconds: when the heap holds `min_free` bytes or more that nothing
    uses and has changed since the last trim, give their pages back (`malloc_trim(0)`), in a
    thread of its own — trimming hundreds of megabytes takes milliseconds and the event loop
    keeps serving meanwhile."""

    def __init__(self, libc: Any, *, interval: float = 10.0, min_free: int = 64 * MiB) -> None:
        self._libc = libc
        self.interval = interval
        self.min_free = min_free

    @classmethod
    def for_this_process(cls, **kwargs: Any) -> HeapTrimmer | None:
        """A trimmer, or None where the C library cannot trim (then nothing is done)."""
        libc = _glibc()
        return None if libc is None else cls(libc, **kwargs)

    def free_bytes(self) -> int:
        """Bytes in the heap's free blocks (every arena)."""
        return int(self._libc.mallinfo2().fordblks)

    def trim(self) -> bool:
        """Give back every free page of the heap; whether any went back."""
        return bool(self._libc.malloc_trim(0))

    async def run(self) -> None:
        """Until cancelled."""
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="imagegate-trim") as pool:
            loop = asyncio.get_running_loop()
            trimmed_at = -1
            while True:
                await asyncio.sleep(self.interval)
                free = self.free_bytes()
                # Trimming leaves the free blocks free (only their pages go), so the count
                # stays: the same count as after the last trim means nothing was reused since.
                if free >= self.min_free and free != trimmed_at:
                    await loop.run_in_executor(pool, self.trim)
                    trimmed_at = self.free_bytes()


@contextlib.asynccontextmanager
async def trimming_heap(**kwargs: Any) -> AsyncIterator[HeapTrimmer | None]:
    """A `HeapTrimmer` running for the duration of the block (None, and nothing running,
    where the C library cannot trim)."""
    trimmer = HeapTrimmer.for_this_process(**kwargs)
    if trimmer is None:
        yield None
        return
    task = asyncio.create_task(trimmer.run(), name="imagegate-heap-trimmer")
    try:
        yield trimmer
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
