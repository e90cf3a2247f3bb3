"""`imagegate batch FILE` against a served sandbox: `.txt` and `.jsonl` inputs, the manifest,
a rerun that skips what is done, retries what failed and resumes what was in flight — after
the CLI was killed mid-run, after Ctrl-C, and in the window where a create was sent but its
answer never recorded — without making any image twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from imagegate.client import Client
from tests.support.cli import ClientCli
from tests.support.e2e import Server, base_env, task_count
from tests.support.fake_procs import FakeProcess, fake_processes
from tests.support.images import flat_png

pytestmark = pytest.mark.e2e

IMAGEGATE = str(Path(sys.executable).parent / "imagegate")


@pytest.fixture
def server(client_server: Server) -> Server:
    return client_server


@pytest.fixture
def slow(slow_server: Server) -> Server:
    return slow_server


@pytest.fixture
def run(server: Server, tmp_path: Path) -> ClientCli:
    return ClientCli(server.base_url, server.key, tmp_path / "none.toml")


def records(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def final(out: Path) -> dict[int, dict[str, Any]]:
    """Each line's last record."""
    last: dict[int, dict[str, Any]] = {}
    for record in records(out):
        if "line" in record:
            last.setdefault(record["line"], {}).update(record)
    return last


def test_a_txt_batch_and_a_rerun_that_skips_it(run: ClientCli, server: Server,
                                               tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red fox\n\n# a comment\na blue whale\na green frog\n")
    result = run("batch", str(prompts), "--concurrency", "2", "--size", "3:2")
    out = tmp_path / "prompts"  # the default: the file without its suffix
    done = final(out)
    assert sorted(done) == [1, 4, 5] and all(r["status"] == "succeeded" for r in done.values())
    assert sorted(result.stdout.split()) == sorted(str(out / f) for r in done.values()
                                                   for f in r["files"])
    assert records(out)[0]["source"] == "prompts.txt"
    assert "3 lines: 3 done, 0 already done, 0 failed" in result.stderr
    before = task_count(server)
    again = run("batch", str(prompts), "--concurrency", "2", "--size", "3:2", "--json")
    summary = json.loads(again.stdout)
    assert (summary["succeeded"], summary["skipped"], summary["failed"]) == (0, 3, 0)
    assert task_count(server) == before
    # A different request on a line is a new request: only that line runs again.
    prompts.write_text("a red fox\n\n# a comment\na blue whale, at night\na green frog\n")
    changed = json.loads(run("batch", str(prompts), "--size", "3:2", "--json").stdout)
    assert [(x["line"], x["status"]) for x in changed["lines"]] == [
        (1, "skipped"), (4, "succeeded"), (5, "skipped")]
    assert task_count(server) == before + 1


def test_jsonl_fields_refusals_and_retries(run: ClientCli, server: Server,
                                           tmp_path: Path) -> None:
    (tmp_path / "ref.png").write_bytes(flat_png(64, 64))
    batch = tmp_path / "jobs.jsonl"
    lines = [{"prompt": "two squares", "n": 2, "format": "webp", "size": "1:1"},
             {"prompt": "edited", "image": "ref.png", "mask": "ref.png"},
             {"prompt": "a bad size", "size": "1000x1000"},
             {"prompt": "dall-e", "model": "dall-e-3", "size": "1024x1792", "style": "vivid"}]
    batch.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    out = tmp_path / "out"
    result = run("batch", str(batch), "--out", str(out), "--json", code=1)
    summary = json.loads(result.stdout)
    by_line = {x["line"]: x for x in summary["lines"]}
    assert [by_line[n]["status"] for n in (1, 2, 3, 4)] == ["succeeded", "succeeded",
                                                            "failed", "succeeded"]
    assert [Path(f).suffix for f in by_line[1]["files"]] == [".webp", ".webp"]
    assert by_line[3]["error"]["param"] == "size" and by_line[3]["task_id"] is None
    recorded = final(out)
    assert recorded[3]["status"] == "failed" and recorded[3]["error"]["code"] == "invalid_value"
    # The rerun retries only the failed line (a new attempt, so a new Idempotency-Key).
    before = task_count(server)
    lines[2]["size"] = "1024x1024"
    batch.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    again = json.loads(run("batch", str(batch), "--out", str(out), "--json").stdout)
    assert (again["succeeded"], again["skipped"]) == (1, 3)
    assert final(out)[3]["attempt"] == 2 and task_count(server) == before + 1


def test_bad_input_stops_before_anything_is_sent(run: ClientCli, server: Server,
                                                 tmp_path: Path) -> None:
    before = task_count(server)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"prompt": "fine"}\n{"prompt": "no closing brace"\n')
    assert f"{broken}:2: not JSON" in run.error("batch", str(broken), code=2)
    missing = tmp_path / "missing.jsonl"
    missing.write_text('{"prompt": "x", "image": "nope.png"}\n')
    assert "cannot read nope.png" in run.error("batch", str(missing), code=2)
    assert "is .txt" in run.error("batch", str(tmp_path / "x.csv"), code=2)
    assert "cannot read" in run.error("batch", str(tmp_path / "none.txt"), code=2)
    assert task_count(server) == before
    prompts = tmp_path / "p.txt"
    prompts.write_text("one\ntwo\n")
    wrong = run("batch", str(prompts), "--api-key", "ig_wrong", code=2)
    assert "401 invalid_api_key" in wrong.stderr and "To resume run:" in wrong.stderr


def _start_batch(server: Server, prompts: Path, out: Path,
                 concurrency: int = 2) -> subprocess.Popen[str]:
    env = base_env({"IMAGEGATE_URL": server.base_url, "IMAGEGATE_API_KEY": server.key,
                    "IMAGEGATE_CLIENT_CONFIG": str(out.parent / "none.toml")})
    return subprocess.Popen([IMAGEGATE, "batch", str(prompts), "--out", str(out),
                             "--concurrency", str(concurrency)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for_submitted(out: Path, proc: subprocess.Popen[str], count: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / "manifest.jsonl").exists() and sum(
                r.get("status") == "submitted" for r in records(out)) >= count:
            return
        time.sleep(0.05)
    pytest.fail(f"the batch did not submit {count} tasks (exit {proc.poll()})")


def _finish(proc: subprocess.Popen[str]) -> tuple[str, str]:
    out, err = proc.communicate(timeout=60)
    return out, err


def test_killed_mid_run_a_rerun_resumes_without_making_anything_twice(
        slow: Server, tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("one\ntwo\nthree\n")
    out = tmp_path / "out"
    before = task_count(slow)
    proc = _start_batch(slow, prompts, out, concurrency=3)
    try:
        _wait_for_submitted(out, proc, 2)
        os.kill(proc.pid, signal.SIGKILL)  # no handler runs: the manifest is all there is
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        _finish(proc)
    in_flight = {n: r["task_id"] for n, r in final(out).items() if r["status"] == "submitted"}
    assert len(in_flight) >= 2  # a third may be "submitting": its create's answer was lost
    rerun = _start_batch(slow, prompts, out, concurrency=3)
    stdout, stderr = _finish(rerun)
    assert rerun.returncode == 0, stderr
    done = final(out)
    assert all(r["status"] == "succeeded" for r in done.values()) and len(done) == 3
    assert {n: done[n]["task_id"] for n in in_flight} == in_flight  # resumed, not redone
    assert task_count(slow) == before + 3
    assert len(stdout.split()) == 3 and all(Path(p).exists() for p in stdout.split())


def test_ctrl_c_stops_a_batch_and_says_how_to_resume(slow: Server, tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("alpha\nbeta\n")
    out = tmp_path / "out"
    proc = _start_batch(slow, prompts, out)
    try:
        _wait_for_submitted(out, proc, 1)
        os.kill(proc.pid, signal.SIGINT)
        _, stderr = _finish(proc)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            _finish(proc)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert f"imagegate batch {prompts} --out {out}" in stderr
    submitted = [r["task_id"] for r in final(out).values() if r.get("task_id")]
    statuses = {slow.query("SELECT status FROM tasks WHERE id = ?", (t,))[0][0]
                for t in submitted}
    assert statuses <= {"queued", "in_progress", "succeeded"}  # none was cancelled


def test_a_create_whose_answer_was_never_recorded_is_not_made_twice(
        run: ClientCli, server: Server, tmp_path: Path) -> None:
    prompts = tmp_path / "p.txt"
    prompts.write_text("only once\n")
    out = tmp_path / "p"
    run("batch", str(prompts))
    # Rewind the manifest to the moment before the server answered: `submitting` written,
    # the create sent (the task exists), its answer lost with the killed process.
    first = records(out)
    submitting = next(r for r in first if r.get("status") == "submitting")
    (out / "manifest.jsonl").write_text(json.dumps(first[0]) + "\n"
                                        + json.dumps(submitting) + "\n")
    for path in out.glob("*.png"):
        path.unlink()
    before = task_count(server)
    run("batch", str(prompts))
    assert task_count(server) == before  # the same Idempotency-Key: the same task back
    assert final(out)[1]["task_id"] == next(r["task_id"] for r in first if r.get("task_id"))
    with Client(server.base_url, server.key) as client:
        assert client.tasks.get(final(out)[1]["task_id"]).status == "succeeded"


@pytest.fixture(scope="module")
def dimilinks() -> Iterator[FakeProcess]:
    with fake_processes("dimilinks") as started:
        yield started["dimilinks"]


def test_a_batch_against_a_seed_service(run: ClientCli, dimilinks: FakeProcess,
                                        tmp_path: Path) -> None:
    prompts = tmp_path / "p.txt"
    prompts.write_text("dimi one\ndimi two\n")
    result = run("batch", str(prompts), "--dialect", "dimilinks", "--size", "16:9",
                 IMAGEGATE_URL=dimilinks.url, IMAGEGATE_API_KEY=dimilinks.api_key)
    assert len(result.stdout.split()) == 2
    assert all(r["status"] == "succeeded" for r in final(tmp_path / "p").values())
