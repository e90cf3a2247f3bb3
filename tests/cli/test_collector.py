"""`cli/collector.py`: the garbage collector's settings a server or worker process runs with."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_start_up_objects_are_frozen_and_the_thresholds_raised() -> None:
    # In a child: both settings last for the process, and this one runs every other test.
    code = textwrap.dedent("""
        import gc
        from imagegate.cli.collector import OLDER, YOUNG, tune_collector
        import imagegate.app  # start-up's objects
        tune_collector()
        assert gc.get_threshold() == (YOUNG, OLDER, OLDER), gc.get_threshold()
        assert gc.get_freeze_count() > 10_000, gc.get_freeze_count()

        class Cycle:
            pass

        a, b = Cycle(), Cycle()
        a.other, b.other = b, a
        del a, b
        assert gc.collect() >= 2  # cycles made afterwards are still collected
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.strip() == "ok", out.stderr
