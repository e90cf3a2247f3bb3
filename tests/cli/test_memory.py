"""`cli/memory.py`: the heap trimmer the server and worker processes run."""

from __future__ import annotations

import asyncio
import platform
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field

import pytest

from imagegate.cli.memory import HeapTrimmer, MiB, trimming_heap

glibc = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                           reason="malloc_trim and mallinfo2 are glibc's")


@dataclass
class _Info:
    fordblks: int


@dataclass
class FakeLibc:
    """Stands for the C library: a heap with `free` unused bytes; counts trims."""

    free: int
    trims: list[int] = field(default_factory=list)

    def mallinfo2(self) -> _Info:
        return _Info(self.free)

    def malloc_trim(self, pad: int) -> int:
        # As glibc: the pages go back, the blocks stay free (and counted).
        self.trims.append(pad)
        return 1


async def _run_for(trimmer: HeapTrimmer, seconds: float) -> None:
    task = asyncio.create_task(trimmer.run())
    await asyncio.sleep(seconds)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.anyio
async def test_a_heap_with_little_free_memory_is_left_alone() -> None:
    libc = FakeLibc(free=10 * MiB)
    await _run_for(HeapTrimmer(libc, interval=0.01, min_free=64 * MiB), 0.1)
    assert libc.trims == []


@pytest.mark.anyio
async def test_a_heap_holding_more_than_min_free_is_trimmed_again_only_once_it_changed(
) -> None:
    libc = FakeLibc(free=300 * MiB)
    trimmer = HeapTrimmer(libc, interval=0.01, min_free=64 * MiB)
    task = asyncio.create_task(trimmer.run())
    await asyncio.sleep(0.15)
    assert libc.trims == [0]  # once: the same free count since means nothing was reused
    libc.free = 200 * MiB  # the heap was used again: what is free now may be resident
    await asyncio.sleep(0.15)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert libc.trims == [0, 0]


@glibc
@pytest.mark.anyio
async def test_trimming_heap_runs_a_trimmer_only_for_the_block() -> None:
    async with trimming_heap(interval=0.01) as trimmer:
        assert trimmer is not None
        assert trimmer.free_bytes() >= 0
        names = {t.get_name() for t in asyncio.all_tasks()}
        assert "imagegate-heap-trimmer" in names
    await asyncio.sleep(0)
    assert "imagegate-heap-trimmer" not in {t.get_name() for t in asyncio.all_tasks()}


@glibc
def test_freed_heap_memory_goes_back_to_the_system() -> None:
    # In a child: the measurement is the process's RSS, which this test process's other
    # tests would move. 1,500 blocks of 160 KiB come from the heap once glibc has raised its
    # mmap threshold (the first freed big block does it); with every tenth one kept, freeing
    # the others leaves holes that glibc's own trimming (the heap's top) never gives back.
    code = textwrap.dedent("""
        import asyncio, os
        from imagegate.cli.memory import HeapTrimmer, MiB

        def rss():
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

        big = bytearray(4 * MiB)
        del big  # raises the threshold: the next blocks come from the heap
        blocks = [bytearray(160 * 1024) for _ in range(1500)]
        pin = blocks[::10]
        del blocks
        trimmer = HeapTrimmer.for_this_process(interval=0.01, min_free=64 * MiB)
        free, before = trimmer.free_bytes(), rss()

        async def main():
            task = asyncio.create_task(trimmer.run())
            await asyncio.sleep(0.3)
            task.cancel()

        asyncio.run(main())
        print(free // MiB, before // MiB, rss() // MiB, len(pin))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    free, before, after, _ = (int(x) for x in out.stdout.split())
    assert free >= 200, out.stdout  # the freed blocks stayed in the heap...
    assert before - after >= 150, out.stdout  # ...until the trimmer gave them back
