"""Schemathesis against a served sandbox, run by `tests/api/test_schemathesis.py`.

`python -m tests.support.fuzz REPORT_DIR DATA_DIR -- <schemathesis run options>` brings up the
loopback interface, starts `imagegate serve` (sandbox provider, no latency) on a free
127.0.0.1 port, takes the API key its first start prints, runs `schemathesis run` against
`/openapi.json` with that key as the bearer token, stops the server and exits with
schemathesis's status. The test runs it inside a network namespace of its own
(`unshare --net`): fuzzed reference-image URLs and webhook URLs name arbitrary hosts, and
there nothing but loopback exists, so no request, not even a DNS query, leaves the machine.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.e2e import VENV_BIN, Server, base_env

CONFIG = Path(__file__).resolve().parent.parent / "api" / "schemathesis.toml"
SCHEMATHESIS = str(VENV_BIN / "schemathesis")
# The server's side of the bounds: a synchronous request (and a stream) gives up waiting
# well before schemathesis's per-request timeout, answering 202 (or 504 on /openai/v1).
SERVER_ENV = {
    "IMAGEGATE_SANDBOX_LATENCY": "0",
    "IMAGEGATE_SYNC_WAIT_SECONDS": "10",
    "IMAGEGATE_STREAM_KEEPALIVE_SECONDS": "5",
    "IMAGEGATE_LOG_LEVEL": "warning",
}


def main(argv: list[str]) -> int:
    report_dir, data_dir, sep, *options = argv
    assert sep == "--", "usage: fuzz REPORT_DIR DATA_DIR -- <schemathesis run options>"
    Path(report_dir).mkdir(parents=True, exist_ok=True)
    # A new network namespace starts with its loopback interface down.
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    server = Server(Path(data_dir), base_env(SERVER_ENV), None).wait_ready()
    try:
        command = [
            SCHEMATHESIS, "--config-file", str(CONFIG), "run",
            f"{server.base_url}/openapi.json",
            "--checks", "all",
            "--header", f"Authorization: Bearer {server.key}",
            "--report", "har,junit", "--report-dir", report_dir,
            "--generation-database", "none", "--no-color",
            *options,
        ]
        # Its working directory is the report's, where it may leave its own cache files.
        result = subprocess.run(command, check=False, stdin=subprocess.DEVNULL, cwd=report_dir)
        return result.returncode
    finally:
        code = server.stop()
        print(f"\n--- imagegate serve exited with {code}; its last output:\n"
              f"{server.output(60)}", flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
