"""Schemathesis against a served sandbox: the OpenAPI document (`imagegate/api/openapi.py`)
must describe what the running app really does.

`imagegate serve` (sandbox provider, no latency) and `schemathesis run` with every check run
together in a network namespace of their own (`tests/support/fuzz.py`), so the fuzzed
reference-image and webhook URLs reach nothing but loopback. The run fails on any 5xx, an
undeclared status, a wrong content type or header, a response that does not match its schema,
a schema-invalid request that is accepted or a schema-valid one that is refused (except where
`tests/api/schemathesis.toml` says why a 400 is right), a 405 without `Allow`.

What is fuzzed: every operation of `/openapi.json`, with the server's first API key as the
bearer token. The operator routes (`/admin/*`, `/metrics`) are not in the published document
(they take the admin token, or none), so they are not fuzzed.

Bounds: at most `MAX_EXAMPLES` cases per operation and phase, `MAX_TIME` seconds for the whole
schemathesis run, `REQUEST_TIMEOUT` per request (the server answers a synchronous request
after 10 s at most, see `fuzz.SERVER_ENV`), and `RUN_TIMEOUT` for everything, after which
the whole process group is killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from imagegate.app import build_app
from imagegate.config import Settings

pytestmark = [pytest.mark.schemathesis, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parent.parent.parent
MAX_EXAMPLES = 20
MAX_TIME = 60
REQUEST_TIMEOUT = 20
RUN_TIMEOUT = 170
# Fixed, so a failure in CI can be replayed (schemathesis prints the seed with its report).
SEED = 11


def operation_patterns() -> dict[tuple[str, str], re.Pattern[str]]:
    defaults: dict[str, Any] = {}
    document = build_app(Settings(**defaults)).openapi()
    return {(method.upper(), path): re.compile(re.sub(r"\{[^}]+\}", "[^/]+", path))
            for path, item in document["paths"].items() for method in item}


def har_statuses(report_dir: Path) -> Counter[tuple[str, str, int]]:
    """(method, path template, status) of every exchange the run recorded."""
    patterns = operation_patterns()
    (har,) = report_dir.glob("har-*.json")
    counts: Counter[tuple[str, str, int]] = Counter()
    for entry in json.loads(har.read_text(encoding="utf-8"))["log"]["entries"]:
        method = entry["request"]["method"]
        path = urlsplit(entry["request"]["url"]).path
        template = next((p for (m, p), rx in patterns.items()
                         if m == method and rx.fullmatch(path)), path)
        counts[(method, template, entry["response"]["status"])] += 1
    return counts


def run_fuzz(report_dir: Path, data_dir: Path) -> tuple[int, str]:
    command = ["unshare", "--net", "--map-root-user", "--", sys.executable, "-m",
               "tests.support.fuzz", str(report_dir), str(data_dir), "--",
               "--max-examples", str(MAX_EXAMPLES), "--max-time", str(MAX_TIME),
               "--request-timeout", str(REQUEST_TIMEOUT), "--seed", str(SEED)]
    # A session of its own, so a run past RUN_TIMEOUT is stopped with everything it started.
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, text=True, encoding="utf-8",
                            errors="replace", start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"schemathesis did not finish in {RUN_TIMEOUT} s:\n{output[-6000:]}")
    return proc.returncode, output


def test_the_served_app_matches_its_openapi_document(tmp_path: Path) -> None:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs unshare and ip (util-linux, iproute2) for an isolated network")
    report_dir, data_dir = tmp_path / "report", tmp_path / "data"
    data_dir.mkdir()
    code, output = run_fuzz(report_dir, data_dir)
    print(output)  # the report, for `pytest -s` and for the log of a failing run
    assert code == 0, f"schemathesis failed (exit {code}):\n{output[-12000:]}"

    counts = har_statuses(report_dir)
    assert not [k for k in counts if k[2] >= 500], f"5xx answers: {counts}"
    tested = {(m, p) for m, p, _ in counts}
    untested = set(operation_patterns()) - tested
    assert not untested, f"operations never called: {untested}"

    # Not only refusals: images were really made, synchronously and as tasks.
    def answered(method: str, path: str, status: int) -> int:
        return counts[(method, path, status)]

    assert answered("POST", "/v1/images/generations", 200) > 0, counts
    assert answered("POST", "/v1/images/generations", 202) > 0, counts
    assert answered("POST", "/v1/images/edits", 200) > 0, counts
    assert answered("POST", "/apimart/v1/images/generations", 200) > 0, counts
