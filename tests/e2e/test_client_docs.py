"""docs/client.md stays true: every ```python and ```bash example runs as written, in order,
in one scratch directory, against a served sandbox (and, for the dialect examples, the seed
services' fakes as real processes; for the task list, the fake of the task API), with the
page's placeholders — the local server's address, `ig_your_key`, the seed services' hosts —
pointed at them. And every option of the client commands is documented."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer

from imagegate.cli import cli
from tests.support.e2e import VENV_BIN, Server, base_env
from tests.support.fake_procs import FAKE_KEY, fake_processes
from tests.support.relay import FakeLoop
from tests.support.task_api import KEY as TASK_API_KEY
from tests.support.task_api import FakeTaskAPI

pytestmark = pytest.mark.e2e

DOC = Path(__file__).resolve().parents[2] / "docs" / "client.md"
HOSTS = {"dimilinks": "https://dimilinks.com", "apimart": "https://api.apimart.ai",
         "openai": "https://api.openai.com"}
NEEDS_TASK_LIST = "# needs a server with the task list"


def examples() -> list[tuple[str, str]]:
    text = DOC.read_text(encoding="utf-8")
    blocks = re.findall(r"```(python|bash)\n(.*?)```", text, flags=re.DOTALL)
    return [(lang, body) for lang, body in blocks
            if not body.startswith("export IMAGEGATE_URL=")]  # the tests set those


def test_the_page_has_examples_of_the_library_and_every_command() -> None:
    text = "\n".join(body for _, body in examples())
    for needle in ("client.generate(", "client.edit(", "client.variations(",
                   "client.download(", "client.tasks.events(", "client.tasks.wait(",
                   "client.tasks.cancel(", "client.tasks.get(", "AsyncClient",
                   "dialect=dialect",
                   "imagegate generate", "imagegate batch", "imagegate tasks list",
                   "imagegate tasks get", "imagegate tasks wait", "imagegate tasks cancel",
                   "--profile"):
        assert needle in text, needle


def _options(command: Any) -> Iterator[str]:
    for param in command.params:
        if param.param_type_name == "option":
            yield from (o for o in param.opts if o.startswith("--"))


def test_every_option_of_the_client_commands_is_documented() -> None:
    group = typer.main.get_command(cli)
    tasks = group.commands["tasks"]  # type: ignore[attr-defined]
    commands = [group.commands["generate"], group.commands["batch"],  # type: ignore[attr-defined]
                *(tasks.commands[name] for name in ("list", "get", "wait", "cancel"))]
    text = DOC.read_text(encoding="utf-8")
    for command in commands:
        for option in _options(command):
            assert f"`{option}" in text, f"{command.name} {option} is not in client.md"


@pytest.fixture
def server(client_server: Server) -> Server:
    return client_server


@pytest.fixture
def task_api() -> Iterator[FakeTaskAPI]:
    loop = FakeLoop()
    try:
        yield loop.start(FakeTaskAPI)
    finally:
        loop.close()


def test_the_examples_run(server: Server, task_api: FakeTaskAPI, tmp_path: Path) -> None:
    work = tmp_path / "work"
    (work / "home").mkdir(parents=True)
    with fake_processes(*HOSTS) as fakes:
        env = base_env({
            "IMAGEGATE_URL": server.base_url, "IMAGEGATE_API_KEY": server.key,
            "HOME": str(work / "home"), "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
            "DIMILINKS_API_KEY": FAKE_KEY, "APIMART_API_KEY": FAKE_KEY,
            "OPENAI_API_KEY": FAKE_KEY})
        env.pop("XDG_CONFIG_HOME", None)
        for lang, body in examples():
            body = body.replace("http://127.0.0.1:8000", server.base_url)
            body = body.replace("ig_your_key", server.key)
            for dialect, host in HOSTS.items():
                body = body.replace(host, fakes[dialect].url)
            run_env = dict(env)
            if NEEDS_TASK_LIST in body:
                run_env.update(IMAGEGATE_URL=task_api.url, IMAGEGATE_API_KEY=TASK_API_KEY)
            argv = [sys.executable, "-c", body] if lang == "python" else \
                ["bash", "-euo", "pipefail", "-c", body]
            done = subprocess.run(argv, cwd=work, env=run_env, capture_output=True,
                                  text=True, timeout=120, check=False)
            out = done.stdout + done.stderr
            assert done.returncode == 0, f"example failed:\n{body}\n---\n{out}"
            assert "Traceback" not in out, f"example failed:\n{body}\n---\n{out}"
    assert len(list((work / "images").glob("*.png"))) >= 3
    assert len(list((work / "animals").glob("*.png"))) == 3
    assert (work / "jobs" / "manifest.jsonl").exists()
    assert list((work / "dimi").glob("*.png")) and list((work / "tiles").glob("*.png"))
