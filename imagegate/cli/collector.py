"""The cyclic garbage collector's settings for a server or worker process.

CPython runs its youngest collection every 700 container allocations and, when enough objects
have survived, a full one that walks every live object. A process holding thousands of
requests or upstream calls holds millions of objects that are not garbage, and a burst keeps
promoting more: perf on a burst of 2,000 sync relay requests put 26% of the server's CPU in
`gc_collect_main` and its visitors; on a steady 4 KiB relay at c=16 the CPU per request was
2.2 ms with the defaults against 1.6 ms with these settings (bench/README.md, "Relay").

- `gc.freeze()` once start-up is done: what it built (modules, the app, its routes, settings,
  catalogs) lives as long as the process, and frozen no collection walks it again.
- A young generation of 20,000 allocations and 20 collections per older step: reference
  cycles (tracebacks, futures) are still collected, after a few seconds at most, while the
  full walks of everything alive become rare.
"""

from __future__ import annotations

import gc

YOUNG = 20_000
OLDER = 20


def tune_collector() -> None:
    """Freeze what exists now and set the thresholds (call once start-up is done)."""
    gc.freeze()
    gc.set_threshold(YOUNG, OLDER, OLDER)
