"""`imagegate generate` against a running server (and, by `--dialect`, the seed services'
fakes as real processes): submit, show progress, save the files; `--json`, `--async`,
`--image`/`--mask`, `--open`, profiles; bad input as one line and its exit code; Ctrl-C
leaves the task running and says how to pick it up."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import ClientCli
from tests.support.e2e import Server, base_env, decode_image, free_port
from tests.support.e2e import task_count as count_tasks
from tests.support.fake_procs import FakeProcess, fake_processes
from tests.support.images import flat_png

pytestmark = pytest.mark.e2e

IMAGEGATE = str(Path(sys.executable).parent / "imagegate")


def _generate(server: Server, out: Path, *args: str, key: str | None = None
              ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "IMAGEGATE_URL": server.base_url,
           "IMAGEGATE_API_KEY": key if key is not None else server.key}
    return subprocess.run([IMAGEGATE, "generate", *args, "--out", str(out)], env=env,
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def server(client_server: Server) -> Server:
    return client_server


@pytest.fixture
def run(server: Server, tmp_path: Path) -> ClientCli:
    return ClientCli(server.base_url, server.key, tmp_path / "no-client.toml")


@pytest.fixture(scope="module")
def dimilinks() -> Iterator[FakeProcess]:
    with fake_processes("dimilinks") as started:
        yield started["dimilinks"]


def test_generate_saves_the_images(basic_server: Server, tmp_path: Path) -> None:
    done = _generate(basic_server, tmp_path, "a red bicycle", "--size", "3:2", "-n", "2",
                     "--resolution", "2k", "--format", "webp")
    assert done.returncode == 0, done.stderr
    paths = [Path(line) for line in done.stdout.split()]
    assert len(paths) == 2 and all(p.suffix == ".webp" for p in paths)
    image = decode_image(paths[0].read_bytes())
    assert (image.width, image.height) == (2048, 1360)


def test_generate_reports_errors(basic_server: Server, tmp_path: Path) -> None:
    # Exit 2 (the request was refused), not 1 as before exit codes were documented: 1 now
    # means a task that failed.
    bad = _generate(basic_server, tmp_path, "x", "--size", "1000x1000")
    assert bad.returncode == 2 and "multiples of 16" in bad.stderr
    assert bad.stderr.count("\n") == 1 and bad.stdout == ""
    unauth = _generate(basic_server, tmp_path, "x", key="ig_wrong")
    assert unauth.returncode == 2 and "401 invalid_api_key" in unauth.stderr
    assert not list(tmp_path.iterdir())


def test_json_async_and_options(run: ClientCli, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run("generate", "a lighthouse", "--json", "--out", str(out), "--quality", "low",
                 "--background", "opaque", "--model", "gpt-image-1", "--size", "1536x1024")
    task = json.loads(result.stdout)
    assert task["status"] == "succeeded" and task["model"] == "gpt-image-1"
    assert task["result"]["quality"] == "low" and task["result"]["size"] == "1536x1024"
    assert [Path(f).name for f in task["files"]] == [f"{task['id']}_0.png"]
    assert f"submitted {task['id']}" in result.stderr
    queued = run("generate", "later", "--async")
    task_id = queued.stdout.strip()
    assert re.fullmatch(r"img_[0-9A-Z]+", task_id)
    assert f"imagegate tasks wait {task_id}" in queued.stderr
    as_json = json.loads(run("generate", "later", "--async", "--json").stdout)
    assert as_json["status"] == "queued" and as_json["object"] == "image.task"


def test_edit_with_images_and_a_mask(run: ClientCli, tmp_path: Path) -> None:
    ref = tmp_path / "ref.png"
    ref.write_bytes(flat_png(64, 64))
    data_url = "data:image/png;base64," + base64.b64encode(flat_png(8, 8)).decode()
    result = run("generate", "blend", "--image", str(ref), "--image", data_url, "--mask",
                 str(ref), "--json", "--out", str(tmp_path / "out"))
    task = json.loads(result.stdout)
    assert task["result"]["usage"]["input_tokens_details"]["image_tokens"] == 2 * 256
    assert Path(task["files"][0]).exists()


def test_open_hands_the_files_to_the_viewer(server: Server, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    opened = tmp_path / "opened.txt"
    viewer = bin_dir / "xdg-open"
    viewer.write_text(f'#!/bin/sh\necho "$1" >> "{opened}"\n')
    viewer.chmod(0o755)
    env = base_env({"IMAGEGATE_URL": server.base_url, "IMAGEGATE_API_KEY": server.key,
                    "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"})
    done = subprocess.run([IMAGEGATE, "generate", "open me", "-n", "2", "--open", "--out",
                           str(tmp_path / "out")], env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    saved = done.stdout.split()
    deadline = time.monotonic() + 10  # the viewer runs detached
    while (not opened.exists() or len(opened.read_text().split()) < 2) \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sorted(opened.read_text().split()) == sorted(saved)


def test_bad_input_is_one_line_and_its_exit_code(run: ClientCli, server: Server,
                                                 failing_server: Server,
                                                 tmp_path: Path) -> None:
    before = count_tasks(server)
    assert "an API key is needed" in run.error("generate", "x", code=2,
                                               IMAGEGATE_API_KEY=None)
    assert "cannot read" in run.error("generate", "x", "--image", str(tmp_path / "nope.png"),
                                      code=2)
    assert "model_not_found" in run.error("generate", "x", "--model", "nope", code=2)
    assert "--mask needs" in run.error("generate", "x", "--mask", "m.png", code=2)
    assert "unknown dialect 'klingon'" in run.error("generate", "x", "--dialect", "klingon",
                                                    code=2)
    assert "must start with http" in run.error("generate", "x", "--url", "localhost:8000",
                                               code=2)
    down = run.error("generate", "x", "--url", f"http://127.0.0.1:{free_port()}", code=3)
    assert "cannot reach" in down and "is the server running" in down
    poor = server.create_key("cli-poor", "--balance", "0")["key"]
    assert "402 insufficient_balance" in run.error("generate", "x", "--api-key", poor, code=2)
    assert count_tasks(server) == before
    failed = run("generate", "x", "--url", failing_server.base_url, "--api-key",
                 failing_server.key,
                 "--out", str(tmp_path), code=1)  # a task failed: submitted, then the error
    submitted, error = failed.stderr.splitlines()
    assert submitted.startswith("submitted img_") and failed.stdout == ""
    assert re.match(r"error: task img_\w+ failed \(upstream_error\): sandbox: injected", error)
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".png"]


def test_profiles_and_dialects(run: ClientCli, server: Server, dimilinks: FakeProcess,
                               tmp_path: Path) -> None:
    config = tmp_path / "client.toml"
    config.write_text(f'default = "gw"\n[profiles.gw]\nurl = "{server.base_url}"\n'
                      f'api_key = "{server.key}"\n[profiles.dimi]\nurl = "{dimilinks.url}"\n'
                      f'api_key = "{dimilinks.api_key}"\ndialect = "dimilinks"\n')
    env = {"IMAGEGATE_CLIENT_CONFIG": str(config), "IMAGEGATE_URL": None,
           "IMAGEGATE_API_KEY": None}
    via_default = run("generate", "gateway", "--out", str(tmp_path / "a"), **env)
    assert Path(via_default.stdout.strip()).exists()
    via_dimi = run("generate", "dimilinks", "--size", "16:9", "--profile", "dimi", "--json",
                   "--out", str(tmp_path / "b"), **env)
    task = json.loads(via_dimi.stdout)
    assert task["result"]["data"][0]["url"].startswith("/p/img/")  # relative, resolved
    assert decode_image(Path(task["files"][0]).read_bytes()).width == 1536
    flags = run("generate", "flags", "--dialect", "dimilinks", "--url", dimilinks.url,
                "--api-key", dimilinks.api_key, "--out", str(tmp_path / "c"), **env)
    assert Path(flags.stdout.strip()).exists()
    assert "no profile 'work'" in run.error("generate", "x", "--profile", "work", code=2,
                                            **env)


def test_ctrl_c_leaves_the_task_running(slow_server: Server, tmp_path: Path) -> None:
    slow = slow_server
    env = base_env({"IMAGEGATE_URL": slow.base_url, "IMAGEGATE_API_KEY": slow.key,
                    "IMAGEGATE_CLIENT_CONFIG": str(tmp_path / "none.toml")})
    out = tmp_path / "out"
    proc = subprocess.Popen([IMAGEGATE, "generate", "a slow one", "--out", str(out)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    lines: list[str] = []
    submitted = threading.Event()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if line.startswith("submitted "):
                submitted.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert submitted.wait(60), lines
        os.kill(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=30) == 130
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        reader.join(timeout=10)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    text = "".join(lines)
    assert "Traceback" not in text
    task_id = lines[0].split()[1]
    assert f"task {task_id} keeps running" in text
    command = next(line.strip() for line in lines if line.strip().startswith("imagegate "))
    assert command == f"imagegate tasks wait {task_id} --out {out}"
    status = slow.query("SELECT status FROM tasks WHERE id = ?", (task_id,))[0][0]
    assert status in ("queued", "in_progress")  # not cancelled
    resumed = subprocess.run([IMAGEGATE, *command.split()[1:]], env=env, capture_output=True,
                             text=True, timeout=120, check=False)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.split() == [str(out / f"{task_id}_0.png")]
